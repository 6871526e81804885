"""Finding the photo a user names on the command line in the index.

A user may name a photo by a relative path, or through an album entry (a symlink phototag
made, pointing at the indexed path): both lead to the indexed photo. Raises
:class:`~phototag.errors.ConfigError` with what is wrong: no such file, or not indexed.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError
from .index.store import Index

#: Symlinks followed at most (album entries are one hop; a loop must end).
MAX_HOPS = 8


def indexed_path(index: Index, path: Path) -> Path:
    """The indexed path of the photo ``path`` names: itself, or the photo a chain of
    symlinks (an album entry) leads to. Raises ConfigError: no such file, or not indexed."""
    here = Path(os.path.abspath(path))
    if not os.path.lexists(here):
        pid = index.photo_id(here)
        if pid is not None and pid in index.offline_ids():
            return here  # its folder is offline (docs/cli.md): the index still holds it
        raise ConfigError(f"no such file: {path}")
    for _ in range(MAX_HOPS):
        if index.photo_id(here) is not None:
            return here
        if not os.path.islink(here):
            break
        try:
            target = os.readlink(here)
        except OSError:
            break
        here = Path(os.path.abspath(os.path.join(here.parent, target)))
    # A link into the library by another route (a symlinked folder): its real path.
    real = Path(os.path.realpath(path))
    if index.photo_id(real) is not None:
        return real
    raise ConfigError(f"{path} is not in the index: scan it first ('phototag scan {path}')")
