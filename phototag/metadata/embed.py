"""Keywords into the photo file itself, keeping every name it has (issue 13, item 3).

A file with one name is written as exiftool does by default (a new file renamed over the
old: atomic). A file with several hard links must keep its inode, so it is rewritten in
place, with a fsynced undo copy that makes a kill in the middle recoverable.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import MetadataError
from .exiftool import ExifTool, held_open
from .keywords import Field
from .xmp import write_atomic


def undo_path(photo: Path) -> Path:
    """The copy of a hard-linked photo kept while it is rewritten in place."""
    return photo.with_name(f".{photo.name[:200]}.phototag-undo")


def restore_interrupted(photo: Path) -> bool:
    """Put back a hard-linked photo whose in-place rewrite was killed; True if it did.

    The undo copy exists only between its fsync and the end of a successful in-place
    write: if it is there, the photo may be half-copied, so the whole old content is
    copied back in place (the same inode, so every name gets it) before anything else.
    """
    undo = undo_path(photo)
    if not undo.exists():
        return False
    if held_open(photo) or held_open(Path(f"{photo}_exiftool_tmp")):
        # The exiftool of the killed run may still be copying (it outlives its parent
        # until it reads the end of its input): restoring now would mix the two.
        raise MetadataError(
            "an interrupted write of this file is still finishing; it is restored next time"
        )
    try:
        data = undo.read_bytes()
        with open(photo, "r+b") as f:
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        os.unlink(undo)
    except OSError as e:
        raise MetadataError(f"cannot restore {photo} from {undo.name}: {e.strerror}") from None
    return True


def embed_file(
    exiftool: ExifTool,
    photo: Path,
    values: Mapping[Field, Sequence[str]],
    *,
    backup: bool,
    iptc_to_utf8: bool = False,
    dims: tuple[int, int] | None = None,
) -> list[str]:
    """Write keyword fields into ``photo`` (a real path, not a symlink); exiftool's warnings.

    A file with one name is written as exiftool does by default: the new file is renamed
    over the old, atomically, so a kill leaves the old file or the new one. A file with
    several names (hard links: ``st_nlink`` > 1) must keep its inode, or the names part
    and the disk use doubles; it is rewritten in place (``-overwrite_original_in_place``),
    and since a kill during exiftool's copy-back would leave it half old, half new, phototag
    first keeps a fsynced undo copy beside it (``.NAME.phototag-undo``), which
    :func:`restore_interrupted` copies back if the write did not finish. The modification
    time is kept to the nanosecond. ``iptc_to_utf8``: see :meth:`ExifTool.write`.
    """
    restore_interrupted(photo)
    before = os.stat(photo)
    in_place = before.st_nlink > 1
    undo = undo_path(photo)
    if in_place:
        if backup and not os.path.exists(f"{photo}_original"):
            shutil.copy2(photo, f"{photo}_original")  # what exiftool's own backup would be
        write_atomic(undo, photo.read_bytes())
    warnings = exiftool.write(
        photo, values, backup=backup, in_place=in_place, iptc_to_utf8=iptc_to_utf8, dims=dims
    )
    # exiftool's -P keeps the modification time to the second only: put back the
    # nanoseconds too, so the file looks exactly as old as it was.
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))
    if in_place:
        fd = os.open(photo, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(undo)
    return warnings
