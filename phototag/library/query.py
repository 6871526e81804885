"""Which photos match a tag query: the selection behind albums and ``--json`` listings.

A query term matches a tag when it names a run of consecutive levels of the tag's
hierarchy path, ignoring case (:func:`phototag.tagpath.term_matches`): ``animal`` matches
``animal/dog/Golden Retriever``, ``dog`` matches it too, ``wedding`` matches
``scene/event/wedding``, and ``AC/DC`` matches the keyword ``AC/DC`` kept verbatim. The
tags are the models' with the user's corrections applied (:mod:`phototag.library.corrections`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..index.store import Index
from ..tagpath import leaf
from ..tagpath import term_matches as term_matches  # re-exported: where callers found it


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
    people: tuple[str, ...] = ()  # named people (phototag people), all of them unless ``any``

    def __post_init__(self) -> None:
        if not self.tags and not self.people:
            raise ConfigError("an album needs at least one tag or person")
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
        text = joiner.join([*self.tags, *(f"person {p}" for p in self.people)])
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
                {"model": r, "path": p, "tag": leaf(p), "score": round(s, 4)}
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
    candidates = index.photo_ids_tagged(wanted, q.model, q.min_score) if wanted else set()
    # Counts come from the detector's stored boxes: a term's last part names the object
    # ("person", "object/vehicle/car" -> "car"), boxes must score at least min_score (>= 0.3).
    counts = index.detection_counts(max(0.3, q.min_score)) if q.min_count else {}
    with_people: set[int] | None = None
    if q.people:
        from .people import photos_of

        with_people = set(photos_of(index, q.people, every=not q.any))
    out = []
    from .corrections import USER_RECOGNIZER, apply

    # The user's corrections apply above storage (phototag/library/corrections.py): a tag added by
    # hand is a tag, a removed one is not. Photos whose corrections add a matching tag are
    # candidates too; removes are applied to the tags read below.
    every = index.stored_corrections()
    if q.model in (None, USER_RECOGNIZER):
        for content, cs in every.items():
            adds = [c.path for c in cs if c.action == "add"]
            if any(term_matches(t, p) for t in q.tags for p in adds):
                candidates.update(index.ids_with_hash(content))
            excluded.update(p for p in adds if any(term_matches(t, p) for t in q.exclude))
    if with_people is not None:
        if not q.tags:
            candidates = set(with_people)
        elif q.any:
            candidates |= with_people
        else:
            candidates &= with_people
    needed = set(wanted) | excluded  # only these tags of a photo are read
    for stored in index.photos_with_tags(q.model, under=roots, ids=candidates, only=needed):
        fixes = every.get(stored.hash)
        photo = replace(stored, tags=apply(stored.tags, fixes, q.model)) if fixes else stored
        if q.exclude and any(term_matches(t, p) for t in q.exclude for _, p, _ in photo.tags):
            continue
        good = [(r, p, s) for r, p, s in photo.tags if s >= q.min_score]
        hits = [any(term_matches(t, p) for _, p, _ in good) for t in q.tags]
        if with_people is not None:
            hits.append(photo.id in with_people)
        if not (any(hits) if q.any else all(hits)):
            continue
        if q.min_count:
            have = counts.get(photo.id, {})
            enough = [have.get(leaf(t.strip("/")).casefold(), 0) >= q.min_count for t in q.tags]
            if not (any(enough) if q.any else all(enough)):
                continue
        when = photo_when(photo.taken_at, photo.mtime_ns)
        if (since and when < since) or (until and when > until):
            continue
        shown = [(r, p, s) for r, p, s in good if any(term_matches(t, p) for t in q.tags)]
        out.append(Match(photo.id, photo.path, when, photo.taken_at, shown))
    out.sort(key=lambda m: (m.when, os.fsencode(m.path)))
    return out


def fields_from_json(d: dict[str, Any]) -> dict[str, Any]:
    """A stored query's fields as the dataclass takes them (lists back to tuples, no 'kind')."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "kind"}


def photo_when(taken_at: str | None, mtime_ns: int) -> datetime:
    """When a photo was taken: EXIF capture time, else the file's modification time."""
    return datetime.fromisoformat(taken_at) if taken_at else datetime.fromtimestamp(mtime_ns / 1e9)
