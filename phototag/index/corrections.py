"""The user's corrections, stored by content hash (storage only: how they apply is phototag/library/corrections.py).

A mixin of :class:`~phototag.index.store.Index`: methods over its connection."""

from __future__ import annotations

import time

from .records import (
    StoredCorrection,
)
from .tables import Tables


class CorrectionTables(Tables):
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
