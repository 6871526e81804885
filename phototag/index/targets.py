"""What phototag wrote where: the files (sidecars, embedded photos) it wrote keywords into, and which values are its own, so `clean` can take back exactly those.

A mixin of :class:`~phototag.index.store.Index`: methods over its connection."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .paths import decode_path, encode_path
from .records import (
    TargetRecord,
)
from .tables import Tables


class TargetTables(Tables):
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

    def _retarget(self, rec: TargetRecord, new: Path, photo_id: int) -> None:
        """The record of what phototag wrote into ``rec.target`` now describes ``new``."""
        self.forget_target(rec.target)
        self.record_target(
            new, photo_id=photo_id, mode=rec.mode, created=rec.created, size=rec.size,
            mtime_ns=rec.mtime_ns, wanted=rec.wanted or "", ours=rec.ours,
        )  # fmt: skip

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
