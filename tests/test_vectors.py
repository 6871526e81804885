"""The memory-mapped embeddings search works from (phototag/index/vectors.py): the copy
kept open between searches and dropped when it changes, the mapping with its pages filled
at once, and the float32 scores of what is returned. Rows are made through the index's own
API; nothing is decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from phototag.index import Index, vectors
from phototag.index.store import PhotoRecord
from phototag.index.vectors import folder, top_n, vector_table
from phototag.library.search import by_embedding

DIM = 64


def _fill(idx: Index, vecs: np.ndarray) -> list[int]:
    ids = []
    with idx.transaction():
        for i, v in enumerate(vecs):
            pid = idx.upsert_photo(
                PhotoRecord(Path(f"/lib/{i // 500:02d}/{i:05d}.jpg"), 1, i, f"{i:032x}", 1, 1, None)
            )
            idx.set_embedding(pid, "b", "fp", v)
            ids.append(pid)
    return ids


def _exact(idx: Index, query: np.ndarray, n: int) -> tuple[list[int], np.ndarray]:
    """The n best photo ids by float64 cosine over the stored float16 embeddings, ties by id."""
    ids = idx.ids_under([Path("/")])
    v = idx.vectors_of(ids.tolist(), "b").astype(np.float64)
    cos = v @ (query / np.linalg.norm(query)) / np.linalg.norm(v, axis=1)
    order = np.lexsort((ids, -cos))[:n]
    return ids[order].tolist(), cos[order]


def test_the_opened_copy_is_kept_until_it_changes_or_is_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    with Index.open(tmp_path / "i.sqlite") as idx:
        ids = _fill(idx, rng.standard_normal((200, DIM)).astype(np.float32))
        first = vector_table(idx, "b")
        assert first is not None and vector_table(idx, "b") is first  # not mapped again
        # Another process rebuilt the copy at the same version: ours is not reused.
        rebuilt = vectors._build(idx, "b", folder(idx.path))
        assert rebuilt is not None and rebuilt.file_id != first.file_id
        second = vector_table(idx, "b")
        assert second is not None and second is not first
        assert second.file_id == rebuilt.file_id and vector_table(idx, "b") is second
        # A change to the embeddings: the next search makes and opens the new copy.
        with idx.transaction():
            idx.set_embedding(ids[0], "b", "fp", np.ones(DIM, np.float32))
        third = vector_table(idx, "b")
        assert third is not None and third.version > second.version
        assert by_embedding(idx, np.ones(DIM), "b", n=1)[0].path.name == "00000.jpg"
        # The copy's files are gone (another index took this path): nothing stale is used.
        for p in folder(idx.path).iterdir():
            p.unlink()
        fourth = vector_table(idx, "b")
        assert fourth is not None and fourth is not third and len(fourth.ids) == 200
        assert len(list(folder(idx.path).glob("*.ids.npy"))) == 1


def test_a_cut_copy_is_not_mapped_but_made_again(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    query = rng.standard_normal(DIM).astype(np.float32)
    with Index.open(tmp_path / "i.sqlite") as idx:
        _fill(idx, rng.standard_normal((300, DIM)).astype(np.float32))
        expected = by_embedding(idx, query, "b", n=10)
        vectors._OPENED.clear()  # a new process
        (matrix,) = folder(idx.path).glob("*.f16.npy")
        with open(matrix, "r+b") as f:  # a full disk, or a kill mid-copy by another tool
            f.truncate(matrix.stat().st_size // 2)
        with pytest.raises(ValueError):
            vectors._map_populated(matrix)
        assert by_embedding(idx, query, "b", n=10) == expected
        assert matrix.stat().st_size > 300 * DIM * 2  # made again, whole


def test_the_mapping_is_the_file_read_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with Index.open(tmp_path / "i.sqlite") as idx:
        _fill(idx, rng.standard_normal((50, DIM)).astype(np.float32))
        table = vector_table(idx, "b")
        assert table is not None
        (matrix,) = folder(idx.path).glob("*.f16.npy")
        assert np.array_equal(table.unit, np.load(matrix))
        with pytest.raises(ValueError):
            table.unit[0, 0] = 1  # read-only: a search cannot change the copy


@pytest.mark.parametrize("under", [False, True])
def test_scores_are_float32_cosines_and_ties_go_by_id(tmp_path: Path, under: bool) -> None:
    rng = np.random.default_rng(9)
    vecs = rng.standard_normal((1000, DIM)).astype(np.float32)
    vecs[100:110] = vecs[5]  # ten copies of one photo: equal scores
    query = vecs[5] + 0.01 * rng.standard_normal(DIM).astype(np.float32)
    with Index.open(tmp_path / "i.sqlite") as idx:
        _fill(idx, vecs)
        table = vector_table(idx, "b")
        assert table is not None
        rows = np.arange(len(table.ids)) if under else None
        ids, scores = top_n(table, query, 20, rows)
        expected, exact = _exact(idx, query, 20)
        assert ids.tolist() == expected and scores.dtype == np.float32
        assert np.allclose(scores, exact, atol=5e-4)  # the unit copy's float16 rounding
        assert sorted(ids[:11].tolist()) == ids[:11].tolist()  # the copies, by id
