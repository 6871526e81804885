"""The index's faces and people tables: every face query phototag runs is here.

Functions of an open :class:`~phototag.index.store.Index` (they join its transactions),
kept out of ``store.py`` because faces are one concern. Descriptors are float16
little-endian, as photo embeddings are; boxes are fractions of the upright photo.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from .store import Index, decode_path

DESCRIPTOR_DIM = 1024


class Assigned(StrEnum):
    """How a face got its person."""

    AUTO = "auto"  # grouping
    USER = "user"  # named, merged or moved by hand
    REGION = "region"  # a name from another program's MWG face region


@dataclass(frozen=True, slots=True)
class FaceRow:
    id: int
    photo_id: int
    box: tuple[float, float, float, float]
    score: float
    quality: float
    person_id: int | None
    assigned: Assigned
    has_descriptor: bool


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    name: str | None
    ignored: bool
    faces: int
    photos: int
    best_face: int | None  # the face of highest quality: the person's representative face

    @property
    def label(self) -> str:
        return self.name or f"person {self.id}"


@dataclass(frozen=True, slots=True)
class NewFace:
    """A face to store: what the analyzer found, or a region another program named."""

    box: tuple[float, float, float, float]
    score: float
    quality: float
    landmarks: np.ndarray | None
    descriptor: np.ndarray | None


def _blob(v: np.ndarray | None, dtype: str) -> bytes | None:
    return None if v is None else np.asarray(v, dtype=dtype).tobytes()


def set_faces(index: Index, photo_id: int, faces: Sequence[NewFace]) -> list[int]:
    """Replace the faces of a photo; returns the new face ids, in order."""
    index.conn.execute("DELETE FROM faces WHERE photo_id = ?", (photo_id,))
    ids = []
    for f in faces:
        cur = index.conn.execute(
            """INSERT INTO faces (photo_id, x1, y1, x2, y2, score, quality, landmarks, descriptor)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                photo_id,
                *f.box,
                f.score,
                f.quality,
                _blob(f.landmarks, "<f4"),
                _blob(f.descriptor, "<f2"),
            ),
        )
        ids.append(int(cur.lastrowid or 0))
    return ids


def copy_faces(index: Index, source_id: int, target_id: int) -> None:
    """A copy of a photo (same content) has the same faces, of the same people."""
    index.conn.execute("DELETE FROM faces WHERE photo_id = ?", (target_id,))
    index.conn.execute(
        """INSERT INTO faces (photo_id, x1, y1, x2, y2, score, quality, landmarks, descriptor,
                              person_id, assigned, region_name)
           SELECT ?, x1, y1, x2, y2, score, quality, landmarks, descriptor, person_id, assigned,
                  region_name FROM faces WHERE photo_id = ?""",
        (target_id, source_id),
    )


def _row(r: Sequence[object]) -> FaceRow:
    return FaceRow(
        id=int(r[0]),  # type: ignore[call-overload]
        photo_id=int(r[1]),  # type: ignore[call-overload]
        box=(float(r[2]), float(r[3]), float(r[4]), float(r[5])),  # type: ignore[arg-type]
        score=float(r[6]),  # type: ignore[arg-type]
        quality=float(r[7]),  # type: ignore[arg-type]
        person_id=None if r[8] is None else int(r[8]),  # type: ignore[call-overload]
        assigned=Assigned(str(r[9])),
        has_descriptor=bool(r[10]),
    )


_FACE_COLUMNS = (
    "id, photo_id, x1, y1, x2, y2, score, quality, person_id, assigned, descriptor IS NOT NULL"
)


def faces_of(index: Index, photo_id: int) -> list[FaceRow]:
    rows = index.conn.execute(
        f"SELECT {_FACE_COLUMNS} FROM faces WHERE photo_id = ? ORDER BY x1", (photo_id,)
    )
    return [_row(r) for r in rows]


def face(index: Index, face_id: int) -> FaceRow | None:
    r = index.conn.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE id = ?", (face_id,)).fetchone()
    return None if r is None else _row(r)


def faces_of_person(index: Index, person_id: int) -> list[FaceRow]:
    rows = index.conn.execute(
        f"SELECT {_FACE_COLUMNS} FROM faces WHERE person_id = ? ORDER BY quality DESC", (person_id,)
    )
    return [_row(r) for r in rows]


def unassigned_face_ids(index: Index) -> list[int]:
    """Faces with a descriptor and no person, oldest first."""
    rows = index.conn.execute(
        "SELECT id FROM faces WHERE person_id IS NULL AND descriptor IS NOT NULL ORDER BY id"
    )
    return [int(r[0]) for r in rows]


def _vectors(rows: Iterable[Sequence[object]]) -> tuple[list[int], list[int], list[np.ndarray]]:
    ids, people, vecs = [], [], []
    for fid, pid, blob in rows:
        v = np.frombuffer(blob, dtype="<f2")  # type: ignore[call-overload]
        if v.shape != (DESCRIPTOR_DIM,):
            continue  # not written by this phototag: never trusted
        ids.append(int(fid))  # type: ignore[call-overload]
        people.append(-1 if pid is None else int(pid))  # type: ignore[call-overload]
        vecs.append(v)
    return ids, people, vecs


def descriptors_of(index: Index, face_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Face ids (K,) and descriptors (K, 1024) float32 of these faces (those that have one)."""
    rows = []
    for start in range(0, len(face_ids), 500):
        part = list(face_ids[start : start + 500])
        marks = ",".join("?" * len(part))
        rows += index.conn.execute(
            f"SELECT id, person_id, descriptor FROM faces WHERE id IN ({marks}) "
            "AND descriptor IS NOT NULL ORDER BY id",
            part,
        ).fetchall()
    ids, _, vecs = _vectors(rows)
    if not vecs:
        return np.zeros(0, np.int64), np.zeros((0, DESCRIPTOR_DIM), np.float32)
    return np.asarray(ids), np.stack(vecs).astype(np.float32)


def descriptor_chunks(
    index: Index, *, assigned: bool, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(face ids, person ids, descriptors float32) of the faces with (``assigned``) or without a
    person, ``chunk`` faces at a time, by id: bounded memory for any library."""
    cond = "IS NOT NULL" if assigned else "IS NULL"
    last = -1
    while True:
        rows = index.conn.execute(
            f"SELECT id, person_id, descriptor FROM faces WHERE descriptor IS NOT NULL "
            f"AND person_id {cond} AND id > ? ORDER BY id LIMIT ?",
            (last, chunk),
        ).fetchall()
        if not rows:
            return
        last = int(rows[-1][0])
        ids, people, vecs = _vectors(rows)
        if vecs:
            yield np.asarray(ids), np.asarray(people), np.stack(vecs).astype(np.float32)


def descriptor(index: Index, face_id: int) -> np.ndarray | None:
    row = index.conn.execute("SELECT descriptor FROM faces WHERE id = ?", (face_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    v = np.frombuffer(row[0], dtype="<f2")
    return v.astype(np.float32) if v.shape == (DESCRIPTOR_DIM,) else None


def new_person(index: Index, name: str | None = None) -> int:
    cur = index.conn.execute(
        "INSERT INTO people (name, ignored, created_at) VALUES (?, 0, ?)", (name, time.time())
    )
    return int(cur.lastrowid or 0)


def assign(index: Index, face_ids: Iterable[int], person_id: int | None, how: Assigned) -> None:
    index.conn.executemany(
        "UPDATE faces SET person_id = ?, assigned = ? WHERE id = ?",
        [(person_id, how.value, f) for f in face_ids],
    )


def set_region_name(index: Index, face_id: int, name: str) -> None:
    index.conn.execute("UPDATE faces SET region_name = ? WHERE id = ?", (name, face_id))


def person(index: Index, person_id: int) -> Person | None:
    return next((p for p in people(index, include_ignored=True) if p.id == person_id), None)


def person_named(index: Index, name: str) -> Person | None:
    row = index.conn.execute(
        "SELECT id FROM people WHERE name = ? COLLATE NOCASE", (name,)
    ).fetchone()
    return None if row is None else person(index, int(row[0]))


def people(index: Index, *, include_ignored: bool = False) -> list[Person]:
    """People with at least one face, most faces first (named before unnamed at equal counts)."""
    rows = index.conn.execute(
        """SELECT p.id, p.name, p.ignored, COUNT(f.id), COUNT(DISTINCT f.photo_id),
                  (SELECT id FROM faces WHERE person_id = p.id ORDER BY quality DESC LIMIT 1)
           FROM people p JOIN faces f ON f.person_id = p.id
           GROUP BY p.id
           ORDER BY COUNT(f.id) DESC, p.name IS NULL, p.id"""
    )
    out = [Person(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]
    return out if include_ignored else [p for p in out if not p.ignored]


def rename(index: Index, person_id: int, name: str | None) -> None:
    index.conn.execute("UPDATE people SET name = ? WHERE id = ?", (name, person_id))


def set_ignored(index: Index, person_id: int, ignored: bool) -> None:
    index.conn.execute("UPDATE people SET ignored = ? WHERE id = ?", (int(ignored), person_id))


def drop_empty_people(index: Index) -> int:
    """Unnamed people without faces are gone (named ones stay: new photos may match them)."""
    return index.conn.execute(
        """DELETE FROM people WHERE name IS NULL
           AND NOT EXISTS (SELECT 1 FROM faces WHERE person_id = people.id)"""
    ).rowcount


def photos_of_people(index: Index, person_ids: Sequence[int], *, every: bool) -> list[int]:
    """Photo ids showing any (``every``: all) of these people, by path."""
    if not person_ids:
        return []
    marks = ",".join("?" * len(person_ids))
    having = f"HAVING COUNT(DISTINCT f.person_id) = {len(set(person_ids))}" if every else ""
    rows = index.conn.execute(
        f"""SELECT f.photo_id FROM faces f JOIN photos p ON p.id = f.photo_id
            WHERE f.person_id IN ({marks}) GROUP BY f.photo_id {having} ORDER BY p.path""",
        list(person_ids),
    )
    return [int(r[0]) for r in rows]


@dataclass(frozen=True, slots=True)
class NamedFace:
    name: str
    box: tuple[float, float, float, float]
    has_region: bool  # the photo already holds a region of this name (another program's)


def named_people_of(index: Index, photo_id: int) -> list[NamedFace]:
    """The named, not ignored people in a photo with their face boxes, left to right."""
    rows = index.conn.execute(
        """SELECT p.name, f.x1, f.y1, f.x2, f.y2, f.region_name FROM faces f
           JOIN people p ON p.id = f.person_id
           WHERE f.photo_id = ? AND p.name IS NOT NULL AND p.ignored = 0 ORDER BY f.x1""",
        (photo_id,),
    )
    return [
        NamedFace(str(r[0]), (float(r[1]), float(r[2]), float(r[3]), float(r[4])),
                  r[5] is not None and str(r[5]).casefold() == str(r[0]).casefold())
        for r in rows
    ]  # fmt: skip


def face_boxes(
    index: Index, photo_ids: Sequence[int]
) -> dict[int, list[tuple[str | None, tuple[float, float, float, float]]]]:
    """For these photos, each face's person name (None: unnamed, ignored or no person) and box,
    left to right: what a contact sheet draws."""
    out: dict[int, list[tuple[str | None, tuple[float, float, float, float]]]] = {}
    wanted = set(photo_ids)
    rows = index.conn.execute(
        """SELECT f.photo_id, CASE WHEN p.ignored = 0 THEN p.name END, f.x1, f.y1, f.x2, f.y2
           FROM faces f LEFT JOIN people p ON p.id = f.person_id ORDER BY f.photo_id, f.x1"""
    )
    for pid, name, x1, y1, x2, y2 in rows:
        if pid in wanted:
            out.setdefault(int(pid), []).append(
                (name, (float(x1), float(y1), float(x2), float(y2)))
            )
    return out


def path_of_face(index: Index, face_id: int) -> Path | None:
    row = index.conn.execute(
        "SELECT p.path FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.id = ?", (face_id,)
    ).fetchone()
    return None if row is None else decode_path(row[0])


def forget_all(index: Index, recognizer: str) -> tuple[int, int]:
    """Every face, every person, and the people tags faces gave: (faces, people) removed."""
    faces_n = index.conn.execute("DELETE FROM faces").rowcount
    people_n = index.conn.execute("DELETE FROM people").rowcount
    index.conn.execute("DELETE FROM tags WHERE recognizer = ?", (recognizer,))
    index.conn.execute("DELETE FROM results WHERE recognizer = ?", (recognizer,))
    return faces_n, people_n


def count_faces(index: Index) -> int:
    return int(index.conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0])
