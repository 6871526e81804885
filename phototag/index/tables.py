"""The base of the index's table groups: the connection, its transactions, and the two
primary-key lookups every group needs."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import IndexFileError
from .paths import decode_path


class Tables:
    """An open SQLite connection to an index; each group of tables adds its methods."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

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

    def hash_of(self, photo_id: int) -> str | None:
        row = self.conn.execute("SELECT hash FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return None if row is None else str(row[0])

    def path_of(self, photo_id: int) -> Path | None:
        row = self.conn.execute("SELECT path FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return None if row is None else decode_path(row[0])
