"""Writing files so that a kill or a power cut leaves the old file or the new, never half.

The one helper every writer of a whole file uses (sidecars, vocabularies, caches, album
pages, model variants): a temporary file in the target's folder (same file system, so the
rename is atomic), fsynced, renamed over the target, and the folder fsynced so that the
rename itself is durable (the sequence SQLite and git use; see also the STYLE notes).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

#: Temporary files are named ``.<target name, at most 40 characters>.<random>.tmp``, so a
#: long file name cannot push them past the file system's 255-byte limit.
TMP_SUFFIX = ".tmp"


def temp_prefix(path: Path) -> str:
    return f".{path.name[:40]}."


@contextmanager
def atomic_writer(path: Path, *, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` when the ``with`` block ends without an error.

    ``mode``: the new file's permission bits; by default the old file's, else 0o644 (not
    mkstemp's 0o600). Inside the block the temporary file's name is ``f.name``, for a
    check that reads it back before it replaces anything. On an error the temporary file
    is removed and ``path`` is untouched. Raises OSError.
    """
    folder = path.parent
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TMP_SUFFIX, dir=folder)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:  # by name, so that f.name is the temporary file's path
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = ""
        fsync_folder(folder)
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` with :func:`atomic_writer`. Raises OSError."""
    with atomic_writer(path, mode=mode) as f:
        f.write(data)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames are durable on close
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
