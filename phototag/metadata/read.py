"""Reading the keywords that are already in a photo's files (for ``phototag show``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import MetadataError
from ..index.store import Index
from .exiftool import ExifTool, exiftool_path
from .keywords import Field
from .sidecars import SidecarResolver
from .xmp import Sidecar


@dataclass(frozen=True, slots=True)
class FoundKeywords:
    source: Path  # the sidecar, or the photo itself
    fields: dict[Field, list[str]]
    error: str | None = None


def keywords_in_files(photo: Path) -> list[FoundKeywords]:
    """Keyword fields in the photo's sidecars and, with exiftool, the photo.

    The sidecars are every existing one that belongs to the photo, in both conventions and
    any case (:meth:`SidecarResolver.belonging`): a basename sidecar shared by two photos
    belongs to neither.
    """
    found = []
    for path in SidecarResolver().belonging(photo):
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


def user_keywords(index: Index, root: str = "phototag") -> dict[int, list[tuple[str, str]]]:
    """The user's own keywords of every indexed photo, as (field, value) pairs.

    Read from the photo's sidecars and (with exiftool, one process for all) from the file;
    values phototag wrote itself (recorded in the index, or under its hierarchy root) are
    left out, so training on keywords never learns phototag's own guesses.
    """
    from contextlib import ExitStack

    out: dict[int, list[tuple[str, str]]] = {}
    own_prefixes = (f"{root}|", f"{root}/")
    with ExitStack() as stack:
        et = stack.enter_context(ExifTool()) if exiftool_path() else None
        resolver = SidecarResolver()
        for photo in index.photos_under([Path("/")]):
            pairs: list[tuple[str, str]] = []
            sources: list[tuple[Path, dict[Field, list[str]]]] = []
            for path in resolver.belonging(photo.path):
                try:
                    sidecar = Sidecar.read(path)
                except MetadataError:
                    continue
                if sidecar is not None:
                    sources.append((path, sidecar.fields()))
            if et is not None and photo.path.exists():
                with contextlib.suppress(MetadataError):
                    sources.append((photo.path, et.read(photo.path).values))
            for source, fields in sources:
                rec = index.target(source)
                ours = {(f, v) for f, vs in (rec.ours.items() if rec else []) for v in vs}
                for f, values in fields.items():
                    for v in values:
                        if (f.value, v) in ours or v.startswith(own_prefixes):
                            continue
                        pairs.append((f.value, v))
            if pairs:
                out[photo.id] = pairs
    return out
