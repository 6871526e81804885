"""Recognizers' results: tag rows per photo, read in bounded chunks with folder filters in SQL.

A mixin of :class:`~phototag.index.store.Index`: methods over its connection."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path

from .paths import PathDecoder, chunks, decode_path, under_clause
from .records import (
    Candidate,
    PhotoTags,
    PhotoWithTags,
    TagCount,
    TaggedPhoto,
)
from .tables import Tables


class TagTables(Tables):
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
        """:meth:`set_results`, but only where the tags differ; True if so.

        Scores are compared exactly (the stored REAL is the float written): every path to a
        result scores the embedding as stored (phototag.tagging.tagger.as_stored), so the same
        settings give the same bits, and a rounded comparison would only move the noise to the
        rounding boundary (SQLite's ``round`` and Python's need not agree there either). The
        fingerprint is written either way.
        """
        old = sorted(
            self.conn.execute(
                "SELECT path, score FROM tags WHERE photo_id = ? AND recognizer = ?",
                (photo_id, recognizer),
            )
        )
        new = sorted((c.path, float(c.score)) for c in candidates)
        if old == new:
            self.conn.execute(
                "INSERT OR REPLACE INTO results (photo_id, recognizer, fingerprint) VALUES (?, ?, ?)",
                (photo_id, recognizer, fingerprint),
            )
            return False
        self.set_results(photo_id, recognizer, fingerprint, candidates)
        return True

    def drop_recognizer(self, recognizer: str) -> list[int]:
        """Delete every result of ``recognizer`` (its tags and its per-photo fingerprints) in
        one transaction; returns the ids of the photos that had tags from it, sorted."""
        with self.transaction():
            ids = [
                int(r[0])
                for r in self.conn.execute(
                    "SELECT DISTINCT photo_id FROM tags WHERE recognizer = ? ORDER BY photo_id",
                    (recognizer,),
                )
            ]
            self.conn.execute("DELETE FROM tags WHERE recognizer = ?", (recognizer,))
            self.conn.execute("DELETE FROM results WHERE recognizer = ?", (recognizer,))
        return ids

    def photos_by_id(self, ids: Sequence[int]) -> list[PhotoTags]:
        """Like :meth:`photos_under`, for these photos (in path order)."""
        rows: list[tuple[int, bytes, str]] = []
        for part in chunks(sorted({int(i) for i in ids})):
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

        These are the stored tags only; :mod:`phototag.library.corrections` applies the user's
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
        for part in chunks(ids):
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
            for part in chunks(sorted({int(i) for i in ids}), chunk):
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

    def photos_tagged_with(
        self,
        paths: Collection[str],
        recognizer: str | None = None,
        *,
        under: Sequence[Path] = (),
    ) -> list[TaggedPhoto]:
        """Every photo holding any of these tag paths (``recognizer``'s, if given), at or under
        ``under``, with only those of its tags, best first; in no particular order.

        One pass over the ``tags_path`` index joined to the photos' rows, instead of
        :meth:`photos_with_tags` reading photos by id 900 at a time, and no ``Path`` per
        photo (an album query that matches 100,000 photos). Memory: the matching photos,
        which the caller keeps anyway.
        """
        if not paths:
            return []
        where, args = under_clause(under, "p.path")
        found: dict[int, TaggedPhoto] = {}
        wanted = sorted(paths)
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            sql = (
                "SELECT t.photo_id, t.recognizer, t.path, t.score, p.path, p.mtime_ns, p.taken_at,"
                " p.hash FROM tags t JOIN photos p ON p.id = t.photo_id"
                f" WHERE t.path IN ({','.join('?' * len(part))}) AND {where}"
            )
            sql_args: list[object] = [*part, *args]
            if recognizer:
                sql += " AND t.recognizer = ?"
                sql_args.append(recognizer)
            for pid, rec, tpath, score, raw, mtime, taken, content in self.conn.execute(
                sql, sql_args
            ):
                photo = found.get(pid)
                if photo is None:
                    found[pid] = TaggedPhoto(pid, raw, mtime, taken, content, [(rec, tpath, score)])
                else:
                    photo.tags.append((rec, tpath, score))
        for photo in found.values():
            if len(photo.tags) > 1:
                photo.tags.sort(key=lambda t: -t[2])
        return list(found.values())

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
