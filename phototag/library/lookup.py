"""Finding the photo a user names on the command line in the index.

A user may name a photo by a relative path, or through an album entry (a symlink phototag
made, pointing at the indexed path): both lead to the indexed photo. Raises
:class:`~phototag.errors.ConfigError` with what is wrong: no such file, or not indexed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..index.paths import canonical_path
from ..index.store import Index, decode_path, encode_path

#: Symlinks followed at most (album entries are one hop; a loop must end).
MAX_HOPS = 8


def indexed_path(index: Index, path: Path) -> Path:
    """The indexed path of the photo ``path`` names: itself, or the photo a chain of
    symlinks (an album entry) leads to. Raises ConfigError: no such file, or not indexed."""
    here = canonical_path(path)
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
    # Another name of an indexed file (a hard link): a scan counts it as one of the photo's
    # "other names" and indexes it once, under the name it met first.
    if (other := _same_file_indexed(index, real)) is not None:
        return other
    row = index.conn.execute(
        "SELECT reason FROM failures WHERE path = ?", (encode_path(real),)
    ).fetchone()
    if row is not None:
        raise ConfigError(f"{path}: phototag could not read this file ({row[0]})")
    raise ConfigError(f"{path} is not in the index: scan it first ('phototag scan {path}')")


def _same_file_indexed(index: Index, path: Path) -> Path | None:
    """The indexed path of the same file (same device and inode) as ``path``, if any."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    rows = index.conn.execute("SELECT path FROM photos WHERE size = ?", (st.st_size,))
    for (raw,) in rows.fetchall():
        other = decode_path(raw)
        try:
            o = os.stat(other)
        except OSError:
            continue
        if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino):
            return other
    return None


def check_known(index: Index, paths: Sequence[Path]) -> None:
    """Raise ConfigError naming every path in ``paths`` that does not exist and has nothing
    at or under it in the index (a typo), before a command acts on any of them.

    A path gone from disk that the index still holds (a moved folder, an offline disk) is
    fine: forget and clean are how to act on it.
    """
    unknown = [
        p for p in paths if not os.path.lexists(p) and not len(index.ids_under([canonical_path(p)]))
    ]
    if unknown:
        names = ", ".join(os.fsdecode(p) for p in unknown)
        raise ConfigError(f"no such file or folder, and nothing under it in the index: {names}")
