"""What a file is, from its name alone: the walk never opens a file to decide.

Every file a scan walks past falls in exactly one :class:`FileKind`, so the scan summary
can account for all of them (issue 18: nothing skipped in silence).
"""

from __future__ import annotations

import os
from enum import StrEnum


class FileKind(StrEnum):
    """The closed set a walked file is counted in."""

    PHOTO = "photo"  # decoded by Pillow (JPEG, PNG, HEIC, AVIF, ...)
    RAW = "raw"  # a camera RAW: tagged from its embedded preview or a LibRaw decode
    VIDEO = "video"  # tagged from a few frames (PyAV)
    SIDECAR = "sidecar"  # metadata that belongs to another file (XMP, AAE, THM, ...)
    IGNORED = "ignored"  # hidden files and operating-system litter, skipped by rule
    UNSUPPORTED = "unsupported"  # anything else, counted by extension


#: Raster formats Pillow (with pillow-heif) decodes.
PHOTO_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png", ".webp", ".gif", ".bmp",
        ".tif", ".tiff",
        ".heic", ".heif", ".hif", ".avif",
    }
)  # fmt: skip

#: Camera RAW formats LibRaw reads (Adobe DNG, Canon, Nikon, Sony, Fujifilm, Olympus/OM,
#: Panasonic, Pentax, Samsung, Hasselblad, Phase One, Leaf/Epson, Leica, Sigma, Kodak, Minolta).
RAW_EXTENSIONS = frozenset(
    {
        ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf",
        ".orf", ".rw2", ".rwl", ".pef", ".srw", ".3fr", ".fff", ".iiq", ".erf", ".mrw",
        ".x3f", ".dcr", ".kdc", ".mos", ".mef",
    }
)  # fmt: skip

#: Containers PyAV (FFmpeg) opens.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".3gp", ".3g2", ".webm", ".mts", ".m2ts", ".wmv"}
)

#: Files that describe another file: XMP sidecars, Apple's edit lists (AAE), camera
#: thumbnails (THM), RawTherapee, DxO, ON1 and Google Takeout metadata.
SIDECAR_EXTENSIONS = frozenset({".xmp", ".aae", ".thm", ".pp3", ".dop", ".on1", ".json"})

#: Litter operating systems and tools leave next to photos.
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})


def classify(name: str) -> FileKind:
    """The kind of a file called ``name`` (no folder part), by its extension, case-insensitively."""
    if name.startswith(".") or name.lower() in IGNORED_NAMES:
        return FileKind.IGNORED
    ext = extension(name)
    if ext in PHOTO_EXTENSIONS:
        return FileKind.PHOTO
    if ext in RAW_EXTENSIONS:
        return FileKind.RAW
    if ext in VIDEO_EXTENSIONS:
        return FileKind.VIDEO
    if ext in SIDECAR_EXTENSIONS:
        return FileKind.SIDECAR
    return FileKind.UNSUPPORTED


def extension(name: str) -> str:
    """The extension, lower case with its dot (``.nef``); ``""`` for none."""
    return os.path.splitext(name)[1].lower()


#: The kinds a scan reads and tags.
MEDIA_KINDS = frozenset({FileKind.PHOTO, FileKind.RAW, FileKind.VIDEO})
