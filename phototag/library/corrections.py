"""A user's corrections of a photo's tags, and how they apply to everything phototag shows.

Corrections are kept by the photo's content hash (the index's ``corrections`` table), so
they follow the photo when it is moved or renamed, when its folder goes away and comes
back, and when the index forgets and re-learns it. The index only stores them; the rules
for applying them live here, and every query goes through them: ``album`` and the contact
sheet, ``tags``, ``show``, ``search``, ``similar --by tags`` and the files ``write`` makes.

The rules:

* a **remove** correction names a term (``missile``, ``weapon/missile``); every tag that
  term matches (:func:`phototag.tagpath.term_matches`) is taken off the photo, whatever the
  recognizer;
* an **add** correction names a tag path (``user/Grandma``); the photo carries it with
  score 1.0 under the pseudo-recognizer ``user``;
* a later correction replaces an earlier one it contradicts: adding a tag takes back a
  remove that matched it, and removing a term takes back the adds it matches;
* a keyword phototag wrote into a file and the user then deleted in another program is
  recorded as a remove with source ``file`` (:func:`record_deletion`) and never written back.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from ..errors import ConfigError
from ..index.paths import canonical_path
from ..index.store import Index, PhotoTags, PhotoView, PhotoWithTags, StoredCorrection, TagCount
from ..models.recognizers import Candidate
from ..tagpath import leaf, split, term_matches

#: The pseudo-recognizer of the tags a user added by hand.
USER_RECOGNIZER = "user"
#: Where ``tag add PHOTO Grandma`` puts a one-level tag: ``user/Grandma``.
USER_ROOT = "user"


class Action(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class Source(StrEnum):
    USER = "user"  # phototag tag add/remove
    FILE = "file"  # a keyword phototag wrote was deleted in another program


class NothingToRemove(ConfigError):
    """``tag remove`` of a tag the photo does not have."""


@dataclass(frozen=True, slots=True)
class Corrected:
    """What a ``tag add``/``tag remove`` did: ``changed`` is False when the photo already
    had (or already lacked) the tag and only the correction was confirmed."""

    photo: Path
    photo_id: int
    path: str
    action: Action
    changed: bool


def normalize(tag: str, action: Action) -> str:
    """A tag as typed (``Grandma``, ``scene/nature/seashore``) as a stored path or term.

    Raises :class:`ConfigError` for an empty tag, one with ``|`` (the hierarchy
    separator of lr:hierarchicalSubject, which could not be written back) or with control
    characters (a line break cannot travel to exiftool, NUL not into XML).
    """
    if any(unicodedata.category(c) == "Cc" for c in tag):
        raise ConfigError("a tag may not contain control characters (line breaks, tabs, ...)")
    path = tag.strip().strip("/")
    if not path or "|" in path or not all(p.strip() for p in split(path)):
        raise ConfigError("a tag may not be empty, have empty levels or contain '|'")
    if action is Action.ADD and len(split(path)) == 1:
        path = f"{USER_ROOT}/{path}"
    return path


def apply(
    tags: Sequence[tuple[str, str, float]],
    corrections: Sequence[StoredCorrection],
    recognizer: str | None = None,
) -> list[tuple[str, str, float]]:
    """(recognizer, path, score) tags with the corrections applied; adds only when
    ``recognizer`` is None or ``user``."""
    if not corrections:
        return list(tags)
    removes = [c.path for c in corrections if c.action == Action.REMOVE]
    adds = [c.path for c in corrections if c.action == Action.ADD]
    out = [t for t in tags if not any(term_matches(r, t[1]) for r in removes) and t[1] not in adds]
    if recognizer in (None, USER_RECOGNIZER):
        out.extend((USER_RECOGNIZER, p, 1.0) for p in adds)
    return out


def apply_paths(paths: Sequence[str], corrections: Sequence[StoredCorrection]) -> list[str]:
    """Tag paths with the corrections applied (for writing keywords)."""
    done = apply([("", p, 0.0) for p in paths], corrections)
    return list(dict.fromkeys(p for _, p, _ in done))


def corrected_photos(index: Index, recognizer: str | None = None) -> Iterator[PhotoWithTags]:
    """Every photo with its corrected tags (one recognizer's, if given), in path order."""
    every = index.stored_corrections()
    for photo in index.photos_with_tags(recognizer):
        cs = every.get(photo.hash)
        yield replace(photo, tags=apply(photo.tags, cs, recognizer)) if cs else photo


def corrected_counts(index: Index, recognizer: str | None = None) -> list[TagCount]:
    """Each tag with the number of photos carrying it after corrections, most first.

    The index counts the models' tags; only the corrected photos are looked at here."""
    every = index.stored_corrections()
    if not every:
        return index.tag_counts(recognizer)
    counts = {(c.recognizer, c.path): c.photos for c in index.tag_counts(recognizer)}
    for content, cs in every.items():
        for pid in index.ids_with_hash(content):
            raw = index.tag_rows(pid, recognizer)
            for rec, path in {(r, p) for r, p, _ in raw}:
                counts[rec, path] -= 1
            for rec, path in {(r, p) for r, p, _ in apply(raw, cs, recognizer)}:
                counts[rec, path] = counts.get((rec, path), 0) + 1
    rows = [TagCount(rec, leaf(path), path, n) for (rec, path), n in counts.items() if n > 0]
    rows.sort(key=lambda c: (-c.photos, c.recognizer, c.path))
    return rows


def correct_view(index: Index, view: PhotoView) -> PhotoView:
    """A photo's view with its corrections applied."""
    cs = index.stored_corrections(view.hash).get(view.hash)
    if not cs:
        return view
    flat = [(rec, c.path, c.score) for rec, cands in view.tags.items() for c in cands]
    kept = apply(flat, cs)
    tags: dict[str, list[Candidate]] = {rec: [] for rec in view.tags}
    for rec, p, score in kept:
        tags.setdefault(rec, []).append(Candidate(leaf(p), score, p))
    return replace(view, tags=tags)


def corrected_tags_of(
    index: Index, photo_id: int, recognizer: str | None = None
) -> dict[str, float]:
    """A photo's tag path -> score after corrections."""
    content = index.hash_of(photo_id)
    raw = [("", p, s) for p, s in index.tags_of(photo_id, recognizer).items()]
    cs = index.stored_corrections(content).get(content, []) if content else []
    return {p: s for _, p, s in apply(raw, cs, recognizer)}


def corrected_photo_tags(
    index: Index,
    roots: Sequence[Path] | None = None,
    recognizers: Sequence[str] | None = None,
    photo_ids: Sequence[int] | None = None,
) -> list[PhotoTags]:
    """The photos to write (under ``roots``, or these ids) with their corrected tag paths."""
    photos = (
        index.photos_by_id(photo_ids)
        if photo_ids is not None
        else index.photos_under([canonical_path(r) for r in roots or []], recognizers)
    )
    every = index.stored_corrections()
    return [
        replace(p, tag_paths=apply_paths(p.tag_paths, every[p.hash])) if p.hash in every else p
        for p in photos
    ]


def _photo(index: Index, photo: Path) -> tuple[int, str]:
    path = canonical_path(photo)
    pid = index.photo_id(path)
    content = None if pid is None else index.hash_of(pid)
    if pid is None or content is None:
        raise ConfigError(f"{os.fsdecode(photo)!r} is not in the index: scan it first")
    return pid, content


def add(index: Index, photo: Path, tag: str) -> Corrected:
    """``phototag tag add``: the photo carries ``tag`` from now on, wherever it moves."""
    path = normalize(tag, Action.ADD)
    pid, content = _photo(index, photo)
    had = any(p == path for p in corrected_tags_of(index, pid))
    with index.transaction():
        for c in index.stored_corrections(content).get(content, []):
            if c.action == Action.REMOVE and term_matches(c.path, path):
                index.uncorrect(content, c.path)
        index.correct(content, path, Action.ADD.value, Source.USER.value)
    return Corrected(canonical_path(photo), pid, path, Action.ADD, not had)


def remove(index: Index, photo: Path, tag: str) -> Corrected:
    """``phototag tag remove``: no tag ``tag`` matches is the photo's any more.

    Raises :class:`NothingToRemove` when the photo has no such tag (after corrections).
    """
    term = normalize(tag, Action.REMOVE)
    pid, content = _photo(index, photo)
    current = corrected_tags_of(index, pid)
    if not any(term_matches(term, p) for p in current):
        raise NothingToRemove(
            f"{os.fsdecode(photo)!r} has no tag {term!r}: nothing removed "
            f"(its tags: {', '.join(sorted(current)) or 'none'})"
        )
    with index.transaction():
        for c in index.stored_corrections(content).get(content, []):
            if c.action == Action.ADD and term_matches(term, c.path):
                index.uncorrect(content, c.path)
        model = index.tags_of(pid)
        if any(term_matches(term, p) for p in model):
            index.correct(content, term, Action.REMOVE.value, Source.USER.value)
    return Corrected(canonical_path(photo), pid, term, Action.REMOVE, True)


def record_deletion(index: Index, content_hash: str, path: str) -> None:
    """A keyword phototag wrote for tag ``path`` was deleted by the user in another program:
    remember it like a ``tag remove``, so it is not written back."""
    index.correct(content_hash, path, Action.REMOVE.value, Source.FILE.value)


def sources(index: Index, content_hash: str) -> Mapping[str, str]:
    """tag path -> 'user' or 'file', for the photo's remove corrections (shown by ``show``)."""
    return {
        c.path: c.source
        for c in index.stored_corrections(content_hash).get(content_hash, [])
        if c.action == Action.REMOVE
    }
