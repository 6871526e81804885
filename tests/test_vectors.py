"""The memory-mapped embeddings search works from (phototag/index/vectors.py): the int8
rows that pick candidates, the exact float ranking of what is returned, the copy's files
(made, upgraded, rebuilt) and the copy kept open between searches. Rows are made through
the index's own API; nothing is decoded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from phototag.index import Index, vectors
from phototag.index.store import PhotoRecord
from phototag.index.vectors import folder, quantise, top_n, top_n_float16, vector_table
from phototag.search import by_embedding

DIM = 64


def _fill(idx: Index, vecs: np.ndarray, backbone: str = "b") -> list[int]:
    ids = []
    with idx.transaction():
        for i, v in enumerate(vecs):
            pid = idx.upsert_photo(
                PhotoRecord(Path(f"/lib/{i // 500:02d}/{i:05d}.jpg"), 1, i, f"{i:032x}", 1, 1, None)
            )
            idx.set_embedding(pid, backbone, "fp", v)
            ids.append(pid)
    return ids


def _exact(idx: Index, query: np.ndarray, n: int) -> tuple[list[int], np.ndarray]:
    """The n best photo ids by float64 cosine over the copy's float16 rows, ties by id."""
    table = vector_table(idx, "b")
    assert table is not None
    v = np.asarray(table.unit, dtype=np.float64)
    cos = v @ (query / np.linalg.norm(query)) / np.linalg.norm(v, axis=1)
    order = np.lexsort((table.ids, -cos))[:n]
    return table.ids[order].tolist(), cos[order]


@pytest.fixture
def near_ties(tmp_path: Path) -> Iterator[tuple[Index, np.ndarray]]:
    """3,000 photos: 400 within a hair of the query (their cosines differ by less than int8
    can tell), the rest anywhere."""
    rng = np.random.default_rng(11)
    query = rng.standard_normal(DIM).astype(np.float32)
    close = query + 0.02 * rng.standard_normal((400, DIM)).astype(np.float32)
    far = rng.standard_normal((2600, DIM)).astype(np.float32)
    vecs = np.concatenate([far[:1300], close, far[1300:]])
    idx = Index.open(tmp_path / "i.sqlite")
    _fill(idx, vecs)
    yield idx, query
    idx.close()


def test_the_int8_scan_orders_near_ties_wrongly_and_the_result_is_still_exact(
    near_ties: tuple[Index, np.ndarray],
) -> None:
    idx, query = near_ties
    table = vector_table(idx, "b")
    assert table is not None and table.quant is not None
    q8, _ = quantise(query[None, :])
    approx = table.quant.astype(np.float64) @ q8[0].astype(np.float64)
    approx /= np.linalg.norm(table.quant.astype(np.float64), axis=1) * np.linalg.norm(q8)
    by_int8 = table.ids[np.lexsort((table.ids, -approx))[:20]].tolist()
    expected, scores = _exact(idx, query, 20)
    assert by_int8 != expected  # int8 alone would get these near-ties wrong...
    ids, found = top_n(table, query, 20)
    assert ids.tolist() == expected  # ...the returned ranking is the exact one
    assert np.allclose(found, scores, atol=1e-5)
    via_search = by_embedding(idx, query, "b", n=20)
    assert [idx.photo_id(s.path) for s in via_search] == expected


def test_too_few_candidates_are_widened_until_the_result_is_certain(
    near_ties: tuple[Index, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    idx, query = near_ties
    table = vector_table(idx, "b")
    assert table is not None
    monkeypatch.setattr(vectors, "FIRST_CANDIDATES", 4)
    tried: list[tuple[int, bool]] = []
    certified = vectors._certified

    def counting(*args: object) -> object:
        found = certified(*args)  # type: ignore[arg-type]
        tried.append((int(args[4]), found is not None))  # type: ignore[call-overload]
        return found

    monkeypatch.setattr(vectors, "_certified", counting)
    ids, _ = top_n(table, query, 5)
    # 40 candidates are all near-ties, so the 5 best cannot be told from the rows left out.
    assert tried[0] == (40, False) and tried[-1][1] and len(tried) >= 2
    assert ids.tolist() == _exact(idx, query, 5)[0]
    # Within a folder the rows are gathered in blocks; the same holds for each block.
    monkeypatch.setattr(vectors, "GATHER_ROWS", 700)
    rows = np.arange(1000, 2500)
    ids, _ = top_n(table, query, 5, rows)
    v = np.asarray(table.unit[rows], dtype=np.float64)
    cos = v @ (query / np.linalg.norm(query)) / np.linalg.norm(v, axis=1)
    assert ids.tolist() == table.ids[rows[np.lexsort((table.ids[rows], -cos))[:5]]].tolist()


def test_past_the_candidate_limit_the_search_is_float16_over_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    query = rng.standard_normal(DIM).astype(np.float32)
    with Index.open(tmp_path / "i.sqlite") as idx:
        _fill(idx, rng.standard_normal((2000, DIM)).astype(np.float32))
        table = vector_table(idx, "b")
        assert table is not None
        monkeypatch.setattr(vectors, "MAX_CANDIDATES", 1)  # no int8 round at all
        monkeypatch.setattr(vectors, "_certified", None)  # would fail if called
        ids, scores = top_n(table, query, 10)
        expected, exact = _exact(idx, query, 10)
        assert ids.tolist() == expected and np.allclose(scores, exact, atol=1e-5)
        q = query / np.linalg.norm(query)
        assert top_n_float16(table, q, 10, None)[0].tolist() == expected


@pytest.mark.parametrize("kind", ["gaussian", "relu", "one spike", "tiny values", "zeros and nan"])
def test_the_quantisation_error_bounds_every_int8_cosine(kind: str) -> None:
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((500, 1280)).astype(np.float32)
    if kind == "relu":  # a CNN's pooled features: non-negative, many zeros
        rows = np.maximum(rows, 0) ** 2
    elif kind == "one spike":
        rows[:, 7] = 40.0
    elif kind == "tiny values":
        rows *= 1e-6
    elif kind == "zeros and nan":
        rows[::3] = 0
        rows[1::7, 3] = np.nan
    q = rng.standard_normal(1280).astype(np.float32)
    q8, q_error = quantise(q[None, :])
    r8, r_error = quantise(rows)
    assert r8.dtype == np.int8 and np.abs(r8.astype(np.int16)).max() <= 127
    finite = np.isfinite(rows).all(axis=1)
    u = np.where(finite[:, None], rows, 0).astype(np.float64)
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
    exact = u @ (q / np.linalg.norm(q))
    r = r8.astype(np.float64)
    approx = (r @ q8[0].astype(np.float64)) / np.maximum(
        np.linalg.norm(r, axis=1) * np.linalg.norm(q8[0].astype(np.float64)), 1e-300
    )
    assert np.all(np.abs(exact - approx) <= q_error[0] + r_error + 1e-6)
    assert r_error.max() < 0.1  # and the bound is tight enough to be of use
    assert np.all(r_error[~finite] == 0) and np.all(r8[~finite] == 0)


def test_an_older_copy_gains_its_int8_rows_without_reading_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(2)
    query = rng.standard_normal(DIM).astype(np.float32)
    with Index.open(tmp_path / "i.sqlite") as idx:
        _fill(idx, rng.standard_normal((300, DIM)).astype(np.float32))
        assert vector_table(idx, "b") is not None
        expected = by_embedding(idx, query, "b", n=10)
        where = folder(idx.path)
        # What the copy looked like before the int8 rows: float16 rows and ids only.
        for p in where.iterdir():
            if p.name.endswith((".i8.npy", ".meta.json")):
                p.unlink()
        assert sorted(p.name.split(".", 2)[2] for p in where.iterdir()) == ["f16.npy", "ids.npy"]
        vectors._OPENED.clear()  # a new process

        def no_sqlite(*args: object, **kwargs: object) -> None:
            raise AssertionError("the copy was read again from SQLite")

        monkeypatch.setattr(Index, "embedding_chunks", no_sqlite)
        table = vector_table(idx, "b")
        assert table is not None and table.quant is not None and table.token
        assert sorted(p.name.split(".", 2)[2] for p in where.iterdir()) == [
            "f16.npy", "i8.npy", "ids.npy", "meta.json"
        ]  # fmt: skip
        assert by_embedding(idx, query, "b", n=10) == expected
        # A meta file of another format is not trusted: its int8 rows are made again.
        meta = next(where.glob("*.meta.json"))
        meta.write_text('{"format": 1}')
        vectors._OPENED.clear()
        again = vector_table(idx, "b")
        assert again is not None and again.quant is not None and again.token != table.token
        # A cut int8 file (a full disk) is not mapped: its rows are made again.
        quant = next(where.glob("*.i8.npy"))
        with open(quant, "r+b") as f:
            f.truncate(quant.stat().st_size // 2)
        vectors._OPENED.clear()
        third = vector_table(idx, "b")
        assert third is not None and third.quant is not None and third.token != again.token
        assert quant.stat().st_size > 300 * DIM and by_embedding(idx, query, "b", n=10) == expected


def test_the_opened_copy_is_kept_until_it_changes_or_is_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    with Index.open(tmp_path / "i.sqlite") as idx:
        ids = _fill(idx, rng.standard_normal((200, DIM)).astype(np.float32))
        first = vector_table(idx, "b")
        assert first is not None and vector_table(idx, "b") is first  # not mapped again
        # Another process rebuilt the copy at the same version: ours is not reused.
        rebuilt = vectors._build(idx, "b", folder(idx.path))
        assert rebuilt is not None and rebuilt.token != first.token
        second = vector_table(idx, "b")
        assert second is not None and second is not first and second.token == rebuilt.token
        # A change to the embeddings: the next search rebuilds and opens the new copy.
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
        assert len([p for p in os.listdir(folder(idx.path)) if p.endswith(".meta.json")]) == 1
