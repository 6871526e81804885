"""Folder filters and limits at library sizes that cross every cut (issue 15).

Each query once ranked or limited the whole library and filtered by folder afterwards
(``similar``/``search --under`` kept the best 1,000): a folder of a few hundred photos in
a large library got fewer results than asked, or none. These libraries put more than
1,000 better-scoring photos outside the folder, more photos than one read chunk (900),
and folder names that share a prefix with the folder or are not valid UTF-8. Rows are
made through the index's own API; nothing is decoded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from phototag.index import Index
from phototag.index.store import PhotoRecord, under_clause
from phototag.index.vectors import folder, vector_table
from phototag.library import search
from phototag.library.query import TagQuery, run_query
from phototag.library.search import by_embedding, by_tags
from phototag.models.recognizers import Candidate

DIM = 32
OUTSIDE = 2500  # more than the old cut of max(20 * n, 1000), all scoring above the folder
INSIDE = 300
# Siblings whose names sort next to "small": a prefix, '-' and '.' (bytes below '/'), '0'
# (the byte after '/'), and a name that is not UTF-8.
SIBLINGS = ["small-2", "small.d", "small0", "smallx", "small\udcff"]


def _photo(idx: Index, path: str, i: int) -> int:
    return idx.upsert_photo(PhotoRecord(Path(path), 1, i, f"{i:032x}", 10, 10, None))


@pytest.fixture
def library(tmp_path: Path) -> Iterator[tuple[Index, np.ndarray, dict[str, list[int]]]]:
    """2,500 photos in /library/big close to the query, 300 in /library/small further from
    it, and siblings of /library/small closer than any of its photos. (Not /lib: folders a
    query names are resolved, and /lib is a symlink to /usr/lib on many systems.)"""
    rng = np.random.default_rng(7)
    query = rng.standard_normal(DIM).astype(np.float32)
    ids: dict[str, list[int]] = {"big": [], "small": [], "sibling": []}
    idx = Index.open(tmp_path / "i.sqlite")
    with idx.transaction():
        for i in range(OUTSIDE):
            pid = _photo(idx, f"/library/big/{i:05d}.jpg", i)
            idx.set_embedding(pid, "b", "fp", query + 0.1 * rng.standard_normal(DIM))
            idx.set_results(pid, "r", "fp", [Candidate("dog", 0.9, "animal/dog")])
            ids["big"].append(pid)
        for i in range(INSIDE):
            pid = _photo(idx, f"/library/small/{i:05d}.jpg", OUTSIDE + i)
            idx.set_embedding(pid, "b", "fp", query + 2.0 * rng.standard_normal(DIM))
            idx.set_results(pid, "r", "fp", [Candidate("dog", 0.5, "animal/dog"),
                                              Candidate("cat", 0.2, "animal/cat")])  # fmt: skip
            ids["small"].append(pid)
        for j, name in enumerate(SIBLINGS):
            pid = _photo(idx, f"/library/{name}/x.jpg", 10_000 + j)
            idx.set_embedding(pid, "b", "fp", query)
            idx.set_results(pid, "r", "fp", [Candidate("dog", 1.0, "animal/dog")])
            ids["sibling"].append(pid)
    yield idx, query, ids
    idx.close()


def _names(found: list[search.Similar]) -> set[str]:
    return {os.fsdecode(s.path) for s in found}


@pytest.mark.parametrize("memory_mapped", [True, False])
def test_similar_under_a_small_folder_gets_its_n_best_whatever_scores_better_elsewhere(
    library: tuple[Index, np.ndarray, dict[str, list[int]]],
    monkeypatch: pytest.MonkeyPatch,
    memory_mapped: bool,
) -> None:
    idx, query, _ = library
    if not memory_mapped:  # the fallback that reads SQLite in chunks
        monkeypatch.setattr(search, "vector_table", lambda index, backbone: None)
    small = Path("/library/small")
    found = by_embedding(idx, query, "b", n=50, under=[small], chunk=256)
    assert len(found) == 50
    assert all(s.path.parent == small for s in found)
    # ...and they are that folder's best, in order.
    vecs = idx.vectors_of(idx.ids_under([small]).tolist(), "b")
    cos = vecs @ query / np.linalg.norm(vecs, axis=1) / np.linalg.norm(query)
    expected = np.sort(cos)[::-1][:50]
    assert np.allclose([s.score for s in found], expected, atol=2e-3)  # float16 rounding
    # Asking for more than the folder holds gives the whole folder, nothing from outside.
    everything = by_embedding(idx, query, "b", n=1000, under=[small])
    assert len(everything) == INSIDE and all(s.path.parent == small for s in everything)
    # Without a folder, the library's best come first (the siblings are the query itself).
    best = by_embedding(idx, query, "b", n=len(SIBLINGS))
    assert {s.path.parent.name for s in best} == set(SIBLINGS)


def test_similar_by_tags_under_a_small_folder_ranks_only_that_folder(
    library: tuple[Index, np.ndarray, dict[str, list[int]]],
) -> None:
    idx, _, ids = library
    query = {"animal/dog": 0.9}
    found = by_tags(
        idx, query, n=INSIDE + 10, under=[Path("/library/small")], exclude=ids["small"][0]
    )
    assert len(found) == INSIDE - 1
    assert all(s.path.parent == Path("/library/small") for s in found)
    whole = by_tags(idx, query, n=10)
    assert {s.path.parent.name for s in whole} <= {"big", *SIBLINGS}


def test_a_tag_query_under_a_folder_reads_only_that_folder_and_misses_nothing(
    library: tuple[Index, np.ndarray, dict[str, list[int]]],
) -> None:
    idx, _, ids = library
    matches = run_query(idx, TagQuery(tags=("dog",), under=("/library/small",)))
    assert sorted(m.photo_id for m in matches) == sorted(ids["small"])
    everything = run_query(idx, TagQuery(tags=("animal",)))
    assert len(everything) == OUTSIDE + INSIDE + len(SIBLINGS)  # more than one read chunk
    cats = run_query(idx, TagQuery(tags=("cat",), under=("/library",)))
    assert len(cats) == INSIDE
    assert run_query(idx, TagQuery(tags=("dog",), min_score=0.6, under=("/library/small",))) == []


def test_folder_ranges_keep_siblings_and_non_utf8_names_apart(
    library: tuple[Index, np.ndarray, dict[str, list[int]]],
) -> None:
    idx, _, ids = library
    assert idx.ids_under([Path("/library/small")]).tolist() == sorted(ids["small"])
    assert idx.ids_under([Path("/library/small/")]).tolist() == sorted(ids["small"])  # trailing /
    odd = Path("/library/small\udcff")
    assert idx.ids_under([odd]).tolist() == [ids["sibling"][-1]]
    assert idx.ids_under([odd / "x.jpg"]).tolist() == [ids["sibling"][-1]]  # a file as root
    assert len(idx.ids_under([Path("/")])) == OUTSIDE + INSIDE + len(SIBLINGS)
    written = idx.photos_under([Path("/library/small")])
    assert [p.id for p in written] == sorted(ids["small"])  # path order = id order here
    assert written[0].tag_paths == ["animal/dog", "animal/cat"]
    assert [p.id for p in idx.photos_by_id(ids["sibling"])] == sorted(ids["sibling"])
    with idx.transaction():
        pass
    assert idx.forget([Path("/library/small")]) == INSIDE
    assert len(idx.ids_under([Path("/library")])) == OUTSIDE + len(SIBLINGS)


def test_under_clause_is_a_range_the_path_index_answers(tmp_path: Path) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        where, args = under_clause([Path("/library/small")])
        plan = " ".join(
            str(r[-1])
            for r in idx.conn.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM photos WHERE {where}", args
            )
        )
        assert "USING" in plan and "INDEX" in plan and "SCAN photos" not in plan, plan


def test_the_memory_mapped_embeddings_follow_every_change(
    library: tuple[Index, np.ndarray, dict[str, list[int]]],
) -> None:
    idx, query, ids = library
    first = vector_table(idx, "b")
    assert first is not None and len(first.ids) == OUTSIDE + INSIDE + len(SIBLINGS)
    assert vector_table(idx, "b") is not None  # reused: same version
    top = by_embedding(idx, query, "b", n=1, under=[Path("/library/small")])[0]
    # A photo's embedding replaced: it becomes the folder's best at once.
    target = ids["small"][-1]
    with idx.transaction():
        idx.set_embedding(target, "b", "fp", query)
    after = by_embedding(idx, query, "b", n=1, under=[Path("/library/small")])[0]
    assert after.path.name == f"{INSIDE - 1:05d}.jpg" and after.score > 0.99
    assert after.path != top.path
    # A photo deleted (the embedding goes by cascade): it is gone from results.
    with idx.transaction():
        idx.remove([os.fsencode(after.path)])
    again = by_embedding(idx, query, "b", n=1, under=[Path("/library/small")])[0]
    assert again.path != after.path
    # Only the current copy is kept on disk.
    assert len([p for p in folder(idx.path).iterdir() if p.name.endswith(".ids.npy")]) == 1


def test_a_read_only_index_folder_searches_from_sqlite(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with Index.open(tmp_path / "i.sqlite") as idx, idx.transaction():
        for i in range(20):
            pid = _photo(idx, f"/p/{i}.jpg", i)
            idx.set_embedding(pid, "b", "fp", rng.standard_normal(8))
    folder(tmp_path / "i.sqlite").write_text("not a folder")  # the copy cannot be made
    with Index.open(tmp_path / "i.sqlite") as idx:
        assert vector_table(idx, "b") is None
        assert len(by_embedding(idx, rng.standard_normal(8), "b", n=5)) == 5


def test_tag_counts_kept_by_triggers_match_a_count_of_the_rows(
    library: tuple[Index, np.ndarray, dict[str, list[int]]],
) -> None:
    idx, _, ids = library

    def counted() -> list[tuple[str, str, int]]:
        rows = idx.conn.execute(
            "SELECT recognizer, path, COUNT(*) FROM tags GROUP BY recognizer, path"
            " ORDER BY COUNT(*) DESC, recognizer, path"
        )
        return [(r, p, n) for r, p, n in rows]

    def kept() -> list[tuple[str, str, int]]:
        return [(c.recognizer, c.path, c.photos) for c in idx.tag_counts()]

    assert kept() == counted() == [("r", "animal/dog", OUTSIDE + INSIDE + len(SIBLINGS)),
                                   ("r", "animal/cat", INSIDE)]  # fmt: skip
    with idx.transaction():  # replaced results, a copy, a deleted photo (cascade)
        idx.set_results(ids["small"][0], "r", "fp", [Candidate("bird", 0.7, "animal/bird")])
        idx.copy_results(ids["small"][0], ids["small"][1])
        idx.remove([b"/library/small/00002.jpg"])
    assert kept() == counted()
    assert ("r", "animal/bird", 2) in kept()
    assert [c.path for c in idx.tag_counts("r")] == [p for _, p, _ in counted()]
    assert idx.tag_counts("other") == []
