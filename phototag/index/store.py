"""The index: one SQLite file, opened, migrated and written in transactions.

:class:`Index` is the one object callers hold. Its queries live with the tables they
concern, one module each (photos, targets, corrections, albums, tags, embeddings; faces
are functions in faces.py); what is here spans several groups of tables at once: a
photo's row with everything that hangs off it (insert, move, copy, edit in place, view).
Storage only: no policy (how corrections apply is phototag/library/corrections.py).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..errors import IndexFileError
from .albums import AlbumTables
from .corrections import CorrectionTables
from .embeddings import EmbeddingTables
from .paths import PathDecoder, decode_path, encode_path, is_under, under_clause
from .photos import PhotoTables
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
from .tags import TagTables
from .targets import TargetTables

# The records and path helpers are re-exported: callers import them from here as well.
__all__ = [
    "AlbumRecord", "Candidate", "Index", "KnownFailure", "KnownFile", "PathDecoder", "PhotoRecord",
    "PhotoTags", "PhotoView", "PhotoWithTags", "StoredCorrection", "TagCount", "TargetRecord",
    "decode_path", "encode_path", "is_under", "under_clause",
]  # fmt: skip


class Index(PhotoTables, TargetTables, CorrectionTables, AlbumTables, TagTables, EmbeddingTables):
    """An open index file. Use as a context manager, or call :meth:`close`."""

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
            if "readonly" in str(e) or "read-only" in str(e):
                # SQLite's write-ahead log needs the file and its folder writable even to read.
                raise IndexFileError(
                    f"the index {path} cannot be opened read-only: phototag needs to write the "
                    "index file and its folder (SQLite keeps its write-ahead log beside it)"
                ) from None
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

    def integrity(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])
