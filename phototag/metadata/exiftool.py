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
from . import regions
from .keywords import Field

#: exiftool tag names for each field (group-qualified so nothing else is touched).
TAGS: dict[Field, str] = {
    Field.SUBJECT: "XMP-dc:Subject",
    Field.HIERARCHICAL: "XMP-lr:HierarchicalSubject",
    Field.TAGSLIST: "XMP-digiKam:TagsList",
    Field.IPTC: "IPTC:Keywords",
    Field.PERSON: "XMP-iptcExt:PersonInImage",
}
#: MWG face regions: one structure, read and written whole (phototag.metadata.regions).
REGION_INFO = "XMP-mwg-rs:RegionInfo"

#: Formats exiftool can write keywords into. Others get a clear "use sidecar" message.
#: DNG is left out on purpose: RAW files are never written into (they get sidecars).
WRITABLE = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp",
                      ".gif", ".heic", ".heif", ".hif", ".avif", ".jxl"})  # fmt: skip


@dataclass
class ReadResult:
    values: dict[Field, list[str]]
    has_iptc: bool
    warnings: list[str] = field(default_factory=list)
    #: The IPTC declares its strings UTF-8 (CodedCharacterSet ESC % G). Without it, its
    #: strings are in a legacy charset (exiftool reads them as Latin, cp1252).
    iptc_utf8: bool = False


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
            f"-{REGION_INFO}",
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
        faces = regions.read_struct(record.get(REGION_INFO))
        if faces:
            values[Field.REGIONS] = [r.encode() for r in faces]
        has_iptc = any(k.startswith("IPTC:") for k in record)
        utf8 = str(record.get("IPTC:CodedCharacterSet", "")).upper().replace("-", "") == "UTF8"
        return ReadResult(values, has_iptc, warnings, iptc_utf8=utf8)

    def iptc_to_utf8(
        self, path: Path, *, backup: bool = False, in_place: bool = False
    ) -> list[str]:
        """Re-encode every IPTC string of ``path`` as UTF-8 and declare it (CodedCharacterSet).

        The file's IPTC has no UTF-8 declaration, so its strings are in a legacy charset
        (older cameras and Photoshop wrote Latin-1). Declaring UTF-8 for new keywords alone
        would make every other value (City "München") unreadable to exiftool and exiv2, so
        all of them are read (as exiftool does, -charset iptc=Latin) and written back as
        UTF-8 first: each field keeps its meaning. This is exiftool's own recipe (FAQ 10).
        """
        args: list[str | bytes] = [
            "-P",  # keep the file's modification time
            "-charset", "iptc=Latin",  # how the undeclared strings are read (exiftool's default)
            "-tagsFromFile", "@",  # copy from the file itself...
            "-IPTC:All",  # ...every IPTC tag, decoded...
            "-IPTC:CodedCharacterSet=UTF8",  # ...and written back as declared UTF-8
        ]  # fmt: skip
        if in_place:
            args.append("-overwrite_original_in_place")  # same inode: hard links stay one file
        elif not backup:
            args.append("-overwrite_original")
        args.append(_arg(path))
        out, warnings, errors = self._run(*args)
        if errors or "1 image files updated" not in out:
            raise MetadataError(
                f"exiftool could not convert the IPTC of {path} to UTF-8: "
                f"{'; '.join(errors) or out.strip()}"
            )
        return warnings

    def _region_info(self, path: Path) -> Any:
        out, _, errors = self._run("-json", "-G1", "-struct", f"-{REGION_INFO}", _arg(path))
        if errors or not out.strip():
            raise MetadataError(
                f"exiftool could not read {path}: {'; '.join(errors) or 'no output'}"
            )
        return json.loads(out)[0].get(REGION_INFO)

    def write(
        self,
        path: Path,
        values: Mapping[Field, Sequence[str]],
        *,
        backup: bool = False,
        in_place: bool = False,
        iptc_to_utf8: bool = False,
        dims: tuple[int, int] | None = None,
    ) -> list[str]:
        """Set the given fields to exactly these lists; returns exiftool's warnings.

        ``in_place``: keep the file's inode (hard links, see :func:`phototag.metadata.embed.embed_file`)
        with ``-overwrite_original_in_place``: exiftool writes the new file beside the old,
        then copies it over the old one's bytes. Without it, the new file is renamed over
        the old (atomic, but a new inode: hard links then part).

        ``iptc_to_utf8``: the file's IPTC is in a legacy charset and IPTC keywords are
        written: convert all of it first (:meth:`iptc_to_utf8`).

        Face regions (Field.REGIONS) are merged into the file's RegionInfo structure, whose
        other regions are kept; ``dims`` fills AppliedToDimensions when the file has none.
        """
        warnings_first: list[str] = []
        if iptc_to_utf8 and values.get(Field.IPTC):
            warnings_first = self.iptc_to_utf8(path, backup=backup, in_place=in_place)
            backup = False  # the first step kept the original; a second copy would be ours
        args: list[str | bytes] = ["-P"]  # keep the file's modification time
        if values.get(Field.IPTC):
            args.append("-IPTC:CodedCharacterSet=UTF8")  # IPTC keywords in UTF-8, declared as such
        if in_place:
            args.append("-overwrite_original_in_place")  # same inode: every name sees the change
        elif not backup:
            args.append("-overwrite_original")  # no IMG.jpg_original litter
        json_file = None
        if Field.REGIONS in values:
            info = regions.apply_struct(self._region_info(path), values[Field.REGIONS], dims)
            if info is None:
                args.append(f"-{REGION_INFO}=")
            else:
                # A structure goes in as JSON (-j=): no escaping of exiftool's struct syntax.
                import tempfile

                fd, json_file = tempfile.mkstemp(suffix=".json", prefix="phototag-regions-")
                with os.fdopen(fd, "w", encoding="utf-8") as out_file:
                    json.dump(
                        [{"SourceFile": "*", REGION_INFO: info}], out_file, ensure_ascii=False
                    )
                args.append(f"-j={json_file}")
        for f, vals in values.items():
            if f is Field.REGIONS:
                continue
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
        try:
            out, warnings, errors = self._run(*args)
        finally:
            if json_file is not None:
                os.unlink(json_file)
        # With -j= exiftool reports its summary ("1 image files updated") on stderr.
        summary = [
            e for e in errors if e.endswith(("image files updated", "image files unchanged"))
        ]
        errors = [e for e in errors if e not in summary]
        out += "\n".join(summary)
        if errors or "1 image files updated" not in out:
            raise MetadataError(
                f"exiftool could not write {path}: {'; '.join(errors) or out.strip()}"
            )
        return warnings_first + warnings
