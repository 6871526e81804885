"""Which files are one item: RAW+JPEG pairs and Live Photos.

A pair is **one photo with shared tags**, as Lightroom (``RAW+JPEG`` imports as one photo)
and Immich (stacks) treat it:

* **RAW + JPEG/HEIC** of the same name in the same folder (``IMG_0001.NEF`` and
  ``IMG_0001.JPG``, case-insensitively): the JPEG is the item. It is the camera's own
  rendering of the RAW and decodes fastest; the RAW is its ``raw`` companion: not decoded,
  given the same tags in its own XMP sidecar, linked next to the JPEG in albums, never
  reported as a duplicate of it.
* **Live Photo**: a HEIC or JPEG and a MOV of the same name (``IMG_0002.HEIC`` +
  ``IMG_0002.MOV``): the photo is the item, tagged from the photo; the MOV is its
  ``motion`` companion and follows it into albums.

A RAW or a MOV with no such partner is an item of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .kinds import FileKind, extension


class CompanionRole(StrEnum):
    RAW = "raw"  # the RAW of a RAW+JPEG pair
    MOTION = "motion"  # the video of a Live Photo


#: Photos that can stand for a RAW of the same name (a camera's JPEG or HEIF).
PAIRED_PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".heic", ".heif", ".hif"})
#: Photos that can be a Live Photo's still, and the video that goes with them.
LIVE_PHOTO_EXTENSIONS = frozenset({".heic", ".heif", ".jpg", ".jpeg"})
LIVE_VIDEO_EXTENSIONS = frozenset({".mov"})


@dataclass(frozen=True, slots=True)
class Companion:
    path: Path
    role: CompanionRole


def pair(files: Iterable[tuple[Path, FileKind]]) -> dict[Path, list[Companion]]:
    """The companions of each item, for files listed with their kinds.

    Returns ``{item path: [companions]}`` for items that have any; every path that appears
    as a companion is not an item of its own.
    """
    groups: dict[tuple[str, str], list[tuple[Path, FileKind]]] = {}
    for path, kind in files:
        if kind not in (FileKind.PHOTO, FileKind.RAW, FileKind.VIDEO):
            continue
        stem = os.path.splitext(path.name)[0].casefold()
        groups.setdefault((str(path.parent), stem), []).append((path, kind))
    out: dict[Path, list[Companion]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        photos = [p for p, k in members if k is FileKind.PHOTO]
        stills = [p for p in photos if extension(p.name) in PAIRED_PHOTO_EXTENSIONS]
        if not stills:
            continue
        item = stills[0]
        companions = [Companion(p, CompanionRole.RAW) for p, k in members if k is FileKind.RAW]
        if extension(item.name) in LIVE_PHOTO_EXTENSIONS:
            companions += [
                Companion(p, CompanionRole.MOTION)
                for p, k in members
                if k is FileKind.VIDEO and extension(p.name) in LIVE_VIDEO_EXTENSIONS
            ]
        if companions:
            out[item] = companions
    return out
