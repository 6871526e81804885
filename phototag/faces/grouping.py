"""Grouping faces into people, incrementally, never reshuffling what exists.

:func:`group` runs after a scan (and before ``phototag people`` lists anyone):

1. Every face without a person that has a descriptor is compared with the faces that have
   one; if its nearest such face is within ``MATCH_DISTANCE`` (cosine distance), it joins that
   face's person. Named people gain new faces this way; no face that has a person moves.
2. The faces still without a person are clustered among themselves with scikit-learn's DBSCAN
   (cosine metric, ``eps = MATCH_DISTANCE``, ``min_samples = 1``: every face ends in a group,
   a face alone is a person of one face); each cluster becomes a new, unnamed person.

So a nightly scan only ever adds faces to people or adds people; what the user named, merged
or ignored stays as they left it. ``MATCH_DISTANCE`` was chosen on real faces (docs/people.md,
"How the numbers were chosen"; ``bench/face_distances.py`` measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..index import faces as db
from ..index.store import Index

#: Largest cosine distance between two descriptors of one person's faces.
MATCH_DISTANCE = 0.30
#: New faces grouped at a time (DBSCAN's pairwise distances: BLOCK^2 floats at most).
BLOCK = 2000
#: Faces with a person read at a time when new faces look for their nearest (CHUNK x 1024 floats).
CHUNK = 8192


@dataclass(frozen=True, slots=True)
class Grouped:
    joined: int  # new faces that joined an existing person
    new_people: int
    grouped: int  # faces in the new people


def nearest(
    queries: np.ndarray, reference: np.ndarray, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """For each unit row of ``queries`` (Q, D), the index of and cosine distance to its nearest
    row of ``reference`` (R, D), R > 0; in chunks of ``chunk`` reference rows (bounded memory)."""
    best = np.full(len(queries), np.inf, np.float32)
    where = np.zeros(len(queries), np.int64)
    for start in range(0, len(reference), chunk):
        d = 1.0 - queries @ reference[start : start + chunk].T
        j = d.argmin(axis=1)
        v = d[np.arange(len(queries)), j]
        better = v < best
        best[better] = v[better]
        where[better] = j[better] + start
    return where, best


def nearest_person(index: Index, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each unit descriptor in ``queries``, the person of the nearest face that has one
    (-1 if none) and the cosine distance to it; the index's faces are read in chunks of
    ``CHUNK`` (a library's descriptors never all in memory)."""
    best = np.full(len(queries), np.inf, np.float32)
    person = np.full(len(queries), -1, np.int64)
    for _, people, vecs in db.descriptor_chunks(index, assigned=True, chunk=CHUNK):
        j, d = nearest(queries, vecs)
        better = d < best
        best[better] = d[better]
        person[better] = people[j[better]]
    return person, best


def group(index: Index, *, distance: float = MATCH_DISTANCE) -> Grouped:
    """Give every describable face without a person one (see the module's docstring).

    New faces are taken ``BLOCK`` at a time, so that a first scan of a large library neither
    holds every descriptor in memory nor clusters them all at once: faces of a later block
    join the people the earlier blocks formed, by the same nearest-face rule.
    """
    with index.transaction():
        named = name_from_regions(index)
    pending = db.unassigned_face_ids(index)
    joined, new_people, grouped = named, 0, 0
    for start in range(0, len(pending), BLOCK):
        ids, vecs = db.descriptors_of(index, pending[start : start + BLOCK])
        if len(ids) == 0:
            continue
        with index.transaction():
            person, d = nearest_person(index, vecs)
            match = (d <= distance) & (person >= 0)
            by_person: dict[int, list[int]] = {}
            for fid, hit, pid in zip(ids, match, person, strict=True):
                if hit:
                    by_person.setdefault(int(pid), []).append(int(fid))
            for pid, fids in by_person.items():
                db.assign(index, fids, pid, db.Assigned.AUTO)
                joined += len(fids)
            rest_ids, rest_vecs = ids[~match], vecs[~match]
            if len(rest_ids):
                labels = _cluster(rest_vecs, distance)
                for label in np.unique(labels):
                    members = [int(f) for f in rest_ids[labels == label]]
                    pid = db.new_person(index)
                    db.assign(index, members, pid, db.Assigned.AUTO)
                    new_people += 1
                    grouped += len(members)
    return Grouped(joined, new_people, grouped)


def name_from_regions(index: Index) -> int:
    """Faces without a person that another program named (an MWG region) join the person of
    that name, who is made if needed. Returns how many faces were placed."""
    rows = index.conn.execute(
        "SELECT id, region_name FROM faces WHERE person_id IS NULL AND region_name IS NOT NULL"
    ).fetchall()
    for fid, raw in rows:
        name = " ".join(str(raw).split())
        if not name or any(c in name for c in "|/\\") or len(name) > 200:
            continue  # not usable as a keyword level; the face is grouped as any other
        p = db.person_named(index, name)
        pid = p.id if p is not None else db.new_person(index, name)
        db.assign(index, [int(fid)], pid, db.Assigned.REGION)
    return len(rows)


def _cluster(vectors: np.ndarray, distance: float) -> np.ndarray:
    """DBSCAN labels (every point in a cluster: ``min_samples = 1``)."""
    if len(vectors) == 1:
        return np.zeros(1, np.int64)
    from sklearn.cluster import DBSCAN

    labels: np.ndarray = DBSCAN(eps=distance, min_samples=1, metric="cosine").fit_predict(vectors)
    return labels
