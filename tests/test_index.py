"""The index: schema versions, migrations, refusal of files it must not touch, and its queries."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from phototag.errors import IndexFileError
from phototag.index import Index
from phototag.index.schema import LATEST, MIGRATIONS, ensure_schema, schema_version
from phototag.index.store import PhotoRecord
from phototag.models.recognizers import Candidate


def record(path: str, h: str = "h1") -> PhotoRecord:
    return PhotoRecord(Path(path), 10, 20, h, 640, 480, None)


def test_a_new_index_has_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    with Index.open(tmp_path / "sub" / "i.sqlite") as idx:
        assert schema_version(idx.conn) == LATEST
        assert idx.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert idx.integrity() == "ok"


def test_migrations_run_forward_once_and_keep_data(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite"
    with Index.open(path) as idx, idx.transaction():
        idx.upsert_photo(record("/p/a.jpg"))
    future = [*MIGRATIONS, "ALTER TABLE photos ADD COLUMN rating INTEGER;"]
    conn = sqlite3.connect(path, isolation_level=None)
    assert ensure_schema(conn, future) == LATEST + 1
    assert ensure_schema(conn, future) == LATEST + 1  # idempotent
    assert conn.execute("SELECT path, rating FROM photos").fetchall() == [(b"/p/a.jpg", None)]
    conn.close()


def test_an_index_from_a_newer_phototag_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite"
    Index.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    with pytest.raises(IndexFileError, match="newer phototag"):
        Index.open(path)


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my precious notes\n" * 100)
    with pytest.raises(IndexFileError, match="not a usable phototag index"):
        Index.open(path)
    assert path.read_bytes() == b"my precious notes\n" * 100


def test_show_without_an_index_says_to_scan_first(tmp_path: Path) -> None:
    with pytest.raises(IndexFileError, match="run 'phototag scan' first"):
        Index.open(tmp_path / "none.sqlite", create=False)


def test_results_tags_and_embeddings_round_trip(tmp_path: Path) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        with idx.transaction():
            pid = idx.upsert_photo(record("/p/caf\u00e9.jpg"))
            idx.set_results(pid, "food", "fp", [Candidate("espresso", 0.9, "food/drink/espresso")])
            idx.set_embedding(pid, "bb", "fp", np.arange(4, dtype=np.float32) / 3)
        view = idx.photo(Path("/p/caf\u00e9.jpg"))
        assert view is not None
        assert view.tags == {
            "food": [Candidate("espresso", pytest.approx(0.9), "food/drink/espresso")]
        }
        assert view.embeddings == {"bb": 4}
        emb = idx.embedding(Path("/p/caf\u00e9.jpg"), "bb")
        assert emb is not None
        np.testing.assert_allclose(emb, np.arange(4) / 3, atol=1e-3)  # float16 storage
        assert [(c.tag, c.photos) for c in idx.tag_counts()] == [("espresso", 1)]


def test_new_content_at_a_known_path_forgets_the_old_results(tmp_path: Path) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx, idx.transaction():
        pid = idx.upsert_photo(record("/p/a.jpg", "old"))
        idx.set_results(pid, "food", "fp", [Candidate("pizza", 0.9, "food/dish/pizza")])
        assert idx.upsert_photo(record("/p/a.jpg", "new")) == pid
        view = idx.photo(Path("/p/a.jpg"))
        assert view is not None and view.tags == {} and view.hash == "new"


def test_set_results_if_changed_compares_the_scores_exactly(tmp_path: Path) -> None:
    """retag's "changed": any stored score that would differ, not a comparison rounded to 4
    places (where a tiny difference counted or not by which side of a rounding boundary it
    fell); the fingerprint is brought up to date either way."""
    espresso = Candidate("espresso", 0.26025, "food/drink/espresso")
    with Index.open(tmp_path / "i.sqlite") as idx, idx.transaction():
        pid = idx.upsert_photo(record("/p/a.jpg"))
        idx.set_results(pid, "food", "fp1", [espresso])

        def fingerprint() -> str:
            row = idx.conn.execute(
                "SELECT fingerprint FROM results WHERE photo_id = ? AND recognizer = 'food'",
                (pid,),
            ).fetchone()
            return str(row[0])

        assert not idx.set_results_if_changed(pid, "food", "fp2", [espresso])
        assert fingerprint() == "fp2"
        nudged = Candidate("espresso", 0.26025 + 4e-6, "food/drink/espresso")  # 4 places: equal
        assert idx.set_results_if_changed(pid, "food", "fp3", [nudged])
        assert fingerprint() == "fp3"
        view = idx.photo(Path("/p/a.jpg"))
        assert view is not None and view.tags["food"][0].score == nudged.score
        assert idx.set_results_if_changed(pid, "food", "fp3", [])  # a tag gone
        assert not idx.set_results_if_changed(pid, "food", "fp3", [])


def test_paths_that_are_not_utf8_are_stored_exactly(tmp_path: Path) -> None:
    import os

    odd = Path(os.fsdecode(b"/p/bad-\xff-name.jpg"))
    with Index.open(tmp_path / "i.sqlite") as idx:
        with idx.transaction():
            idx.upsert_photo(record(str(odd)))
        assert list(idx.known_files()) == [b"/p/bad-\xff-name.jpg"]
        assert idx.photo(odd) is not None


def test_a_failed_batch_is_rolled_back(tmp_path: Path) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        with pytest.raises(RuntimeError), idx.transaction():
            idx.upsert_photo(record("/p/a.jpg"))
            raise RuntimeError("killed mid-batch")
        assert idx.count_photos() == 0


def test_an_index_of_mains_schema_gains_the_scale_tables_after_faces_and_ownership(
    tmp_path: Path,
) -> None:
    """The merged order: main's migrations (formats, ownership, faces) first, then issue
    15's (embedding versions, complete_for, tag_counts). An index written at main's last
    schema (faces: 8) keeps its tags, corrections and faces and gets tag_counts counted."""
    conn = sqlite3.connect(tmp_path / "i.sqlite", isolation_level=None)
    assert ensure_schema(conn, MIGRATIONS[:8]) == 8
    conn.execute("INSERT INTO photos (id, path, size, mtime_ns, hash, scanned_at)"
                 " VALUES (1, X'2F612E6A7067', 1, 1, 'h', 0)")  # fmt: skip
    conn.execute("INSERT INTO tags VALUES (1, 'r', 'animal/dog', 'dog', 0.9)")
    conn.execute("INSERT INTO tags VALUES (1, 'people', 'people/face', 'face', 1.0)")
    conn.execute(
        "INSERT INTO corrections (hash, path, action, at) VALUES ('h', 'user/Bob', 'add', 0)"
    )
    conn.execute(
        "INSERT INTO faces (photo_id, x1, y1, x2, y2, score, quality) VALUES (1, 0, 0, 1, 1, 1, 1)"
    )
    assert ensure_schema(conn, MIGRATIONS) == LATEST
    counted = conn.execute(
        "SELECT recognizer, path, photos FROM tag_counts ORDER BY path"
    ).fetchall()
    assert counted == [("r", "animal/dog", 1), ("people", "people/face", 1)]
    assert conn.execute("SELECT COUNT(*) FROM corrections").fetchone() == (1,)
    assert conn.execute("SELECT COUNT(*) FROM faces").fetchone() == (1,)
    conn.close()
    with Index.open(tmp_path / "i.sqlite") as idx:
        from phototag.library.corrections import corrected_counts

        counts = {(c.recognizer, c.path): c.photos for c in corrected_counts(idx)}
        assert counts == {
            ("r", "animal/dog"): 1,
            ("people", "people/face"): 1,
            ("user", "user/Bob"): 1,
        }


def test_settled_records_are_the_walks_records_of_the_complete_online_photos(
    tmp_path: Path,
) -> None:
    from phototag.tagging.walk import RECORD

    root = tmp_path / "lib"
    names = [b"a.jpg", b"bad-\xff name.jpg", b"new\nline.jpg", b"sub/x.jpg", b"z.jpg"]
    rows = []
    with Index.open(tmp_path / "i.sqlite") as idx:
        for i, name in enumerate(names):
            path = Path(os.fsdecode(os.fsencode(root) + b"/" + name))
            size, mtime_ns = 10**12 + i, -(10**18) if i == 1 else 1_700_000_000 * 10**9 + i
            pid = idx.upsert_photo(PhotoRecord(path, size, mtime_ns, f"h{i}", 1, 1, None))
            rows.append((pid, os.fsencode(path), size, mtime_ns))
        outside = idx.upsert_photo(PhotoRecord(tmp_path / "elsewhere.jpg", 1, 1, "h9", 1, 1, None))
        idx.mark_complete([pid for pid, *_ in rows] + [outside], "digest")
        idx.mark_complete([rows[3][0]], "other models")  # not settled for "digest"
        idx.mark_offline([rows[4][1]])  # nor is a photo of an offline folder
        records, others = idx.settled_records([root], "digest")
    settled = sorted(r[1:] for r in rows[:3])  # path order; nothing from outside the root
    assert records == b"".join(RECORD % r for r in settled)
    assert others == 2
