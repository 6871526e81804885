"""Which photos match a tag query: the selection behind albums and ``--json`` listings.

A query term matches a tag when it names a run of consecutive levels of the tag's
hierarchy path, ignoring case (:func:`phototag.tagpath.term_matches`): ``animal`` matches
``animal/dog/Golden Retriever``, ``dog`` matches it too, ``wedding`` matches
``scene/event/wedding``, and ``AC/DC`` matches the keyword ``AC/DC`` kept verbatim. The
tags are the models' with the user's corrections applied (:mod:`phototag.library.corrections`).
"""

from __future__ import annotations

import gc
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..index.paths import canonical_path, decode_path, encode_path
from ..index.records import PhotoWithTags, TaggedPhoto
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
    """A photo that matches, with when it was taken (EXIF, else the file's time).

    ``raw``: its path as the index stores it (``os.fsencode`` bytes); :attr:`path` makes
    the ``Path`` when asked, so a query matching 100,000 photos makes none until an album
    links one anew.
    """

    photo_id: int
    raw: bytes
    when: datetime
    taken_at: str | None
    tags: list[tuple[str, str, float]] = field(default_factory=list)  # (recognizer, path, score)

    @property
    def path(self) -> Path:
        return decode_path(self.raw)

    def as_json(self) -> dict[str, object]:
        return {
            "path": os.fsdecode(self.raw),
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


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a query builds its results.

    A query matching 100,000 photos makes a few objects per photo and no cycles, yet each
    few hundred allocations start a collection, and the older generations' ones walk every
    object made so far: measured, they were 40 % of an album query's time. Only a
    collector that was on is turned back on.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def run_query(index: Index, q: TagQuery) -> list[Match]:
    """Photos matching ``q``, ordered by capture time (then path).

    Filters first, ranks never: the tag paths that match a term are found among the
    index's distinct paths, the photos holding them (at ``min_score``, under the query's
    folders) are selected in SQL, and only those photos are read; a match is never lost
    to a cut made before a filter. A query by tags alone reads its photos in one pass
    (:meth:`~phototag.index.store.Index.photos_tagged_with`); a photo's tags are then
    matched by lookups in per-path tables, not by matching terms again.
    """
    with collection_paused():
        return _run_query(index, q)


def _run_query(index: Index, q: TagQuery) -> list[Match]:
    since = _parse_when(q.since) if q.since else None
    until = _parse_when(q.until, end=True) if q.until else None
    roots = [canonical_path(u) for u in q.under]
    # Terms are matched against the few thousand distinct tag paths once, not against every
    # tag of every photo: below, a photo's tags are only looked up in these tables (a path
    # that only a correction brings is matched when first met).
    terms_of: dict[str, frozenset[int]] = {}
    excluded_of: dict[str, bool] = {}

    def terms_in(path: str) -> frozenset[int]:
        """Which of the query's terms (by index) ``path`` matches."""
        found = terms_of.get(path)
        if found is None:
            found = frozenset(i for i, t in enumerate(q.tags) if term_matches(t, path))
            terms_of[path] = found
        return found

    def is_excluded(path: str) -> bool:
        found = excluded_of.get(path)
        if found is None:
            found = excluded_of[path] = any(term_matches(t, path) for t in q.exclude)
        return found

    paths = index.tag_paths()
    wanted = [p for p in paths if terms_in(p)]
    excluded = {p for p in paths if is_excluded(p)}
    # Counts come from the detector's stored boxes: a term's last part names the object
    # ("person", "object/vehicle/car" -> "car"), boxes must score at least min_score (>= 0.3).
    counts = index.detection_counts(max(0.3, q.min_score)) if q.min_count else {}
    with_people: set[int] | None = None
    if q.people:
        from .people import photos_of

        with_people = set(photos_of(index, q.people, every=not q.any))
    from .corrections import USER_RECOGNIZER, apply

    # The user's corrections apply above storage (phototag/library/corrections.py): a tag added by
    # hand is a tag, a removed one is not. Photos whose corrections add a matching tag are
    # candidates too; removes are applied to the tags read below.
    every = index.stored_corrections()
    corrected: set[int] = set()
    if q.model in (None, USER_RECOGNIZER):
        for content, cs in every.items():
            adds = [c.path for c in cs if c.action == "add"]
            if any(terms_in(p) for p in adds):
                corrected.update(index.ids_with_hash(content))
            excluded.update(p for p in adds if is_excluded(p))
    needed = set(wanted) | excluded  # only these tags of a photo are read
    photos: Iterable[TaggedPhoto]
    if with_people is None:
        # Every photo holding a wanted or excluded tag, in one pass; those a correction
        # makes candidates without a stored tag of the query are read by id.
        tagged = index.photos_tagged_with(needed, q.model, under=roots) if wanted else []
        rest = corrected - {photo.id for photo in tagged}
        photos = itertools.chain(tagged, _as_tagged(index.photos_with_tags(
            q.model, under=roots, ids=rest, only=needed)) if rest else ())  # fmt: skip
    else:
        candidates = index.photo_ids_tagged(wanted, q.model, q.min_score) if wanted else set()
        candidates |= corrected
        if not q.tags:
            candidates = set(with_people)
        elif q.any:
            candidates |= with_people
        else:
            candidates &= with_people
        photos = _as_tagged(
            index.photos_with_tags(q.model, under=roots, ids=candidates, only=needed)
        )
    out = []
    every_term = range(len(q.tags))
    for stored in photos:
        fixes = every.get(stored.hash)
        tags = apply(stored.tags, fixes, q.model) if fixes else stored.tags
        if q.exclude and any(is_excluded(p) for _, p, _ in tags):
            continue
        matched: set[int] = set()
        shown = []
        for tag in tags:
            if tag[2] >= q.min_score and (ts := terms_in(tag[1])):
                matched |= ts
                shown.append(tag)
        hits = [i in matched for i in every_term]
        if with_people is not None:
            hits.append(stored.id in with_people)
        if not (any(hits) if q.any else all(hits)):
            continue
        if q.min_count:
            have = counts.get(stored.id, {})
            enough = [have.get(leaf(t.strip("/")).casefold(), 0) >= q.min_count for t in q.tags]
            if not (any(enough) if q.any else all(enough)):
                continue
        when = photo_when(stored.taken_at, stored.mtime_ns)
        if (since and when < since) or (until and when > until):
            continue
        out.append(Match(stored.id, stored.raw, when, stored.taken_at, shown))
    out.sort(key=lambda m: (m.when, m.raw))
    return out


def _as_tagged(photos: Iterable[PhotoWithTags]) -> Iterator[TaggedPhoto]:
    for p in photos:
        yield TaggedPhoto(p.id, encode_path(p.path), p.mtime_ns, p.taken_at, p.hash, p.tags)


def fields_from_json(d: dict[str, Any]) -> dict[str, Any]:
    """A stored query's fields as the dataclass takes them (lists back to tuples, no 'kind')."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "kind"}


def photo_when(taken_at: str | None, mtime_ns: int) -> datetime:
    """When a photo was taken: EXIF capture time, else the file's modification time."""
    return datetime.fromisoformat(taken_at) if taken_at else datetime.fromtimestamp(mtime_ns / 1e9)
