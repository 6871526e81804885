"""Reading and writing the index. Every query phototag runs is here, nowhere else."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import IndexFileError
from .records import (
    AlbumRecord,
    Candidate,
    KnownFailure,
    KnownFile,
    PhotoRecord,
    PhotoTags,
    PhotoView,
    PhotoWithTags,
    StoredCorrection,
    TagCount,
    TargetRecord,
)
from .schema import ensure_schema

# The records are re-exported: callers import them from here as well as from .records.
__all__ = [
    "AlbumRecord", "Candidate", "Index", "KnownFailure", "KnownFile", "PhotoRecord", "PhotoTags",
    "PhotoView", "PhotoWithTags", "StoredCorrection", "TagCount", "TargetRecord", "decode_path", "encode_path",
    "is_under", "under_clause",
]  # fmt: skip


def encode_path(path: Path | str) -> bytes:
    return os.fsencode(path)


def decode_path(raw: bytes) -> Path:
    return Path(os.fsdecode(raw))


def under_clause(roots: Sequence[Path], column: str = "path") -> tuple[str, list[bytes]]:
    """An SQL condition (and its arguments) true for paths at or under any of ``roots``.

    Paths are stored as ``os.fsencode`` bytes and BLOBs compare bytewise, so the photos under
    a folder ``/a/b`` are the range ``/a/b/`` <= path < ``/a/b0`` ('0' is the byte after
    '/'): the unique index on ``path`` answers it without reading other folders' rows, and
    names that are not valid UTF-8 need nothing special. No roots: no condition ("1").
    The same rule as rclip's folder filter (its ``db.py``), as a range instead of LIKE so
    that '%' and '_' in folder names mean themselves.
    """
    if not roots:
        return "1", []
    parts, args = [], []
    for root in roots:
        raw = encode_path(root)
        stem = raw.rstrip(b"/")
        parts.append(f"({column} = ? OR ({column} >= ? AND {column} < ?))")
        args += [raw, stem + b"/", stem + b"0"]
    return "(" + " OR ".join(parts) + ")", args


def is_under(raw: bytes, roots: Sequence[Path]) -> bool:
    """:func:`under_clause` in Python, for one encoded path (True when ``roots`` is empty)."""
    if not roots:
        return True
    for root in roots:
        r = encode_path(root)
        if raw == r or raw.startswith(r.rstrip(b"/") + b"/"):
            return True
    return False


class PathDecoder:
    """:func:`decode_path` for many paths of a few folders: each folder is parsed once and
    its photos made as its children (pathlib's ``_make_child_relpath``, as in walk.py), a
    third of the cost of parsing every path (100,000 photos of an album: 1.3 s of 4.7)."""

    def __init__(self) -> None:
        self._folders: dict[bytes, Path] = {}

    def __call__(self, raw: bytes) -> Path:
        folder, sep, name = raw.rpartition(b"/")
        if not sep or not folder or not name:
            return decode_path(raw)
        parent = self._folders.get(folder)
        if parent is None:
            parent = self._folders[folder] = decode_path(folder)
        child = getattr(parent, "_make_child_relpath", None)
        return child(os.fsdecode(name)) if callable(child) else parent / os.fsdecode(name)


def _chunks(items: Sequence[int], size: int = 900) -> Iterator[Sequence[int]]:
    """Slices small enough for one ``IN (?, ...)`` (SQLite allows 999 variables before 3.32)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Index:
    """An open index file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Index:
        """Open (and create or migrate) the index at ``path``."""
        path = Path(path)
        if not create and not path.exists():
            raise IndexFileError(f"no index at {path}: run 'phototag scan' first")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise IndexFileError(
                f"cannot create the index folder {path.parent}: {e.strerror}"
            ) from None
        try:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise IndexFileError(f"cannot open the index {path}: {e}") from None
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")  # readers never block the nightly scan
            conn.execute(
                "PRAGMA synchronous = NORMAL"
            )  # WAL: durable at checkpoints, never corrupt
            ensure_schema(conn)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise IndexFileError(f"{path} is not a usable phototag index: {e}") from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic batch of writes: all of it lands, or none (a kill loses only this batch).

        SQLite errors become :class:`IndexFileError` with what to do about them: a full disk
        (or quota) and a read-only index are the ones a nightly run meets.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            text = str(e)
            if "full" in text:
                raise IndexFileError(
                    f"the disk holding the index {self.path} is full: nothing of the batch in "
                    "flight was saved; free some space and run again (it resumes)"
                ) from None
            if "readonly" in text or "read-only" in text:
                raise IndexFileError(f"the index {self.path} is read-only: {text}") from None
            raise IndexFileError(f"cannot write the index {self.path}: {text}") from None

    # -- what a scan needs to decide -------------------------------------------------

    def known_files(self, roots: Sequence[Path] = ()) -> dict[bytes, KnownFile]:
        """encoded path -> what the index knows of it, for the photos under ``roots`` (all if none)."""
        where, args = under_clause(roots)
        rows = self.conn.execute(
            f"SELECT path, id, size, mtime_ns, hash, complete_for, offline_since IS NOT NULL"
            f" FROM photos WHERE {where}",
            args,
        )
        return {r[0]: KnownFile(r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows}

    def mark_offline(self, paths: Iterable[bytes]) -> list[bytes]:
        """Photos whose folder was missing or empty: kept, marked (the first time) as offline.

        Returns the paths that are photos in the index (not those that moved meanwhile)."""
        marked = []
        now = time.time()
        for raw in paths:
            if self.conn.execute(
                "UPDATE photos SET offline_since = coalesce(offline_since, ?) WHERE path = ?",
                (now, raw),
            ).rowcount:
                marked.append(raw)
        return marked

    def mark_online(self, paths: Iterable[bytes]) -> None:
        for raw in paths:
            self.conn.execute("UPDATE photos SET offline_since = NULL WHERE path = ?", (raw,))

    def offline_ids(self) -> set[int]:
        return {
            int(r[0])
            for r in self.conn.execute("SELECT id FROM photos WHERE offline_since IS NOT NULL")
        }

    def known_failures(self, roots: Sequence[Path] = ()) -> dict[bytes, KnownFailure]:
        where, args = under_clause(roots)
        rows = self.conn.execute(
            f"SELECT path, size, mtime_ns, reason FROM failures WHERE {where}", args
        )
        return {r[0]: KnownFailure._make(r[1:]) for r in rows}

    def mark_complete(self, ids: Iterable[int], digest: str) -> None:
        """Record that these photos hold every result and embedding of ``digest`` (see
        :func:`~phototag.tagger.completeness_digest`). Triggers clear the mark as soon as
        any of their results or embeddings changes."""
        self.conn.executemany(
            "UPDATE photos SET complete_for = ? WHERE id = ?", [(digest, int(i)) for i in ids]
        )

    def complete_ids(
        self,
        fingerprints: Mapping[str, str],
        backbones: Mapping[str, str],
        roots: Sequence[Path] = (),
        ids: Sequence[int] | None = None,
    ) -> set[int]:
        """Photos (under ``roots``, all if none; only ``ids`` if given) holding every
        recognizer's result and every backbone's embedding as asked. The embeddings are
        checked in the covering index ``embeddings_fingerprint``, never in the table's
        rows (2.5 KB each)."""
        if ids is not None:
            out: set[int] = set()
            for part in _chunks(list(ids)):
                out |= self._complete(fingerprints, backbones, roots, part)
            return out
        return self._complete(fingerprints, backbones, roots, None)

    def _complete(
        self,
        fingerprints: Mapping[str, str],
        backbones: Mapping[str, str],
        roots: Sequence[Path],
        ids: Sequence[int] | None,
    ) -> set[int]:
        # Driven from the photos (a range of the path index when roots are given), each
        # condition a primary-key or covering-index lookup: never a pass over every result.
        where, roots_args = under_clause(roots, "p.path")
        args: list[object] = list(roots_args)
        if ids is not None:
            where += f" AND p.id IN ({','.join('?' * len(ids))})"
            args += [int(i) for i in ids]
        conditions: list[str] = []
        for name, fp in fingerprints.items():
            conditions.append(
                "EXISTS (SELECT 1 FROM results r WHERE r.photo_id = p.id"
                " AND r.recognizer = ? AND r.fingerprint = ?)"
            )
            args += [name, fp]
        for name, fp in backbones.items():
            conditions.append(
                "EXISTS (SELECT 1 FROM embeddings e INDEXED BY embeddings_fingerprint"
                " WHERE e.backbone = ? AND e.fingerprint = ? AND e.photo_id = p.id)"
            )
            args += [name, fp]
        sql = f"SELECT p.id FROM photos p WHERE {where}"
        if conditions:
            sql += " AND " + " AND ".join(conditions)
        return {r[0] for r in self.conn.execute(sql, args)}

    def hashes_of(self, ids: Iterable[int]) -> dict[str, int]:
        """content hash -> the lowest of these photo ids holding it (one pass over photos)."""
        wanted = set(ids)
        out: dict[str, int] = {}
        if not wanted:
            return out
        for pid, h in self.conn.execute("SELECT id, hash FROM photos ORDER BY id"):
            if pid in wanted:
                out.setdefault(h, pid)
        return out

    # -- writing ---------------------------------------------------------------------

    def upsert_photo(self, p: PhotoRecord) -> int:
        """Insert or update a photo row. New content at a known path forgets the old results."""
        raw = encode_path(p.path)
        old = self.conn.execute("SELECT id, hash FROM photos WHERE path = ?", (raw,)).fetchone()
        if old is not None and old[1] != p.hash:
            for table in ("tags", "results", "embeddings", "detections"):
                self.conn.execute(f"DELETE FROM {table} WHERE photo_id = ?", (old[0],))
            # The same photo edited in place (another program wrote its metadata): its
            # corrections and what phototag owns in it stay with it.
            self.rekey_content(old[1], p.hash)
        self.conn.execute(
            """INSERT INTO photos (path, size, mtime_ns, hash, width, height, taken_at, scanned_at,
                                   kind, duration)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                 hash = excluded.hash, width = excluded.width, height = excluded.height,
                 taken_at = excluded.taken_at, scanned_at = excluded.scanned_at,
                 kind = excluded.kind, duration = excluded.duration""",
            (
                raw,
                p.size,
                p.mtime_ns,
                p.hash,
                p.width,
                p.height,
                p.taken_at,
                time.time(),
                p.kind,
                p.duration,
            ),
        )
        self.conn.execute("DELETE FROM failures WHERE path = ?", (raw,))
        row = self.conn.execute("SELECT id FROM photos WHERE path = ?", (raw,)).fetchone()
        pid = int(row[0])
        self.conn.execute("UPDATE photos SET offline_since = NULL WHERE id = ?", (pid,))
        if old is None:
            self._adopt_targets(pid, p.path, p.hash)
        return pid

    def rekey_content(self, old_hash: str, new_hash: str) -> None:
        """A photo's bytes changed but it is the same photo: corrections and targets follow.

        Copies stay with every other photo that still has ``old_hash``.
        """
        if old_hash == new_hash:
            return
        shared = self.conn.execute(
            "SELECT COUNT(*) FROM photos WHERE hash = ?", (old_hash,)
        ).fetchone()[0]
        self.conn.execute(
            """INSERT OR IGNORE INTO corrections (hash, path, action, source, at)
               SELECT ?, path, action, source, at FROM corrections WHERE hash = ?""",
            (new_hash, old_hash),
        )
        if shared <= 1:
            self.conn.execute("DELETE FROM corrections WHERE hash = ?", (old_hash,))

    def _adopt_targets(self, photo_id: int, path: Path, content_hash: str) -> None:
        """A photo new to the index whose content phototag wrote into before (its row was
        dropped, then it came back elsewhere): the embedded target whose owner is gone
        becomes this file, so ``clean`` can still take back what phototag wrote."""
        row = self.conn.execute(
            "SELECT target FROM targets WHERE hash = ? AND mode = 'embed' AND photo_id IS NULL",
            (content_hash,),
        ).fetchone()
        rec = None if row is None else self.target(decode_path(row[0]))
        if rec is not None:
            self._retarget(rec, path, photo_id)
        self.conn.execute(
            "UPDATE targets SET photo_id = ? WHERE hash = ? AND photo_id IS NULL AND mode = 'sidecar'"
            " AND target IN (?, ?)",
            (photo_id, content_hash, encode_path(str(path) + ".xmp"),
             encode_path(path.with_suffix(".xmp"))),
        )  # fmt: skip

    def set_results(
        self, photo_id: int, recognizer: str, fingerprint: str, candidates: Sequence[Candidate]
    ) -> None:
        self.conn.execute(
            "DELETE FROM tags WHERE photo_id = ? AND recognizer = ?", (photo_id, recognizer)
        )
        self.conn.executemany(
            "INSERT INTO tags (photo_id, recognizer, path, tag, score) VALUES (?, ?, ?, ?, ?)",
            [(photo_id, recognizer, c.path, c.tag, c.score) for c in candidates],
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO results (photo_id, recognizer, fingerprint) VALUES (?, ?, ?)",
            (photo_id, recognizer, fingerprint),
        )

    def set_results_if_changed(
        self, photo_id: int, recognizer: str, fingerprint: str, candidates: Sequence[Candidate]
    ) -> bool:
        """:meth:`set_results`, but only where the tags differ (scores to 4 places); True if so."""
        old = self.conn.execute(
            "SELECT path, round(score, 4) FROM tags WHERE photo_id = ? AND recognizer = ? ORDER BY path",
            (photo_id, recognizer),
        ).fetchall()
        new = sorted((c.path, round(c.score, 4)) for c in candidates)
        if old == new:
            self.conn.execute(
                "INSERT OR REPLACE INTO results (photo_id, recognizer, fingerprint) VALUES (?, ?, ?)",
                (photo_id, recognizer, fingerprint),
            )
            return False
        self.set_results(photo_id, recognizer, fingerprint, candidates)
        return True

    def set_detections(
        self,
        photo_id: int,
        backbone: str,
        detections: np.ndarray,
        labels: Sequence[str],
        min_score: float = 0.1,
    ) -> None:
        """Replace a photo's boxes from ``backbone`` ((K, 6): x1, y1, x2, y2, score, class)."""
        self.conn.execute(
            "DELETE FROM detections WHERE photo_id = ? AND backbone = ?", (photo_id, backbone)
        )
        rows = [
            (photo_id, backbone, labels[int(c)] if 0 <= int(c) < len(labels) else str(int(c)), float(s),
             float(x1), float(y1), float(x2), float(y2))
            for x1, y1, x2, y2, s, c in np.asarray(detections).tolist() if s >= min_score
        ]  # fmt: skip
        self.conn.executemany("INSERT INTO detections VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def detections_of(
        self, photo_id: int
    ) -> list[tuple[str, str, float, tuple[float, float, float, float]]]:
        """(backbone, label, score, box) of a photo, best first."""
        rows = self.conn.execute(
            "SELECT backbone, label, score, x1, y1, x2, y2 FROM detections WHERE photo_id = ? ORDER BY score DESC",
            (photo_id,),
        )
        return [(b, label, s, (x1, y1, x2, y2)) for b, label, s, x1, y1, x2, y2 in rows]

    def stored_detections(
        self, ids: Sequence[int], backbone: str, labels: Sequence[str]
    ) -> np.ndarray:
        """The stored boxes of these photos as a (N, K, 6) array (zero rows pad), classes by ``labels``."""
        index = {label: i for i, label in enumerate(labels)}
        boxes: dict[int, list[list[float]]] = {}
        for part in _chunks([int(i) for i in ids]):
            marks = ",".join("?" * len(part))
            for pid, x1, y1, x2, y2, s, label in self.conn.execute(
                "SELECT photo_id, x1, y1, x2, y2, score, label FROM detections"
                f" WHERE backbone = ? AND photo_id IN ({marks}) ORDER BY photo_id, score DESC",
                [backbone, *part],
            ):
                boxes.setdefault(pid, []).append([x1, y1, x2, y2, s, float(index.get(label, -1))])
        per = [boxes.get(int(pid), []) for pid in ids]
        out = np.zeros((len(per), max((len(p) for p in per), default=0) or 1, 6), np.float32)
        for i, p in enumerate(per):
            if p:
                out[i, : len(p)] = p
        return out

    def detection_counts(self, min_score: float) -> dict[int, dict[str, int]]:
        """photo id -> label -> how many boxes score at least ``min_score``."""
        out: dict[int, dict[str, int]] = {}
        for pid, label, n in self.conn.execute(
            "SELECT photo_id, label, COUNT(*) FROM detections WHERE score >= ? GROUP BY photo_id, label",
            (min_score,),
        ):
            out.setdefault(pid, {})[label] = n
        return out

    def set_embedding(
        self, photo_id: int, backbone: str, fingerprint: str, vector: np.ndarray
    ) -> None:
        blob = np.asarray(vector, dtype="<f2").tobytes()
        self.conn.execute(
            "INSERT OR REPLACE INTO embeddings (photo_id, backbone, fingerprint, vector) VALUES (?, ?, ?, ?)",
            (photo_id, backbone, fingerprint, blob),
        )

    def copy_results(self, source_id: int, target_id: int) -> None:
        """Give ``target`` the results and embeddings of ``source`` (same content)."""
        if source_id == target_id:
            return
        for table in ("tags", "results", "embeddings"):
            self.conn.execute(f"DELETE FROM {table} WHERE photo_id = ?", (target_id,))
        self.conn.execute(
            """INSERT INTO tags (photo_id, recognizer, path, tag, score)
               SELECT ?, recognizer, path, tag, score FROM tags WHERE photo_id = ?""",
            (target_id, source_id),
        )
        self.conn.execute(
            """INSERT INTO results (photo_id, recognizer, fingerprint)
               SELECT ?, recognizer, fingerprint FROM results WHERE photo_id = ?""",
            (target_id, source_id),
        )
        self.conn.execute(
            """INSERT INTO embeddings (photo_id, backbone, fingerprint, vector)
               SELECT ?, backbone, fingerprint, vector FROM embeddings WHERE photo_id = ?""",
            (target_id, source_id),
        )
        self.conn.execute("DELETE FROM detections WHERE photo_id = ?", (target_id,))
        self.conn.execute(
            """INSERT INTO detections SELECT ?, backbone, label, score, x1, y1, x2, y2
               FROM detections WHERE photo_id = ?""",
            (target_id, source_id),
        )

    def move_photo(self, photo_id: int, p: PhotoRecord) -> None:
        """A file moved or renamed: keep its row and results under the new path.

        What phototag wrote moves with it: the embedded target becomes the new path, and a
        sidecar target follows when a sidecar of the same naming is beside the new path
        (the user moved both); one left behind at the old place stays owned there.
        """
        old = self.path_of(photo_id)
        self.conn.execute(
            "DELETE FROM photos WHERE path = ? AND id != ?", (encode_path(p.path), photo_id)
        )
        self.conn.execute(
            "UPDATE photos SET path = ?, size = ?, mtime_ns = ?, offline_since = NULL WHERE id = ?",
            (encode_path(p.path), p.size, p.mtime_ns, photo_id),
        )
        self.conn.execute("DELETE FROM failures WHERE path = ?", (encode_path(p.path),))
        if old is None or old == p.path:
            return
        for target in self.targets_of(photo_id):
            rec = self.target(target)
            if rec is None:
                continue
            if rec.mode == "embed":
                new = p.path
            elif target == old.with_name(old.name + ".xmp"):
                new = p.path.with_name(p.path.name + ".xmp")
            elif target == old.with_suffix(".xmp"):
                new = p.path.with_suffix(".xmp")
            else:
                continue
            if rec.mode == "sidecar" and (os.path.lexists(target) or not os.path.lexists(new)):
                continue
            self._retarget(rec, new, photo_id)

    def _retarget(self, rec: TargetRecord, new: Path, photo_id: int) -> None:
        """The record of what phototag wrote into ``rec.target`` now describes ``new``."""
        self.forget_target(rec.target)
        self.record_target(
            new, photo_id=photo_id, mode=rec.mode, created=rec.created, size=rec.size,
            mtime_ns=rec.mtime_ns, wanted=rec.wanted or "", ours=rec.ours,
        )  # fmt: skip

    def set_companions(self, photo_id: int, companions: Sequence[tuple[Path, str]]) -> None:
        """Replace the companions (path, role) of a photo; a path belongs to one photo."""
        self.conn.execute("DELETE FROM companions WHERE photo_id = ?", (photo_id,))
        self.conn.executemany(
            "INSERT OR REPLACE INTO companions (path, photo_id, role) VALUES (?, ?, ?)",
            [(encode_path(p), photo_id, role) for p, role in companions],
        )

    def companions_by_photo(self) -> dict[int, list[tuple[Path, str]]]:
        """Every photo's companions: photo id -> [(path, role)], by path."""
        out: dict[int, list[tuple[Path, str]]] = {}
        for pid, raw, role in self.conn.execute(
            "SELECT photo_id, path, role FROM companions ORDER BY path"
        ):
            out.setdefault(int(pid), []).append((decode_path(raw), str(role)))
        return out

    def companion_owner(self, path: Path) -> Path | None:
        """The photo a companion file (a pair's RAW, a Live Photo's MOV) belongs to."""
        row = self.conn.execute(
            "SELECT p.path FROM companions c JOIN photos p ON p.id = c.photo_id WHERE c.path = ?",
            (encode_path(path),),
        ).fetchone()
        return None if row is None else decode_path(row[0])

    def companions_of(self, photo_id: int) -> list[tuple[Path, str]]:
        return [
            (decode_path(raw), str(role))
            for raw, role in self.conn.execute(
                "SELECT path, role FROM companions WHERE photo_id = ? ORDER BY path", (photo_id,)
            )
        ]

    def record_failure(self, path: Path, size: int, mtime_ns: int, reason: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO failures (path, size, mtime_ns, reason, seen_at) VALUES (?, ?, ?, ?, ?)",
            (encode_path(path), size, mtime_ns, reason, time.time()),
        )

    def remove(self, paths: Iterable[bytes]) -> int:
        n = 0
        for raw in paths:
            n += self.conn.execute("DELETE FROM photos WHERE path = ?", (raw,)).rowcount
            self.conn.execute("DELETE FROM failures WHERE path = ?", (raw,))
        return n

    def forget(self, roots: Iterable[Path]) -> int:
        """Drop every photo at or under ``roots``."""
        where, args = under_clause(list(roots))
        gone = [r[0] for r in self.conn.execute(f"SELECT path FROM photos WHERE {where}", args)]
        with self.transaction():
            return self.remove(gone)

    def update_file_state(self, photo_id: int, size: int, mtime_ns: int, content_hash: str) -> None:
        """After phototag itself changed a photo (embedded keywords): same photo, new bytes."""
        old = self.hash_of(photo_id)
        self.conn.execute(
            "UPDATE photos SET size = ?, mtime_ns = ?, hash = ? WHERE id = ?",
            (size, mtime_ns, content_hash, photo_id),
        )
        if old is not None:
            self.rekey_content(old, content_hash)
        self.conn.execute(
            "UPDATE targets SET hash = ? WHERE photo_id = ?", (content_hash, photo_id)
        )

    # -- what phototag wrote where -----------------------------------------------------

    def target(self, target: Path) -> TargetRecord | None:
        raw = encode_path(target)
        row = self.conn.execute(
            "SELECT photo_id, mode, created, size, mtime_ns, wanted, hash, written_at FROM targets"
            " WHERE target = ?",
            (raw,),
        ).fetchone()
        if row is None:
            return None
        ours: dict[str, list[str]] = {}
        for name, value in self.conn.execute(
            "SELECT field, value FROM written WHERE target = ? ORDER BY rowid", (raw,)
        ):
            ours.setdefault(name, []).append(value)
        return TargetRecord(
            target, row[0], row[1], bool(row[2]), row[3], row[4], row[5], ours, row[6], row[7]
        )

    def last_write_mode(self, photo_id: int) -> str | None:
        """The mode ('sidecar' or 'embed') a photo was last written with, if ever."""
        row = self.conn.execute(
            "SELECT mode FROM targets WHERE photo_id = ? ORDER BY coalesce(written_at, 0) DESC,"
            " rowid DESC LIMIT 1",
            (photo_id,),
        ).fetchone()
        return None if row is None else str(row[0])

    def targets_of(self, photo_id: int) -> list[Path]:
        rows = self.conn.execute("SELECT target FROM targets WHERE photo_id = ?", (photo_id,))
        return [decode_path(r[0]) for r in rows]

    def record_target(
        self,
        target: Path,
        *,
        photo_id: int | None,
        mode: str,
        created: bool,
        size: int | None,
        mtime_ns: int | None,
        wanted: str,
        ours: Mapping[str, Sequence[str]],
    ) -> None:
        raw = encode_path(target)
        content = None if photo_id is None else self.hash_of(photo_id)
        self.conn.execute(
            """INSERT INTO targets (target, photo_id, mode, created, size, mtime_ns, wanted, hash,
                 written_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(target) DO UPDATE SET photo_id = excluded.photo_id, mode = excluded.mode,
                 created = excluded.created, size = excluded.size, mtime_ns = excluded.mtime_ns,
                 wanted = excluded.wanted, hash = excluded.hash, written_at = excluded.written_at""",
            (raw, photo_id, mode, int(created), size, mtime_ns, wanted, content, time.time()),
        )
        self.conn.execute("DELETE FROM written WHERE target = ?", (raw,))
        self.conn.executemany(
            "INSERT OR IGNORE INTO written (target, field, value) VALUES (?, ?, ?)",
            [(raw, f, v) for f, vals in ours.items() for v in vals],
        )

    def forget_target(self, target: Path) -> None:
        self.conn.execute("DELETE FROM targets WHERE target = ?", (encode_path(target),))

    # -- corrections (storage only: how they apply is phototag/corrections.py) --------------

    def correct(self, content_hash: str, path: str, action: str, source: str = "user") -> None:
        """Record a correction of the photo with this content (replacing one of the same path)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO corrections (hash, path, action, source, at) VALUES (?, ?, ?, ?, ?)",
            (content_hash, path, action, source, time.time()),
        )

    def uncorrect(self, content_hash: str, path: str) -> None:
        self.conn.execute(
            "DELETE FROM corrections WHERE hash = ? AND path = ?", (content_hash, path)
        )

    def stored_corrections(
        self, content_hash: str | None = None
    ) -> dict[str, list[StoredCorrection]]:
        """content hash -> its corrections, oldest first."""
        sql = "SELECT hash, path, action, source, at FROM corrections"
        args: tuple[str, ...] = ()
        if content_hash is not None:
            sql += " WHERE hash = ?"
            args = (content_hash,)
        out: dict[str, list[StoredCorrection]] = {}
        for row in self.conn.execute(sql + " ORDER BY at, path", args):
            out.setdefault(row[0], []).append(StoredCorrection(*row))
        return out

    def corrections(
        self, photo_id: int | None = None, action: str | None = None
    ) -> dict[int, list[str]]:
        """photo id -> corrected tag paths (of one action, or as 'add:'/'remove:' prefixed)."""
        sql = "SELECT p.id, c.path, c.action FROM corrections c JOIN photos p ON p.hash = c.hash"
        args: list[object] = []
        if photo_id is not None:
            sql += " WHERE p.id = ?"
            args.append(photo_id)
        out: dict[int, list[str]] = {}
        for pid, path, act in self.conn.execute(sql + " ORDER BY p.id, c.path", args):
            if action is None:
                out.setdefault(pid, []).append(f"{act}:{path}")
            elif act == action:
                out.setdefault(pid, []).append(path)
        return out

    def photos_by_id(self, ids: Sequence[int]) -> list[PhotoTags]:
        """Like :meth:`photos_under`, for these photos (in path order)."""
        rows: list[tuple[int, bytes, str]] = []
        for part in _chunks(sorted({int(i) for i in ids})):
            marks = ",".join("?" * len(part))
            rows += self.conn.execute(
                f"SELECT id, path, hash FROM photos WHERE id IN ({marks})", part
            )
        rows.sort(key=lambda r: r[1])
        return self._photo_tags(rows, None)

    def photos_under(
        self, roots: Sequence[Path], recognizers: Sequence[str] | None = None
    ) -> list[PhotoTags]:
        """Photos at or under ``roots`` with the hierarchy paths of the models' tags, by path.

        These are the stored tags only; :mod:`phototag.corrections` applies the user's
        corrections on top (``corrected_photo_tags``). The folder filter runs in SQL
        (:func:`under_clause`), before anything is read.
        """
        where, args = under_clause(roots)
        rows = self.conn.execute(
            f"SELECT id, path, hash FROM photos WHERE {where} ORDER BY path", args
        )
        return self._photo_tags(rows.fetchall(), recognizers)

    def _photo_tags(
        self, rows: Sequence[tuple[int, bytes, str]], recognizers: Sequence[str] | None
    ) -> list[PhotoTags]:
        out = {pid: PhotoTags(pid, decode_path(raw), [], content) for pid, raw, content in rows}
        ids = list(out)
        for part in _chunks(ids):
            marks = ",".join("?" * len(part))
            for pid, rec, tpath in self.conn.execute(
                f"SELECT photo_id, recognizer, path FROM tags WHERE photo_id IN ({marks})"
                " ORDER BY photo_id, recognizer, score DESC",
                part,
            ):
                if not recognizers or rec in recognizers:
                    out[pid].tag_paths.append(tpath)
        return list(out.values())

    def photos_with_tags(
        self,
        recognizer: str | None = None,
        *,
        under: Sequence[Path] = (),
        ids: Iterable[int] | None = None,
        only: Collection[str] | None = None,
        chunk: int = 900,
    ) -> Iterator[PhotoWithTags]:
        """Photos with their tags (one recognizer's, if given; best first), read ``chunk``
        photos at a time so memory stays bounded whatever the index holds.

        ``under``: only photos at or under these folders (filtered in SQL). ``ids``: only
        these photos. ``only``: of each photo, only the tags with these paths (a query that
        needs no others reads a tenth of the rows). Order: by path, or by id when ``ids``
        is given.
        """
        where, args = under_clause(under, "path")
        if ids is None:
            last = b""
            while True:
                rows = self.conn.execute(
                    f"SELECT id, path, mtime_ns, taken_at, hash FROM photos WHERE path > ? AND {where}"
                    " ORDER BY path LIMIT ?",
                    [last, *args, chunk],
                ).fetchall()
                if not rows:
                    return
                yield from self._with_tags(rows, recognizer, only)
                last = rows[-1][1]
        else:
            for part in _chunks(sorted({int(i) for i in ids}), chunk):
                marks = ",".join("?" * len(part))
                rows = self.conn.execute(
                    f"SELECT id, path, mtime_ns, taken_at, hash FROM photos WHERE id IN ({marks})"
                    f" AND {where} ORDER BY id",
                    [*part, *args],
                ).fetchall()
                yield from self._with_tags(rows, recognizer, only)

    def _with_tags(
        self,
        rows: Sequence[tuple[int, bytes, int, str | None, str]],
        recognizer: str | None,
        only: Collection[str] | None = None,
    ) -> Iterator[PhotoWithTags]:
        if not rows:
            return
        tags: dict[int, list[tuple[str, str, float]]] = {}
        marks = ",".join("?" * len(rows))
        sql = f"SELECT photo_id, recognizer, path, score FROM tags WHERE photo_id IN ({marks})"
        args: list[object] = [r[0] for r in rows]
        if recognizer:
            sql += " AND recognizer = ?"
            args.append(recognizer)
        if only is not None and len(only) <= 500:  # in SQL while the list stays short
            # "+path": filter these rows, do not let the planner walk the path index instead
            sql += f" AND +path IN ({','.join('?' * len(only))})"
            args += list(only)
        keep = None if only is None or len(only) <= 500 else set(only)
        for pid, rec, tpath, score in self.conn.execute(sql + " ORDER BY score DESC", args):
            if keep is None or tpath in keep:
                tags.setdefault(pid, []).append((rec, tpath, score))
        paths = PathDecoder()
        for pid, raw, mtime, taken, content in rows:
            yield PhotoWithTags(pid, paths(raw), mtime, taken, tags.get(pid, []), content)

    def tag_paths(self) -> list[str]:
        """Every distinct tag path in the index, sorted.

        A skip-scan of the ``tags_path`` index: one seek per distinct path (a few thousand),
        not a pass over every tag row (millions in a large library).
        """
        rows = self.conn.execute(
            """WITH RECURSIVE p(x) AS (
                 SELECT MIN(path) FROM tags
                 UNION ALL
                 SELECT (SELECT MIN(path) FROM tags WHERE path > p.x) FROM p WHERE p.x IS NOT NULL
               ) SELECT x FROM p WHERE x IS NOT NULL"""
        )
        return [r[0] for r in rows]

    def photo_ids_tagged(
        self, paths: Sequence[str], recognizer: str | None = None, min_score: float = 0.0
    ) -> set[int]:
        """Photos holding any of these tag paths (of ``recognizer``, scoring ``min_score`` or more)."""
        out: set[int] = set()
        for i in range(0, len(paths), 900):
            part = list(paths[i : i + 900])
            sql = f"SELECT photo_id FROM tags WHERE path IN ({','.join('?' * len(part))}) AND score >= ?"
            args: list[object] = [*part, min_score]
            if recognizer:
                sql += " AND recognizer = ?"
                args.append(recognizer)
            out.update(r[0] for r in self.conn.execute(sql, args))
        return out

    def ids_under(self, roots: Sequence[Path]) -> np.ndarray:
        """The ids of the photos at or under ``roots``, sorted (int64)."""
        where, args = under_clause(roots)
        rows = self.conn.execute(f"SELECT id FROM photos WHERE {where}", args)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64)
        ids.sort()
        return ids

    # -- albums --------------------------------------------------------------------------

    def album(self, name: str) -> AlbumRecord | None:
        row = self.conn.execute(
            "SELECT name, folder, query, link, html, updated_at FROM albums WHERE name = ?", (name,)
        ).fetchone()
        return (
            None
            if row is None
            else AlbumRecord(row[0], decode_path(row[1]), row[2], row[3], bool(row[4]), row[5])
        )

    def album_at(self, folder: Path) -> AlbumRecord | None:
        row = self.conn.execute(
            "SELECT name FROM albums WHERE folder = ?", (encode_path(folder),)
        ).fetchone()
        return None if row is None else self.album(row[0])

    def albums(self) -> list[AlbumRecord]:
        names = [r[0] for r in self.conn.execute("SELECT name FROM albums ORDER BY name")]
        return [a for n in names if (a := self.album(n)) is not None]

    def save_album(self, name: str, folder: Path, query: str, link: str, html: bool) -> None:
        self.conn.execute(
            """INSERT INTO albums (name, folder, query, link, html, updated_at) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(name) DO UPDATE SET folder = excluded.folder, query = excluded.query,
                 link = excluded.link, html = excluded.html, updated_at = excluded.updated_at""",
            (name, encode_path(folder), query, link, int(html), time.time()),
        )

    def delete_album(self, name: str) -> None:
        """Forget an album and its entries (the files are the caller's business)."""
        self.conn.execute("DELETE FROM album_entries WHERE album = ?", (name,))
        self.conn.execute("DELETE FROM albums WHERE name = ?", (name,))

    def album_entries(self, name: str) -> dict[str, Path]:
        """entry file name -> the photo it stands for."""
        rows = self.conn.execute("SELECT entry, source FROM album_entries WHERE album = ?", (name,))
        return {r[0]: decode_path(r[1]) for r in rows}

    def add_album_entry(self, name: str, entry: str, source: Path) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO album_entries (album, entry, source) VALUES (?, ?, ?)",
            (name, entry, encode_path(source)),
        )

    def remove_album_entry(self, name: str, entry: str) -> None:
        self.conn.execute("DELETE FROM album_entries WHERE album = ? AND entry = ?", (name, entry))

    # -- embeddings in bulk --------------------------------------------------------------

    def embedding_chunks(
        self, backbone: str, chunk: int = 8192, under: Sequence[Path] = ()
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(photo ids, float16 embeddings) in chunks of at most ``chunk`` rows, by photo id:
        memory stays bounded. ``under``: only photos at or under these folders (in SQL)."""
        if under:
            where, args = under_clause(under, "p.path")
            cur = self.conn.execute(
                "SELECT e.photo_id, e.vector FROM embeddings e JOIN photos p ON p.id = e.photo_id"
                f" WHERE e.backbone = ? AND {where} ORDER BY e.photo_id",
                [backbone, *args],
            )
        else:
            cur = self.conn.execute(
                "SELECT photo_id, vector FROM embeddings WHERE backbone = ? ORDER BY photo_id",
                (backbone,),
            )
        while rows := cur.fetchmany(chunk):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            dim = len(rows[0][1]) // 2  # 0 for a detector: the row only says it ran
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f2").reshape(len(rows), dim)
            yield ids, vecs

    def count_embeddings(self, backbone: str) -> int:
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM embeddings WHERE backbone = ?", (backbone,)
            ).fetchone()[0]
        )

    def vectors_of(self, ids: Sequence[int], backbone: str) -> np.ndarray:
        """The embeddings of these photos (float32), in the order given; photos without one are left out."""
        found: dict[int, bytes] = {}
        for part in _chunks([int(i) for i in ids]):
            marks = ",".join("?" * len(part))
            found.update(
                self.conn.execute(
                    f"SELECT photo_id, vector FROM embeddings WHERE backbone = ? AND photo_id IN ({marks})",
                    [backbone, *part],
                ).fetchall()
            )
        rows = [np.frombuffer(found[int(pid)], dtype="<f2") for pid in ids if int(pid) in found]
        return np.stack(rows).astype(np.float32) if rows else np.empty((0, 0), np.float32)

    def paths_of(self, ids: Iterable[int]) -> dict[int, Path]:
        """photo id -> path, for those of ``ids`` that are indexed."""
        out: dict[int, Path] = {}
        for part in _chunks(list(dict.fromkeys(int(i) for i in ids))):
            marks = ",".join("?" * len(part))
            for pid, raw in self.conn.execute(
                f"SELECT id, path FROM photos WHERE id IN ({marks})", part
            ):
                out[pid] = decode_path(raw)
        return out

    def ids_with_hash(self, content_hash: str) -> list[int]:
        rows = self.conn.execute("SELECT id FROM photos WHERE hash = ?", (content_hash,))
        return [int(r[0]) for r in rows]

    def tag_rows(
        self, photo_id: int, recognizer: str | None = None
    ) -> list[tuple[str, str, float]]:
        """A photo's (recognizer, tag path, score), best first."""
        sql = "SELECT recognizer, path, score FROM tags WHERE photo_id = ?"
        args: tuple[object, ...] = (photo_id,)
        if recognizer:
            sql += " AND recognizer = ?"
            args = (photo_id, recognizer)
        return [(r, p, s) for r, p, s in self.conn.execute(sql + " ORDER BY score DESC", args)]

    def tags_of(self, photo_id: int, recognizer: str | None = None) -> dict[str, float]:
        sql = "SELECT path, score FROM tags WHERE photo_id = ?"
        args: tuple[object, ...] = (photo_id,)
        if recognizer:
            sql += " AND recognizer = ?"
            args = (photo_id, recognizer)
        return {p: s for p, s in self.conn.execute(sql, args)}

    def photo_brief(self, path: Path) -> tuple[int, int, str | None] | None:
        """(id, mtime_ns, taken_at) of a photo, or None."""
        row = self.conn.execute(
            "SELECT id, mtime_ns, taken_at FROM photos WHERE path = ?", (encode_path(path),)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), row[2])

    def photo_id(self, path: Path) -> int | None:
        row = self.conn.execute(
            "SELECT id FROM photos WHERE path = ?", (encode_path(path),)
        ).fetchone()
        return None if row is None else int(row[0])

    def hash_groups(self) -> list[list[int]]:
        """Photos sharing a content hash (exact copies), two or more per group."""
        rows = self.conn.execute(
            "SELECT hash, group_concat(id) FROM photos GROUP BY hash HAVING COUNT(*) > 1 ORDER BY hash"
        )
        return [[int(x) for x in ids.split(",")] for _, ids in rows]

    # -- reading ---------------------------------------------------------------------

    def photo(self, path: Path) -> PhotoView | None:
        row = self.conn.execute(
            """SELECT id, path, size, mtime_ns, hash, width, height, taken_at, scanned_at,
                      kind, duration
               FROM photos WHERE path = ?""",
            (encode_path(path),),
        ).fetchone()
        if row is None:
            return None
        pid = row[0]
        tags: dict[str, list[Candidate]] = {}
        for (rec,) in self.conn.execute(
            "SELECT recognizer FROM results WHERE photo_id = ? ORDER BY recognizer", (pid,)
        ):
            tags[rec] = []
        for rec, tpath, tag, score in self.conn.execute(
            "SELECT recognizer, path, tag, score FROM tags WHERE photo_id = ? ORDER BY recognizer, score DESC",
            (pid,),
        ):
            tags.setdefault(rec, []).append(Candidate(tag, score, tpath))
        embeddings = {
            b: len(v) // 2
            for b, v in self.conn.execute(
                "SELECT backbone, vector FROM embeddings WHERE photo_id = ?", (pid,)
            )
        }
        return PhotoView(
            path=decode_path(row[1]),
            size=row[2],
            mtime_ns=row[3],
            hash=row[4],
            width=row[5],
            height=row[6],
            taken_at=row[7],
            scanned_at=row[8],
            tags=tags,
            embeddings=embeddings,
            detections=self.detections_of(pid),
            kind=row[9],
            duration=row[10],
            companions=self.companions_of(pid),
        )

    def hash_of(self, photo_id: int) -> str | None:
        row = self.conn.execute("SELECT hash FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return None if row is None else str(row[0])

    def path_of(self, photo_id: int) -> Path | None:
        row = self.conn.execute("SELECT path FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return None if row is None else decode_path(row[0])

    def embedding(self, path: Path, backbone: str) -> np.ndarray | None:
        row = self.conn.execute(
            """SELECT e.vector FROM embeddings e JOIN photos p ON p.id = e.photo_id
               WHERE p.path = ? AND e.backbone = ?""",
            (encode_path(path), backbone),
        ).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype="<f2").astype(np.float32)

    def tag_counts(self, recognizer: str | None = None) -> list[TagCount]:
        """Every tag with the number of photos carrying it, most frequent first, from the
        counts the ``tag_counts`` triggers keep (never a count over the tag rows)."""
        sql = "SELECT recognizer, tag, path, photos FROM tag_counts WHERE photos > 0"
        args: tuple[str, ...] = ()
        if recognizer:
            sql += " AND recognizer = ?"
            args = (recognizer,)
        sql += " ORDER BY photos DESC, recognizer, path"
        return [TagCount(r[0], r[1], r[2], r[3]) for r in self.conn.execute(sql, args)]

    def count_photos(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0])

    def integrity(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])
