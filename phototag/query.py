"""Which photos match a tag query: the selection behind albums and ``--json`` listings.

A query term matches a tag when its '/'-separated parts appear, in order and next to each
other, among the parts of the tag's hierarchy path, ignoring case: ``animal`` matches
``animal/dog/Golden Retriever``, ``dog`` matches it too, and ``wedding`` matches
``scene/event/wedding``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .index.store import Index


@dataclass(frozen=True)
class TagQuery:
    tags: tuple[str, ...] = ()
    any: bool = False  # any of the tags rather than all of them
    exclude: tuple[str, ...] = ()
    min_score: float = 0.0
    since: str | None = None  # ISO date or datetime, inclusive
    until: str | None = None  # ISO date or datetime, inclusive (a date means the whole day)
    under: tuple[str, ...] = ()
    model: str | None = None
    min_count: int = 0  # at least this many detected boxes of each tag's object (person, car, ...)

    def __post_init__(self) -> None:
        if not self.tags:
            raise ConfigError("a tag query needs at least one tag")
        for bound in (self.since, self.until):
            if bound is not None:
                _parse_when(bound)

    def to_json(self) -> str:
        return json.dumps({"kind": "tags", **asdict(self)}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TagQuery:
        return cls(**fields_from_json(d))

    def matches(self, index: Index) -> list[Match]:
        return run_query(index, self)

    def describe(self) -> str:
        joiner = " or " if self.any else " and "
        text = joiner.join(self.tags)
        if self.exclude:
            text += " not " + ", ".join(self.exclude)
        if self.min_score:
            text += f" (score >= {self.min_score:g})"
        if self.since or self.until:
            text += f" taken {self.since or '...'} to {self.until or '...'}"
        if self.under:
            text += " under " + ", ".join(self.under)
        if self.model:
            text += f" [{self.model}]"
        if self.min_count:
            text += f" (at least {self.min_count} each)"
        return text


@dataclass(frozen=True, slots=True)
class Match:
    """A photo that matches, with when it was taken (EXIF, else the file's time)."""

    photo_id: int
    path: Path
    when: datetime
    taken_at: str | None
    tags: list[tuple[str, str, float]] = field(default_factory=list)  # (recognizer, path, score)

    def as_json(self) -> dict[str, object]:
        return {
            "path": os.fsdecode(self.path),
            "taken_at": self.taken_at,
            "date": self.when.isoformat(),
            "tags": [
                {"model": r, "path": p, "tag": p.rsplit("/", 1)[-1], "score": round(s, 4)}
                for r, p, s in self.tags
            ],
        }


def _parse_when(text: str, end: bool = False) -> datetime:
    """A bound of a date range: YYYY, YYYY-MM, YYYY-MM-DD or an ISO date and time. As an
    end (``until``), a year, month or day means its last second."""
    import calendar

    try:
        parts = text.strip().split("-")
        if len(text.strip()) in (4, 7) and all(p.isdigit() for p in parts) and len(parts) <= 2:
            year, month = int(parts[0]), int(parts[1]) if len(parts) == 2 else None
            if not end:
                return datetime(year, month or 1, 1)
            last_month = month or 12
            last_day = calendar.monthrange(year, last_month)[1]
            return datetime(year, last_month, last_day, 23, 59, 59)
        if len(text) == 10:
            d = datetime.fromisoformat(text)
            return d.replace(hour=23, minute=59, second=59) if end else d
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"not a date: {text!r} (use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)"
        ) from None


def term_matches(term: str, tag_path: str) -> bool:
    want = [p.casefold() for p in term.strip("/").split("/") if p]
    have = [p.casefold() for p in tag_path.split("/")]
    n = len(want)
    return n > 0 and any(have[i : i + n] == want for i in range(len(have) - n + 1))


def run_query(index: Index, q: TagQuery) -> list[Match]:
    """Photos matching ``q``, ordered by capture time (then path).

    Filters first, ranks never: the tag paths that match a term are found among the
    index's distinct paths, the photos holding them (at ``min_score``, under the query's
    folders) are selected in SQL, and only those photos are read; a match is never lost
    to a cut made before a filter.
    """
    since = _parse_when(q.since) if q.since else None
    until = _parse_when(q.until, end=True) if q.until else None
    roots = [Path(os.path.abspath(u)) for u in q.under]
    # Terms are matched against the few thousand distinct tag paths once, not against every
    # tag of every photo: below, a photo's tags are only looked up in these sets.
    paths = index.tag_paths()
    # tag path -> the indices of the query's terms it matches, for the paths matching any
    terms_of = {p: {i for i, t in enumerate(q.tags) if term_matches(t, p)} for p in paths}
    terms_of = {p: ts for p, ts in terms_of.items() if ts}
    wanted = list(terms_of)
    excluded = {p for p in paths if any(term_matches(t, p) for t in q.exclude)}
    candidates = index.photo_ids_tagged(wanted, q.model, q.min_score)
    # Counts come from the detector's stored boxes: a term's last part names the object
    # ("person", "object/vehicle/car" -> "car"), boxes must score at least min_score (>= 0.3).
    counts = index.detection_counts(max(0.3, q.min_score)) if q.min_count else {}
    out = []
    needed = set(wanted) | excluded  # only these tags of a photo are read
    for photo in index.photos_with_tags(q.model, under=roots, ids=candidates, only=needed):
        if excluded and any(p in excluded for _, p, _ in photo.tags):
            continue
        good = [(r, p, s) for r, p, s in photo.tags if s >= q.min_score and p in terms_of]
        matched: set[int] = set().union(*(terms_of[p] for _, p, _ in good))
        if not (matched if q.any else len(matched) == len(q.tags)):
            continue
        if q.min_count:
            have = counts.get(photo.id, {})
            enough = [
                have.get(t.strip("/").rsplit("/", 1)[-1].casefold(), 0) >= q.min_count
                for t in q.tags
            ]
            if not (any(enough) if q.any else all(enough)):
                continue
        when = photo_when(photo.taken_at, photo.mtime_ns)
        if (since and when < since) or (until and when > until):
            continue
        out.append(Match(photo.id, photo.path, when, photo.taken_at, good))
    out.sort(key=lambda m: (m.when, os.fsencode(m.path)))
    return out


def fields_from_json(d: dict[str, Any]) -> dict[str, Any]:
    """A stored query's fields as the dataclass takes them (lists back to tuples, no 'kind')."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "kind"}


def photo_when(taken_at: str | None, mtime_ns: int) -> datetime:
    """When a photo was taken: EXIF capture time, else the file's modification time."""
    return datetime.fromisoformat(taken_at) if taken_at else datetime.fromtimestamp(mtime_ns / 1e9)
