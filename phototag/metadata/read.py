"""Reading the keywords that are already in a photo's files (for ``phototag show``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MetadataError
from .exiftool import ExifTool, exiftool_path
from .keywords import Field
from .xmp import Sidecar, sidecar_path


@dataclass(frozen=True, slots=True)
class FoundKeywords:
    source: Path  # the sidecar, or the photo itself
    fields: dict[Field, list[str]]
    error: str | None = None


def keywords_in_files(photo: Path) -> list[FoundKeywords]:
    """Keyword fields in the photo's sidecars (both namings) and, with exiftool, the photo."""
    found = []
    for naming in ("full", "basename"):
        path = sidecar_path(photo, naming)
        try:
            sidecar = Sidecar.read(path)
        except MetadataError as e:
            found.append(FoundKeywords(path, {}, str(e)))
            continue
        if sidecar is not None:
            found.append(FoundKeywords(path, sidecar.fields()))
    if exiftool_path() and photo.exists():
        try:
            with ExifTool() as et:
                found.append(FoundKeywords(photo, et.read(photo).values))
        except MetadataError as e:
            found.append(FoundKeywords(photo, {}, str(e)))
    return found
