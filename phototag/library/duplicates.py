"""What a user needs to choose which copy of a duplicate to keep (issue 14).

:func:`phototag.library.search.duplicate_groups` finds the groups; :func:`rank_duplicates` puts
into each member what the index knows (bytes, pixels, capture date, content hash), orders
the members so the suggested keeper comes first, and orders the groups so the one that
frees the most space comes first. The keeper is a photo with companions (the JPEG of a
RAW+JPEG pair, a Live Photo: removing it would break the pair), then the copy with the most
pixels, then the most bytes (less compression), then one with a capture date (metadata kept), then the
oldest file, then the shortest path; digiKam's and Lightroom's duplicate finders leave the
choice to the user in the same way, phototag only suggests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..index.store import Index
from ..media.kinds import FileKind, classify


@dataclass(frozen=True, slots=True)
class Copy:
    """One member of a group of near-identical photos."""

    path: Path
    similarity: float  # cosine similarity of its embedding to the keeper's (1.0: the keeper)
    size: int  # bytes
    width: int | None
    height: int | None
    taken_at: str | None  # EXIF capture time (ISO 8601), None when the file has none
    same_as: int | None  # the position in its group of the first photo with the same bytes
    # An earlier path in the group that is this very file (same device and inode: a hard
    # link, or two names an index from before one file became one photo still holds).
    same_file_as: Path | None = None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "path": os.fsdecode(self.path), "similarity": round(self.similarity, 4),
            "size": self.size, "width": self.width, "height": self.height,
            "taken_at": self.taken_at, "same_as": self.same_as,
        }  # fmt: skip
        if self.same_file_as is not None:
            out["same_file_as"] = os.fsdecode(self.same_file_as)
        return out


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Near-identical photos, the suggested keeper first."""

    copies: tuple[Copy, ...]

    @property
    def keeper(self) -> Copy:
        return self.copies[0]

    @property
    def identical(self) -> bool:
        """Every copy is byte-identical to the keeper."""
        return all(c.same_as == 0 for c in self.copies[1:])

    @property
    def reclaimable(self) -> int:
        """Bytes freed by keeping only the keeper (a second name of one file frees none)."""
        return sum(c.size for c in self.copies[1:] if c.same_file_as is None)

    def as_json(self) -> dict[str, object]:
        return {"identical": self.identical, "reclaimable": self.reclaimable,
                "photos": [c.as_json() for c in self.copies]}  # fmt: skip


def rank_duplicates(
    index: Index, groups: Sequence[Sequence[tuple[Path, float]]], backbone: str
) -> list[DuplicateGroup]:
    """Groups with each member described and ordered, keeper first; groups by the bytes
    they would free, most first (then by the keeper's path)."""
    out = []
    for whole in groups:
        for group in _like_with_like(index, whole):
            if (made := _rank(index, group, backbone)) is not None:
                out.append(made)
    out.sort(key=lambda g: (-g.reclaimable, os.fsencode(g.keeper.path)))
    return out


def _like_with_like(
    index: Index, group: Sequence[tuple[Path, float]]
) -> list[list[tuple[Path, float]]]:
    """A group split into its videos and its stills (a clip made from a photo's frames is
    not a copy of it), without any member that is a companion of another member (the JPEG
    or RAW half of a pair, a Live Photo's video: the same photo, never a removable copy)."""
    companions: set[Path] = set()
    for path, _ in group:
        view = index.photo(path)
        if view is not None:
            companions.update(p for p, _ in view.companions)
    videos: list[tuple[Path, float]] = []
    stills: list[tuple[Path, float]] = []
    for member in group:
        if member[0] in companions:
            continue
        (videos if classify(member[0].name) is FileKind.VIDEO else stills).append(member)
    return [g for g in (stills, videos) if len(g) > 1]


def _rank(
    index: Index, group: Sequence[tuple[Path, float]], backbone: str
) -> DuplicateGroup | None:
    """The group described and ordered, keeper first (None: fewer than two left)."""
    rows = []
    for path, _ in group:
        view = index.photo(path)
        if view is None:  # dropped since the groups were made
            continue
        mtime = view.mtime_ns
        paired = bool(view.companions)  # removing it would break its RAW+JPEG or Live Photo
        rows.append(
            (path, view.size, view.width, view.height, view.taken_at, view.hash, mtime, paired)
        )
    if len(rows) < 2:
        return None
    rows.sort(key=lambda r: (not r[7], -(r[2] or 0) * (r[3] or 0), -r[1], r[4] is None, r[6],
                             len(os.fsencode(r[0])), os.fsencode(r[0])))  # fmt: skip
    first_with: dict[str, int] = {}
    for i, r in enumerate(rows):
        first_with.setdefault(r[5], i)
    sims = _similarities(index, [r[0] for r in rows], backbone)
    twins = _same_file_as([r[0] for r in rows])
    copies = tuple(
        Copy(r[0], s, r[1], r[2], r[3], r[4],
             None if first_with[r[5]] == i else first_with[r[5]], twins.get(i))
        for i, (r, s) in enumerate(zip(rows, sims, strict=True))
    )  # fmt: skip
    return DuplicateGroup(copies)


def _same_file_as(paths: list[Path]) -> dict[int, Path]:
    """Position -> an earlier path in ``paths`` that is the same file (st_dev, st_ino)."""
    seen: dict[tuple[int, int], Path] = {}
    out: dict[int, Path] = {}
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            out[i] = seen[key]
        else:
            seen[key] = p
    return out


def _similarities(index: Index, paths: list[Path], backbone: str) -> list[float]:
    """Cosine similarity of each photo's embedding to the first's (1.0 where one is missing
    and for the first itself)."""
    vecs = [index.embedding(p, backbone) for p in paths]
    first = vecs[0]
    if first is None:
        return [1.0] * len(paths)
    unit = first / max(float(np.linalg.norm(first)), 1e-12)
    out = []
    for v in vecs:
        if v is None:
            out.append(1.0)
        else:
            out.append(float(v @ unit / max(float(np.linalg.norm(v)), 1e-12)))
    out[0] = 1.0
    return out
