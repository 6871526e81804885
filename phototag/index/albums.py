"""Albums: their saved queries and the entries (links or copies) phototag made for them.

A mixin of :class:`~phototag.index.store.Index`: methods over its connection."""

from __future__ import annotations

import time
from pathlib import Path

from .paths import decode_path, encode_path
from .records import (
    AlbumRecord,
)
from .tables import Tables


class AlbumTables(Tables):
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

    def album_sources(self, name: str) -> dict[str, bytes]:
        """entry file name -> the photo it stands for, as stored (``os.fsencode`` bytes): what
        a refresh compares with its matches, without a ``Path`` per entry."""
        rows = self.conn.execute("SELECT entry, source FROM album_entries WHERE album = ?", (name,))
        return {r[0]: encode_path(r[1]) for r in rows}

    def add_album_entry(self, name: str, entry: str, source: Path) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO album_entries (album, entry, source) VALUES (?, ?, ?)",
            (name, entry, encode_path(source)),
        )

    def remove_album_entry(self, name: str, entry: str) -> None:
        self.conn.execute("DELETE FROM album_entries WHERE album = ? AND entry = ?", (name, entry))
