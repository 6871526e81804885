"""Embeddings as memory-mapped matrices beside the index, for exact search at scale.

SQLite stays the one source of truth. Reading a million 2.5 KB blobs out of it takes
seconds, and numpy has no fast float16 arithmetic, so searches work from a derived copy,
per backbone, in ``<index>.vectors/``:

- ``<stem>.f16.npy``: the L2-normalised float16 embeddings, (N, dim);
- ``<stem>.i8.npy``: the same rows quantised to int8, each row scaled so that its largest
  value is +-127, (N, dim): half the bytes, and what a search reads in full;
- ``<stem>.ids.npy``: the photo ids, (N,) int64, ascending;
- ``<stem>.meta.json``: the format, the largest quantisation error of any row (below) and a
  token naming this build; written last, so its presence says the set is complete.

The copy is valid while the backbone's counter in ``embedding_versions`` (bumped by
triggers on every insert, update and delete of an embedding, see schema.py) equals the
counter it was built at; otherwise the next search rebuilds it, in one read transaction
(a consistent snapshot under WAL), written to temporary files, fsynced and renamed, so a
kill leaves either the old copy or the new one. A copy made before the int8 rows existed
gets them from its float16 rows, without reading SQLite again. When the folder cannot be
written (a read-only index), :func:`vector_table` returns None and search reads SQLite in
chunks. An opened copy is kept for the life of the process (:data:`_OPENED`) and reused
while its version and build token are those on disk, so a search does not map it again.

Scoring (:func:`top_n`) is exact for what it returns: usearch's SIMD int8 cosine over every
row picks candidates, which are then scored in float32 from the float16 rows, and the
result is certified (see :func:`top_n`) or the candidates widened until it is. Exact
float16 search over everything (usearch, 0.28 s per million 1280-d photos on 2 cores)
remains the fallback; numpy's float16 -> float32 conversion alone costs about 13 s per
million (bench/million.py, docs/performance.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .store import Index

#: Rows gathered at a time when a search is limited to some photos (a folder).
GATHER_ROWS = 65536
#: Rows quantised at a time while the int8 copy is made (bounded memory).
QUANT_ROWS = 65536
#: The copy's format, in its meta file: another value is rebuilt.
FORMAT = 2
#: Candidates taken from the int8 scan at first, at least (see :func:`top_n`).
FIRST_CANDIDATES = 512
#: Once more candidates than this per block would be needed, search float16 exactly instead.
MAX_CANDIDATES = 65536
#: Slack added to the certificate's bound for float32 rounding in the scores (which are
#: accurate to about 1e-6 for 1280 values).
ROUNDING = 1e-4


@dataclass(frozen=True, slots=True)
class VectorTable:
    """One backbone's embeddings: ``unit[i]`` is photo ``ids[i]``'s, L2-normalised.

    ids: (N,) int64, ascending. unit: (N, dim) float16, read-only (memory-mapped).
    quant: (N, dim) int8, ``unit``'s rows each scaled to +-127 and rounded, or None when
    it could not be made (a read-only folder holding an older copy): search is then float16
    only. quant_error: the largest distance, over all rows, between a row made unit and
    its int8 row made unit (a bound on how far int8 cosines are from exact ones).
    token: names this build (a new one on every rebuild).
    """

    backbone: str
    ids: np.ndarray
    unit: np.ndarray
    version: int
    quant: np.ndarray | None = None
    quant_error: float = 2.0
    token: str = ""

    def rows_of(self, photo_ids: np.ndarray) -> np.ndarray:
        """Row numbers of those ``photo_ids`` (sorted int64) that have an embedding."""
        pos = np.searchsorted(self.ids, photo_ids)
        inside = pos < len(self.ids)
        pos, wanted = pos[inside], photo_ids[inside]
        out: np.ndarray = pos[self.ids[pos] == wanted]
        return out


#: Opened copies, by (folder, backbone): kept while the process runs, so repeated searches
#: neither map the files again nor fault their pages in again; at most :data:`OPENED_LIMIT`.
_OPENED: dict[tuple[str, str], VectorTable] = {}
OPENED_LIMIT = 8


def folder(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".vectors")


def embedding_version(index: Index, backbone: str) -> int:
    row = index.conn.execute(
        "SELECT version FROM embedding_versions WHERE backbone = ?", (backbone,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def _stem(backbone: str) -> str:
    # Backbone names come from manifests: hash them rather than trust them as file names.
    return hashlib.sha256(backbone.encode()).hexdigest()[:16]


def vector_table(index: Index, backbone: str) -> VectorTable | None:
    """The current memory-mapped embeddings of ``backbone``, built or rebuilt if stale.

    None when the backbone has no embeddings with a dimension (a detector's rows are
    empty) or the copy cannot be written next to the index. Costs one SQL lookup and one
    small file read when the copy opened before in this process is still current.
    """
    where = folder(index.path)
    version = embedding_version(index, backbone)
    stem = f"{_stem(backbone)}.{version}"
    key = (os.fspath(where), backbone)
    cached = _OPENED.get(key)
    meta = _read_meta(where / f"{stem}.meta.json")
    if (
        cached is not None
        and cached.version == version
        and meta is not None
        and meta.get("token") == cached.token
    ):
        return cached
    _OPENED.pop(key, None)
    table = _load(where, stem, backbone, version, meta)
    if table is not None and table.quant is None:
        with contextlib.suppress(OSError):  # an older copy: add its int8 rows
            table = _add_quantised(where, stem, table) or table
    if table is None:
        try:
            table = _build(index, backbone, where)
        except OSError:
            return None
    if table is not None and table.token:
        while len(_OPENED) >= OPENED_LIMIT:  # the oldest goes (dicts keep insertion order)
            _OPENED.pop(next(iter(_OPENED)))
        _OPENED[key] = table
    return table


def _read_meta(path: Path) -> dict[str, object] | None:
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def _load(
    where: Path, stem: str, backbone: str, version: int, meta: dict[str, object] | None
) -> VectorTable | None:
    """The copy named ``stem``; its int8 rows only with a meta file that matches them."""
    ids_file, vec_file = where / f"{stem}.ids.npy", where / f"{stem}.f16.npy"
    try:
        ids = np.load(ids_file, mmap_mode="r")
        unit = np.load(vec_file, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if ids.ndim != 1 or unit.ndim != 2 or len(ids) != len(unit) or unit.dtype != np.float16:
        return None
    ids = np.asarray(ids, dtype=np.int64)
    if meta is None:
        return VectorTable(backbone, ids, unit, version)
    try:
        quant = _map_populated(where / f"{stem}.i8.npy")
    except (OSError, ValueError):
        return VectorTable(backbone, ids, unit, version)
    error = meta.get("quant_error")
    if quant.shape != unit.shape or quant.dtype != np.int8 or not isinstance(error, float):
        return VectorTable(backbone, ids, unit, version)
    return VectorTable(backbone, ids, unit, version, quant, error, str(meta.get("token", "")))


def _map_populated(path: Path) -> np.ndarray:
    """The ``.npy`` array at ``path``, memory-mapped read-only with its page tables filled
    at once (Linux's ``MAP_POPULATE``) where the system has it.

    Every search reads every int8 row: faulting them in page by page made the first
    search of a process 0.1 to 0.3 s slower per 200,000 rows of 1280 values than the
    next (bench/million.py); populated, the mapping costs a third of that.
    """
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if not populate:
        out: np.ndarray = np.load(path, mmap_mode="r")
        return out
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{path}: .npy format {version} not supported")
        if fortran or dtype.hasobject:
            raise ValueError(f"{path}: not a C-ordered array of numbers")
        offset = f.tell()
        count = int(np.prod(shape))
        if offset + count * dtype.itemsize > os.fstat(f.fileno()).st_size:
            raise ValueError(f"{path}: shorter than its header says")
        mapped = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | populate, prot=mmap.PROT_READ)
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)


def quantise(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (k, dim) as int8 rows scaled so that each one's largest magnitude is 127, and
    each row's error: the distance between the row made unit and its int8 row made unit.

    Cosine is blind to a row's scale, so each row gets its own (a shared one would leave
    rows with small values a few levels). Rows that are zero or not finite quantise to
    zeros with error 0: a zero row scores 0 both ways, and a row that is not finite is
    never a result (its exact score is not finite).
    """
    u = np.asarray(rows, dtype=np.float32)
    finite = np.asarray(np.isfinite(u).all(axis=1))
    u = np.where(finite[:, None], u, np.float32(0))
    u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-30)
    peak = np.abs(u).max(axis=1, keepdims=True)
    q = np.rint(u * (127 / np.maximum(peak, 1e-30))).astype(np.int8)
    back = q.astype(np.float32)
    back /= np.maximum(np.linalg.norm(back, axis=1, keepdims=True), 1e-30)
    error: np.ndarray = np.linalg.norm(u - back, axis=1)
    return q, error


def _write_quantised(where: Path, stem: str, unit: np.ndarray) -> float:
    """Write ``<stem>.i8.npy`` from the float16 rows, in chunks; returns the largest error."""
    fd, tmp = tempfile.mkstemp(dir=where, prefix=".", suffix=".i8.npy")
    os.close(fd)
    try:
        quant = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int8, shape=unit.shape)
        worst = 0.0
        for start in range(0, len(unit), QUANT_ROWS):
            q, error = quantise(unit[start : start + QUANT_ROWS])
            quant[start : start + len(q)] = q
            worst = max(worst, float(error.max(initial=0.0)))
        quant.flush()
        del quant
        _fsync(tmp)
        os.replace(tmp, where / f"{stem}.i8.npy")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return worst


def _write_meta(where: Path, stem: str, rows: int, dim: int, quant_error: float) -> None:
    """The meta file, renamed into place last: it completes the copy."""
    meta = {"format": FORMAT, "rows": rows, "dim": dim, "quant_error": quant_error,
            "token": uuid.uuid4().hex}  # fmt: skip
    fd, tmp = tempfile.mkstemp(dir=where, prefix=".", suffix=".meta.json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, where / f"{stem}.meta.json")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _add_quantised(where: Path, stem: str, table: VectorTable) -> VectorTable | None:
    """An older copy (float16 rows and ids only) completed with its int8 rows."""
    error = _write_quantised(where, stem, table.unit)
    _write_meta(where, stem, len(table.ids), table.unit.shape[1], error)
    meta = _read_meta(where / f"{stem}.meta.json")
    return _load(where, stem, table.backbone, table.version, meta)


def _build(index: Index, backbone: str, where: Path) -> VectorTable | None:
    where.mkdir(parents=True, exist_ok=True)
    conn = index.conn
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")  # one snapshot: the version and the rows agree
    try:
        version = embedding_version(index, backbone)
        stem = f"{_stem(backbone)}.{version}"
        row = conn.execute(
            "SELECT COUNT(*), MAX(length(vector)) FROM embeddings WHERE backbone = ?", (backbone,)
        ).fetchone()
        total, width = int(row[0]), int(row[1] or 0)
        if total == 0 or width == 0:
            return None
        dim = width // 2
        ids = np.empty(total, dtype=np.int64)
        fd, tmp_vec = tempfile.mkstemp(dir=where, prefix=".", suffix=".f16.npy")
        os.close(fd)
        try:
            unit = np.lib.format.open_memmap(
                tmp_vec, mode="w+", dtype=np.float16, shape=(total, dim)
            )
            pos = 0
            for chunk_ids, vecs in index.embedding_chunks(backbone):
                if vecs.shape[1] != dim:
                    continue  # a vector of another size (a damaged row): not searchable
                v = vecs.astype(np.float32)
                v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
                unit[pos : pos + len(v)] = v
                ids[pos : pos + len(v)] = chunk_ids
                pos += len(v)
            unit.flush()
            del unit
            if pos != total:  # rows of another size were left out: shrink to what was kept
                kept = np.load(tmp_vec, mmap_mode="r")[:pos]
                np.save(tmp_vec + ".part.npy", kept)
                os.replace(tmp_vec + ".part.npy", tmp_vec)
                ids = ids[:pos]
            _fsync(tmp_vec)
            error = _write_quantised(where, stem, np.load(tmp_vec, mmap_mode="r"))
            fd, tmp_ids = tempfile.mkstemp(dir=where, prefix=".", suffix=".ids.npy")
            with os.fdopen(fd, "wb") as f:
                np.save(f, ids)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_vec, where / f"{stem}.f16.npy")
            os.replace(tmp_ids, where / f"{stem}.ids.npy")
            # The meta file is renamed last: its presence says the set is complete.
            _write_meta(where, stem, pos, dim, error)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_vec)
            raise
    finally:
        if own:
            conn.execute("COMMIT")
    _drop_old(where, _stem(backbone), stem)
    return _load(where, stem, backbone, version, _read_meta(where / f"{stem}.meta.json"))


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_old(where: Path, backbone_stem: str, keep: str) -> None:
    """Remove this backbone's older copies (a reader that has one mapped keeps its pages)."""
    for p in where.glob(f"{backbone_stem}.*"):
        if not p.name.startswith(keep + "."):
            with contextlib.suppress(OSError):
                p.unlink()


def top_n(
    table: VectorTable,
    query: np.ndarray,
    n: int,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best (photo ids, cosine scores) for ``query`` (dim,), best first (ties by id).

    A score is the float32 cosine of the query and a row of the float16 copy. ``rows``:
    search only these rows of the table (a folder's photos), gathered :data:`GATHER_ROWS`
    at a time so memory stays bounded by that, not by the folder.

    How: an exact int8 cosine scan (usearch, SIMD; half the bytes of float16) keeps the K
    best rows of each block as candidates, which are scored exactly. Every int8 cosine is
    within ``bound`` = the query's quantisation error + the table's largest row error of the
    exact one (for unit vectors, ``|q.u - q'.u'| <= |q - q'| + |u - u'|``), so a row left
    out scores at most the lowest kept int8 cosine + ``bound``. When the ``n``-th best exact
    score is above that, no row left out can be among the ``n`` best and the answer is
    exact; otherwise K grows eightfold, and past :data:`MAX_CANDIDATES` the rows are
    searched exactly in float16 instead.
    """
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    total = len(table.ids) if rows is None else len(rows)
    if total == 0 or n <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    if table.quant is not None and np.isfinite(q).all() and q.any():
        q8, q_error = quantise(q[None, :])
        bound = float(q_error[0]) + table.quant_error + ROUNDING
        k = max(FIRST_CANDIDATES, 8 * n)
        while k <= MAX_CANDIDATES:
            found = _certified(table, q, q8[0], n, k, bound, rows)
            if found is not None:
                return found
            k *= 8
    return top_n_float16(table, q, n, rows)


def _blocks(total: int, rows: np.ndarray | None) -> list[tuple[int, int]]:
    step = total if rows is None else GATHER_ROWS
    return [(start, min(start + step, total)) for start in range(0, total, step)]


def _certified(
    table: VectorTable,
    q: np.ndarray,
    q8: np.ndarray,
    n: int,
    k: int,
    bound: float,
    rows: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`top_n` from ``k`` int8 candidates per block, or None if not certified."""
    from usearch.compiled import MetricKind
    from usearch.index import search

    assert table.quant is not None
    total = len(table.ids) if rows is None else len(rows)
    picked: list[np.ndarray] = []
    ceiling = -np.inf  # the best int8 cosine a row left out can have
    for start, stop in _blocks(total, rows):
        if rows is None:
            block, where = table.quant, None
        else:
            where = rows[start:stop]
            block = np.ascontiguousarray(table.quant[where])
        if len(block) <= k:
            picked.append(np.arange(start, stop) if where is None else where)
            continue
        found = search(block, q8, k, MetricKind.Cos, exact=True)
        keys = np.asarray(found.keys, dtype=np.int64)[:k]
        ceiling = max(ceiling, 1.0 - float(np.asarray(found.distances)[k - 1]))
        picked.append(keys if where is None else where[keys])
    candidates = np.unique(np.concatenate(picked))
    ids, scores = _exact_scores(table, q, candidates)
    order = np.lexsort((ids, -scores))[:n]
    ids, scores = ids[order], scores[order]
    left_out = len(candidates) < total
    if left_out and (len(scores) < n or not float(scores[-1]) > ceiling + bound):
        return None
    return ids, scores


def _exact_scores(
    table: VectorTable, q: np.ndarray, row_numbers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(photo ids, float32 cosines) of these rows (sorted row numbers) of the float16 copy;
    rows that are not finite score NaN (callers drop them)."""
    ids: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for start in range(0, len(row_numbers), GATHER_ROWS):
        part = row_numbers[start : start + GATHER_ROWS]
        v = table.unit[part].astype(np.float32)
        # einsum, not BLAS: a few hundred rows are not worth waking BLAS threads, which on
        # a busy machine costs a scheduler slice (10 ms measured) for a 0.1 ms product.
        with np.errstate(invalid="ignore", over="ignore"):
            dots = np.einsum("ij,j->i", v, q)
            s = dots / np.maximum(np.sqrt(np.einsum("ij,ij->i", v, v)), 1e-12)
        ids.append(table.ids[part])
        scores.append(s.astype(np.float32))
    return np.concatenate(ids), np.concatenate(scores)


def top_n_float16(
    table: VectorTable, q: np.ndarray, n: int, rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_n` by usearch's float16 inner products over every row (the fallback),
    the ``n`` found scored as :func:`top_n` scores them."""
    from usearch.compiled import MetricKind
    from usearch.index import search

    q16 = q.astype(np.float16)
    total = len(table.ids) if rows is None else len(rows)
    picked: list[np.ndarray] = []
    for start, stop in _blocks(total, rows):
        if rows is None:
            block, where = table.unit, None
        else:
            where = rows[start:stop]
            block = np.ascontiguousarray(table.unit[where])
        k = min(n, len(block))
        found = search(block, q16, k, MetricKind.IP, exact=True)
        keys = np.asarray(found.keys, dtype=np.int64)[:k]
        picked.append(keys if where is None else where[keys])
    ids, scores = _exact_scores(table, q, np.unique(np.concatenate(picked)))
    order = np.lexsort((ids, -scores))[:n]
    return ids[order], scores[order]
