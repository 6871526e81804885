"""Photos and scan bookkeeping: which files the index knows, their state, failures, companions and completeness.

A mixin of :class:`~phototag.index.store.Index`: methods over its connection."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .paths import chunks, decode_path, encode_path, under_clause
from .records import (
    KnownFailure,
    KnownFile,
)
from .tables import Tables


class PhotoTables(Tables):
    def known_files(
        self, roots: Sequence[Path] = (), *, unsettled_for: str | None = None
    ) -> dict[bytes, KnownFile]:
        """encoded path -> what the index knows of it, for the photos under ``roots`` (all if
        none); with ``unsettled_for``, only those :meth:`settled_files` leaves out."""
        where, paths = under_clause(roots)
        args: list[object] = [*paths]
        if unsettled_for is not None:
            where += " AND (complete_for IS NOT ? OR offline_since IS NOT NULL)"
            args.append(unsettled_for)
        rows = self.conn.execute(
            f"SELECT path, id, size, mtime_ns, hash, complete_for, offline_since IS NOT NULL"
            f" FROM photos WHERE {where}",
            args,
        )
        return {r[0]: KnownFile(r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows}

    def settled_records(self, roots: Sequence[Path], digest: str) -> tuple[bytes, int]:
        """The photos under ``roots`` (folders, none inside another) that are online and
        marked complete for ``digest`` (:meth:`mark_complete`), as the walk's records
        (:data:`phototag.tagging.walk.RECORD`: NUL, path, NUL, size, space, mtime_ns) concatenated,
        in path order within each root, root after root: a rescan compares runs of walked
        photos with them as bytes (:class:`phototag.tagging.walk.SettledRecords`, issue 15). And how
        many other photos there are under ``roots`` (:meth:`known_files` with
        ``unsettled_for=digest``).

        One row per root, in one pass over its range of the path index: SQLite builds the
        bytes, and the GIL is released while it does (the caller may walk meanwhile)."""
        parts, others = [], 0
        for root in roots:
            stem = encode_path(root).rstrip(b"/")
            # Read in the path index's order (were it read in another, the runs would not be
            # found in place: slower, never wrong). A path blob is joined as text byte for
            # byte (the database is UTF-8 and nothing decodes it), the whole cast back.
            records, count = self.conn.execute(
                "SELECT CAST(group_concat(CASE WHEN complete_for = ?3 AND offline_since IS NULL"
                " THEN x'00' || path || x'00' || size || ' ' || mtime_ns END, '') AS BLOB),"
                " count(*) FROM photos WHERE path >= ?1 AND path < ?2",
                (stem + b"/", stem + b"0", digest),
            ).fetchone()
            parts.append(records or b"")
            others += count - (records or b"").count(b"\0/")  # "\0/" starts each record
        return b"".join(parts), others

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

    def record_failure(self, path: Path, size: int, mtime_ns: int, reason: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO failures (path, size, mtime_ns, reason, seen_at) VALUES (?, ?, ?, ?, ?)",
            (encode_path(path), size, mtime_ns, reason, time.time()),
        )

    def mark_complete(self, ids: Iterable[int], digest: str) -> None:
        """Record that these photos hold every result and embedding of ``digest`` (see
        :func:`~phototag.tagging.tagger.completeness_digest`). Triggers clear the mark as soon as
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
            for part in chunks(list(ids)):
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
        """content hash -> the lowest of these photo ids holding it (their rows only, by id)."""
        out: dict[str, int] = {}
        for part in chunks(sorted({int(i) for i in ids})):
            marks = ",".join("?" * len(part))
            for h, pid in self.conn.execute(
                f"SELECT hash, min(id) FROM photos WHERE id IN ({marks}) GROUP BY hash", part
            ):
                out[h] = min(pid, out.get(h, pid))
        return out

    def complete_with_hash(
        self, content_hash: str, fingerprints: Mapping[str, str], backbones: Mapping[str, str]
    ) -> int | None:
        """The lowest id of a photo with this content that holds every recognizer's result
        and every backbone's embedding as asked (see :meth:`complete_ids`), or None: what a
        scan reuses instead of decoding a new file. Lookups in the hash index, never a pass
        over the photos (issue 15)."""
        ids = [
            int(r[0])
            for r in self.conn.execute(
                "SELECT id FROM photos WHERE hash = ? ORDER BY id", (content_hash,)
            ).fetchall()
        ]
        done = self.complete_ids(fingerprints, backbones, ids=ids) if ids else set()
        return min(done) if done else None

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

    def set_companions(self, photo_id: int, companions: Sequence[tuple[Path, str]]) -> None:
        """Replace the companions (path, role) of a photo; a path belongs to one photo."""
        self.conn.execute("DELETE FROM companions WHERE photo_id = ?", (photo_id,))
        self.conn.executemany(
            "INSERT OR REPLACE INTO companions (path, photo_id, role) VALUES (?, ?, ?)",
            [(encode_path(p), photo_id, role) for p, role in companions],
        )

    def companions_by_photo(self, roots: Sequence[Path] = ()) -> dict[int, list[tuple[Path, str]]]:
        """The companions of every photo (under ``roots``, all if none): photo id ->
        [(path, role)], by path."""
        out: dict[int, list[tuple[Path, str]]] = {}
        where, args = under_clause(roots, "p.path")
        for pid, raw, role in self.conn.execute(
            # CROSS JOIN: from the companions (a few) to their photos, never the other way
            "SELECT c.photo_id, c.path, c.role FROM companions c CROSS JOIN photos p"
            f" ON p.id = c.photo_id WHERE {where} ORDER BY c.path",
            args,
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

    def photo_ids(self, paths: Iterable[bytes]) -> dict[bytes, int]:
        """encoded path -> photo id, for those of ``paths`` that are indexed."""
        out: dict[bytes, int] = {}
        wanted = list(dict.fromkeys(paths))
        for start in range(0, len(wanted), 900):
            part = wanted[start : start + 900]
            marks = ",".join("?" * len(part))
            for raw, pid in self.conn.execute(
                f"SELECT path, id FROM photos WHERE path IN ({marks})", part
            ):
                out[raw] = int(pid)
        return out

    def paths_of(self, ids: Iterable[int]) -> dict[int, Path]:
        """photo id -> path, for those of ``ids`` that are indexed."""
        out: dict[int, Path] = {}
        for part in chunks(list(dict.fromkeys(int(i) for i in ids))):
            marks = ",".join("?" * len(part))
            for pid, raw in self.conn.execute(
                f"SELECT id, path FROM photos WHERE id IN ({marks})", part
            ):
                out[pid] = decode_path(raw)
        return out

    def ids_with_hash(self, content_hash: str) -> list[int]:
        rows = self.conn.execute("SELECT id FROM photos WHERE hash = ?", (content_hash,))
        return [int(r[0]) for r in rows]

    def hash_groups(self) -> list[list[int]]:
        """Photos sharing a content hash (exact copies), two or more per group."""
        rows = self.conn.execute(
            "SELECT hash, group_concat(id) FROM photos GROUP BY hash HAVING COUNT(*) > 1 ORDER BY hash"
        )
        return [[int(x) for x in ids.split(",")] for _, ids in rows]

    def ids_under(self, roots: Sequence[Path]) -> np.ndarray:
        """The ids of the photos at or under ``roots``, sorted (int64)."""
        where, args = under_clause(roots)
        rows = self.conn.execute(f"SELECT id FROM photos WHERE {where}", args)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64)
        ids.sort()
        return ids

    def count_photos(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0])
