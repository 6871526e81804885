"""What a user needs to choose which copy of a duplicate to keep (issue 14).

:func:`phototag.search.duplicate_groups` finds the groups; :func:`rank_duplicates` puts
into each member what the index knows (bytes, pixels, capture date, content hash), orders
the members so the suggested keeper comes first, and orders the groups so the one that
frees the most space comes first. The keeper is the copy with the most pixels, then the
most bytes (less compression), then one with a capture date (metadata kept), then the
oldest file, then the shortest path; digiKam's and Lightroom's duplicate finders leave the
choice to the user in the same way, phototag only suggests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .index.store import Index


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
    for group in groups:
        rows = []
        for path, _ in group:
            view = index.photo(path)
            if view is None:  # dropped since the groups were made
                continue
            mtime = view.mtime_ns
            rows.append((path, view.size, view.width, view.height, view.taken_at, view.hash, mtime))
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: (-(r[2] or 0) * (r[3] or 0), -r[1], r[4] is None, r[6],
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
        out.append(DuplicateGroup(copies))
    out.sort(key=lambda g: (-g.reclaimable, os.fsencode(g.keeper.path)))
    return out


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
