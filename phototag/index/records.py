"""The index's rows as typed records: what storage reads and writes.

Storage (store.py) depends on these and on nothing of the model layer; the model layer
makes :class:`Candidate` records that storage keeps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Candidate:
    """One tag a recognizer proposes for a photo, with its score in [0, 1]."""

    tag: str
    score: float
    path: str  # hierarchy, '/'-separated, starting with the recognizer's root

    def as_json(self) -> dict[str, object]:
        return {"tag": self.tag, "score": round(self.score, 4), "path": self.path}


class KnownFile(NamedTuple):
    """What the index remembers of a file, enough to tell whether it changed.

    A NamedTuple rather than a dataclass: a rescan makes one per indexed photo, and tuples
    are made straight from the row (4x cheaper, bench/million.py).
    """

    id: int
    size: int
    mtime_ns: int
    hash: str
    complete_for: str | None = None  # see Index.mark_complete
    offline: bool = False  # missed by the last scan with its folder (see Index.mark_offline)


class TaggedPhoto(NamedTuple):
    """A photo holding some of the tags a query asks about (``Index.photos_tagged_with``).

    A NamedTuple with the path as stored (``os.fsencode`` bytes), not a dataclass with a
    ``Path``: an album query makes one per matching photo (100,000 at a million photos)
    and needs a ``Path`` only for the few it links anew.
    """

    id: int
    raw: bytes
    mtime_ns: int
    taken_at: str | None
    hash: str
    tags: list[tuple[str, str, float]]  # (recognizer, tag path, score), best first


class KnownFailure(NamedTuple):
    size: int
    mtime_ns: int
    reason: str


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    """A photo as a scan writes it."""

    path: Path
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    taken_at: str | None
    kind: str = "photo"  # photo | raw | video (phototag.media.kinds.FileKind)
    duration: float | None = None  # seconds, for videos


@dataclass(frozen=True, slots=True)
class PhotoView:
    """A photo as the index holds it, with its tags per recognizer."""

    path: Path
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    taken_at: str | None
    scanned_at: float
    tags: dict[str, list[Candidate]]
    embeddings: dict[str, int]  # backbone -> dimension
    detections: list[tuple[str, str, float, tuple[float, float, float, float]]] = field(
        default_factory=list
    )
    kind: str = "photo"
    duration: float | None = None
    companions: list[tuple[Path, str]] = field(default_factory=list)  # (path, role)

    def as_json(self) -> dict[str, object]:
        """Times are ISO 8601 text, all of them (issue 14): ``taken_at`` as the camera wrote
        it (EXIF local time, no offset), file and scan times in local time with the offset."""
        from datetime import datetime

        def local(seconds: float) -> str:
            return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")

        return {
            "path": os.fsdecode(self.path),
            "size": self.size,
            "hash": self.hash,
            "width": self.width,
            "height": self.height,
            "taken_at": self.taken_at,
            "modified_at": local(self.mtime_ns / 1e9),
            "scanned_at": local(self.scanned_at),
            "tags": {r: [c.as_json() for c in cs] for r, cs in self.tags.items()},
            "embeddings": {b: d for b, d in self.embeddings.items() if d},
            "detections": [
                {
                    "backbone": b,
                    "label": label,
                    "score": round(s, 4),
                    "box": [round(v, 4) for v in box],
                }
                for b, label, s, box in self.detections
            ],
            "kind": self.kind,
            "duration": self.duration,
            "companions": [{"path": os.fsdecode(p), "role": r} for p, r in self.companions],
        }


@dataclass(frozen=True, slots=True)
class PhotoTags:
    """A photo and the hierarchy paths of its tags, for writing them into files."""

    id: int
    path: Path
    tag_paths: list[str]
    hash: str = ""


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """What phototag knows of a file it wrote keywords into."""

    target: Path
    photo_id: int | None
    mode: str
    created: bool
    size: int | None
    mtime_ns: int | None
    wanted: str | None
    ours: dict[str, list[str]]
    hash: str | None = None  # the content hash of the photo when it was written
    written_at: float | None = None


@dataclass(frozen=True, slots=True)
class StoredCorrection:
    """A correction row: the tag path, 'add' or 'remove', who made it ('user' or 'file')."""

    hash: str
    path: str
    action: str
    source: str
    at: float


@dataclass(frozen=True, slots=True)
class PhotoWithTags:
    id: int
    path: Path
    mtime_ns: int
    taken_at: str | None
    tags: list[tuple[str, str, float]]  # (recognizer, tag path, score)
    hash: str = ""


@dataclass(frozen=True, slots=True)
class AlbumRecord:
    name: str
    folder: Path
    query: str
    link: str
    html: bool
    updated_at: float


@dataclass(frozen=True, slots=True)
class TagCount:
    recognizer: str
    tag: str
    path: str
    photos: int
