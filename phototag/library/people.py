"""People: what ``phototag people`` does with the faces a scan found.

Grouping is in :mod:`phototag.faces.grouping`; this module is the user's side of it:
listing, naming, merging, moving a face out, ignoring, and forgetting everything. Every change
is one index transaction. Names never move a face that already has a person; a name applies to
all the person's faces and to new faces that match them later (grouping adds them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PersonError
from ..faces.analyzer import RECOGNIZER
from ..faces.grouping import group
from ..faces.step import set_faces_off
from ..index import faces as db
from ..index.store import Index
from ..metadata.keywords import Field
from ..metadata.regions import FaceRegion

Person = db.Person
#: The top of the people keyword hierarchy (digiKam's and Lightroom's convention).
PEOPLE_ROOT = "People"


def _clean_name(name: str) -> str:
    text = " ".join(name.split())
    if not text:
        raise PersonError("a person's name cannot be empty")
    if any(c in text for c in "|/\\") or any(ord(c) < 32 for c in text):
        # '|' and '/' separate levels in lr:hierarchicalSubject and digiKam:TagsList.
        raise PersonError(f"a person's name cannot contain '|', '/' or '\\': {name!r}")
    if any(0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff" for c in text):
        raise PersonError(f"a person's name must be valid Unicode text: {name!r}")
    if len(text) > 200:
        raise PersonError("a person's name is limited to 200 characters")
    return text


def resolve(index: Index, ref: str) -> Person:
    """A person by id (``12``) or name (any case). Raises :class:`PersonError`."""
    p = db.person(index, int(ref)) if ref.isdigit() else db.person_named(index, ref)
    if p is None:
        raise PersonError(f"no person {ref!r}: see 'phototag people'")
    return p


def list_people(index: Index, *, include_ignored: bool = False) -> list[Person]:
    """Everyone with faces, most faces first; new faces are grouped first."""
    group(index)
    return db.people(index, include_ignored=include_ignored)


def name(index: Index, ref: str, new_name: str) -> Person:
    """Name a person. A name another person already has merges this one into that one."""
    target_name = _clean_name(new_name)
    p = resolve(index, ref)
    other = db.person_named(index, target_name)
    with index.transaction():
        if other is not None and other.id != p.id:
            _merge(index, [p.id], other.id)
            result = other.id
        else:
            db.rename(index, p.id, target_name)
            db.assign(
                index, [f.id for f in db.faces_of_person(index, p.id)], p.id, db.Assigned.USER
            )
            result = p.id
    out = db.person(index, result)
    assert out is not None
    return out


def unname(index: Index, ref: str) -> Person:
    p = resolve(index, ref)
    with index.transaction():
        db.rename(index, p.id, None)
    return resolve(index, str(p.id))


def _merge(index: Index, sources: Sequence[int], target: int) -> None:
    for s in sources:
        if s == target:
            continue
        db.assign(index, [f.id for f in db.faces_of_person(index, s)], target, db.Assigned.USER)
        index.conn.execute("DELETE FROM people WHERE id = ?", (s,))


def merge(index: Index, refs: Sequence[str], into: str) -> Person:
    """Move every face of ``refs`` to ``into``; the merged people are gone."""
    target = resolve(index, into)
    sources = [resolve(index, r).id for r in refs]
    with index.transaction():
        _merge(index, sources, target.id)
    return resolve(index, str(target.id))


def remove_face(index: Index, face_id: int, to: str | None = None) -> Person:
    """Take a face out of its person: into ``to`` (a person, or a new name), or a new person of
    its own. Returns the face's person afterwards."""
    f = db.face(index, face_id)
    if f is None:
        raise PersonError(f"no face {face_id}: see 'phototag people show PERSON'")
    with index.transaction():
        if to is None:
            pid = db.new_person(index)
        else:
            existing = db.person(index, int(to)) if to.isdigit() else db.person_named(index, to)
            if existing is not None:
                pid = existing.id
            elif to.isdigit():
                raise PersonError(f"no person {to!r}: see 'phototag people'")
            else:
                pid = db.new_person(index, _clean_name(to))
        db.assign(index, [face_id], pid, db.Assigned.USER)
        db.drop_empty_people(index)
    return resolve(index, str(pid))


def ignore(index: Index, ref: str, ignored: bool = True) -> Person:
    """An ignored person (a stranger in the background) is not listed or written into files;
    new faces that match them are ignored too."""
    p = resolve(index, ref)
    with index.transaction():
        db.set_ignored(index, p.id, ignored)
    return resolve(index, str(p.id))


@dataclass(frozen=True, slots=True)
class Forgotten:
    faces: int
    people: int


def forget(index: Index) -> Forgotten:
    """Every face, descriptor and person in the index, and the people tags faces gave; and
    faces off for later scans of this index (``scan --faces`` turns them on again).

    What was already written into files stays there until ``phototag write`` or ``clean``
    (which take back exactly what phototag wrote).
    """
    with index.transaction():
        faces_n, people_n = db.forget_all(index, RECOGNIZER)
        set_faces_off(index, True)
    return Forgotten(faces_n, people_n)


def photos_of(index: Index, names: Sequence[str], *, every: bool) -> list[int]:
    """Photos (ids, by path) showing any of these people, or with ``every`` all of them."""
    people = [resolve(index, n) for n in names]
    return db.photos_of_people(index, [p.id for p in people], every=every)


def keyword_values(
    index: Index, photo_id: int, *, flat: bool, hierarchical: bool, iptc: bool
) -> dict[Field, list[str]]:
    """What the named people in a photo add to its metadata fields.

    ``People|Hanako`` (lr:hierarchicalSubject) and ``People/Hanako`` (digiKam:TagsList): the
    top level digiKam and Lightroom use for people, not phototag's root, so that they merge with
    the user's own people tags; ``Hanako`` in dc:subject (and IPTC:Keywords where IPTC is
    written) and Iptc4xmpExt:PersonInImage; one MWG face region per face (Field.REGIONS).
    """
    named = db.named_people_of(index, photo_id)
    if not named:
        return {}
    names = list(dict.fromkeys(f.name for f in named))
    out: dict[Field, list[str]] = {Field.PERSON: names}
    if flat:
        out[Field.SUBJECT] = list(names)
        if iptc:
            out[Field.IPTC] = list(names)
    if hierarchical:
        out[Field.HIERARCHICAL] = [f"{PEOPLE_ROOT}|{n}" for n in names]
        out[Field.TAGSLIST] = [f"{PEOPLE_ROOT}/{n}" for n in names]
    # A face another program named already has its region in the photo: none is added.
    made = [FaceRegion.from_box(f.name, f.box).encode() for f in named if not f.has_region]
    if made:
        out[Field.REGIONS] = made
    return out


def with_people(
    wanted: dict[Field, list[str]],
    index: Index,
    photo_id: int,
    *,
    flat: bool,
    hierarchical: bool,
    iptc: bool,
) -> dict[Field, list[str]]:
    """``wanted`` (the tags' keyword values) plus the people's, each field without repeats."""
    extra = keyword_values(index, photo_id, flat=flat, hierarchical=hierarchical, iptc=iptc)
    out = {f: list(v) for f, v in wanted.items()}
    for f, values in extra.items():
        have = {v.casefold() for v in out.get(f, [])}
        out[f] = out.get(f, []) + [v for v in values if v.casefold() not in have]
    return out


def photo_dims(index: Index, photo_id: int) -> tuple[int, int] | None:
    """The photo's displayed size in pixels, if the index knows it."""
    row = index.conn.execute(
        "SELECT width, height FROM photos WHERE id = ?", (photo_id,)
    ).fetchone()
    return (int(row[0]), int(row[1])) if row and row[0] and row[1] else None


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """A face like the one asked about: its photo, person and cosine distance."""

    face_id: int
    photo: Path
    person_id: int | None
    distance: float


def similar_faces(
    index: Index, face_id: int, *, top: int = 20, max_distance: float = 0.5
) -> list[FaceMatch]:
    """The ``top`` faces nearest to face ``face_id`` (itself excluded), nearest first, within
    ``max_distance``: one face finds a person's photos, named or not. Reads the descriptors in
    chunks (bounded memory)."""
    query = db.descriptor(index, face_id)
    if query is None:
        if db.face(index, face_id) is None:
            raise PersonError(f"no face {face_id}: see 'phototag people show PERSON'")
        raise PersonError(f"face {face_id} is too small to have a descriptor")
    best: list[tuple[float, int, int]] = []  # (distance, face, person or -1)
    for assigned in (True, False):
        for ids, people, vecs in db.descriptor_chunks(index, assigned=assigned, chunk=8192):
            d = 1.0 - vecs @ query
            keep = np.argsort(d)[: top + 1]
            best += [(float(d[k]), int(ids[k]), int(people[k])) for k in keep]
            best = sorted(best)[: top + 1]
    out = []
    for dist, fid, pid in best:
        if fid == face_id or dist > max_distance:
            continue
        path = db.path_of_face(index, fid)
        if path is not None:
            out.append(FaceMatch(fid, path, None if pid < 0 else pid, dist))
    return out[:top]
