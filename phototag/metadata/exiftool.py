"""Embedded metadata through ONE long-lived ``exiftool -stay_open`` process.

The process is driven by PyExifTool (``pyexiftool``), the maintained wrapper most Python
photo tools use. It was chosen over exiftool-wrapper because it hands back exiftool's
standard error and exit status for every command (``last_stderr``, ``last_status``), so
each file's warnings and errors reach the user instead of being dropped. Arguments travel
through exiftool's ``-@`` argument file, one per line, so:

* a file name with a newline cannot be carried safely: such files are refused (use
  sidecar mode for them);
* file names are passed as absolute paths (they begin with ``/``), so none can be read
  as an option however it is spelled (``-delete_original.jpg``);
* names that are not valid UTF-8 travel as raw bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MetadataError
from .keywords import Field

#: exiftool tag names for each field (group-qualified so nothing else is touched).
TAGS: dict[Field, str] = {
    Field.SUBJECT: "XMP-dc:Subject",
    Field.HIERARCHICAL: "XMP-lr:HierarchicalSubject",
    Field.TAGSLIST: "XMP-digiKam:TagsList",
    Field.IPTC: "IPTC:Keywords",
}

#: Formats exiftool can write keywords into. Others get a clear "use sidecar" message.
#: DNG is left out on purpose: RAW files are never written into (they get sidecars).
WRITABLE = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp",
                      ".gif", ".heic", ".heif", ".hif", ".avif", ".jxl"})  # fmt: skip


@dataclass
class ReadResult:
    values: dict[Field, list[str]]
    has_iptc: bool
    warnings: list[str] = field(default_factory=list)


def exiftool_path() -> str | None:
    return shutil.which("exiftool")


def _arg(path: Path) -> str | bytes:
    raw = os.fsencode(os.path.abspath(path))
    if b"\n" in raw or b"\r" in raw:
        raise MetadataError(
            "the file name contains a line break, which exiftool's argument protocol cannot "
            "carry safely; write a sidecar for this file instead"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def held_open(path: Path) -> bool:
    """Whether any process has ``path`` open (Linux: /proc/*/fd), or, elsewhere, it is recent."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        try:
            return time.time() - path.stat().st_mtime < 60
        except OSError:
            return False
    target = os.fsencode(os.path.realpath(path))
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if os.fsencode(os.readlink(fd)) == target:
                        return True
        except OSError:
            continue
    return False


class ExifTool:
    """One ``exiftool -stay_open`` process for a whole run. Use as a context manager."""

    def __init__(self, executable: str | None = None) -> None:
        exe = executable or exiftool_path()
        if exe is None:
            raise MetadataError(
                "exiftool is not installed; embed mode needs it (Debian/Ubuntu: apt install "
                "libimage-exiftool-perl; macOS: brew install exiftool; Windows: exiftool.org). "
                "Sidecar mode works without it."
            )
        import exiftool as pyexiftool

        # -charset filename=utf8 is not used on purpose: on Linux and macOS exiftool takes
        # names as bytes, which is what we pass.
        self._et: Any = pyexiftool.ExifTool(executable=exe, common_args=[])

    def __enter__(self) -> ExifTool:
        self._et.run()
        return self

    def __exit__(self, *exc: object) -> None:
        self._et.terminate()

    def _run(self, *args: str | bytes) -> tuple[str, list[str], list[str]]:
        out = self._et.execute(*args)
        warnings, errors = [], []
        for line in (self._et.last_stderr or "").splitlines():
            line = line.strip()
            if line.startswith("Warning:"):
                warnings.append(line.removeprefix("Warning:").strip())
            elif line:
                errors.append(line.removeprefix("Error:").strip())
        return str(out), warnings, errors

    def read(self, path: Path) -> ReadResult:
        """The keyword fields embedded in ``path``."""
        out, warnings, errors = self._run(
            "-json",  # machine-readable output
            "-G1",  # group names (XMP-dc, IPTC) so we know which field a value came from
            "-struct",  # keep list values as JSON lists
            "-IPTC:All",  # to learn whether the file already has IPTC data
            *(f"-{t}" for t in TAGS.values()),
            _arg(path),
        )
        if errors or not out.strip():
            raise MetadataError(
                f"exiftool could not read {path}: {'; '.join(errors) or 'no output'}"
            )
        (record,) = json.loads(out)
        values: dict[Field, list[str]] = {}
        for f, tag in TAGS.items():
            v = record.get(tag)
            if v is None:
                continue
            values[f] = [str(x) for x in v] if isinstance(v, list) else [str(v)]
        has_iptc = any(k.startswith("IPTC:") for k in record)
        return ReadResult(values, has_iptc, warnings)

    def write(
        self,
        path: Path,
        values: Mapping[Field, Sequence[str]],
        *,
        backup: bool = False,
        in_place: bool = False,
    ) -> list[str]:
        """Set the given fields to exactly these lists; returns exiftool's warnings.

        ``in_place``: keep the file's inode (hard links, see :func:`phototag.metadata.embed.embed_file`)
        with ``-overwrite_original_in_place``: exiftool writes the new file beside the old,
        then copies it over the old one's bytes. Without it, the new file is renamed over
        the old (atomic, but a new inode: hard links then part).
        """
        args: list[str | bytes] = ["-P"]  # keep the file's modification time
        if values.get(Field.IPTC):
            args.append("-IPTC:CodedCharacterSet=UTF8")  # IPTC keywords in UTF-8, declared as such
        if in_place:
            args.append("-overwrite_original_in_place")  # same inode: every name sees the change
        elif not backup:
            args.append("-overwrite_original")  # no IMG.jpg_original litter
        for f, vals in values.items():
            tag = TAGS[f]
            if not vals:
                args.append(f"-{tag}=")  # delete the field
            for v in vals:
                if "\n" in v or "\r" in v:
                    raise MetadataError(
                        f"{path}: a keyword with a line break cannot be passed to exiftool"
                    )
                # Repeating -TAG=value sets a list (the first replaces, the rest append).
                args.append(f"-{tag}={v}")
        args.append(_arg(path))
        out, warnings, errors = self._run(*args)
        if errors or "1 image files updated" not in out:
            raise MetadataError(
                f"exiftool could not write {path}: {'; '.join(errors) or out.strip()}"
            )
        return warnings
