"""Embeddings as a memory-mapped matrix beside the index, for exact search at scale.

SQLite stays the one source of truth. Reading a million 2.5 KB blobs out of it takes
seconds, and numpy has no fast float16 arithmetic, so searches work from a derived copy:
per backbone, the L2-normalised float16 embeddings in one ``.npy`` file (memory-mapped,
so the page cache holds it, not the process) and the photo ids in another, sorted.

The copy is valid while the backbone's counter in ``embedding_versions`` (bumped by
triggers on every insert, update and delete of an embedding, see schema.py) equals the
counter it was built at; otherwise the next search rebuilds it, in one read transaction
(a consistent snapshot under WAL), written to temporary files, fsynced and renamed, so a
kill leaves either the old copy or the new one. When the folder cannot be written (a
read-only index), :func:`vector_table` returns None and search reads SQLite in chunks.
An opened copy is kept for the life of the process (:data:`_OPENED`), mapped with its
page tables filled at once, and reused while its ids file is the one on disk, so a
search neither maps the copy again nor faults its pages in one by one.

Scoring uses usearch's exact search (SIMD float16 inner products over the whole matrix,
the same ranking as numpy in float32 up to float16 rounding), the ``n`` found then
scored in float32: about 0.10 s per million 1280-d photos on 2 cores, against about 13 s
for numpy's float16 -> float32 conversion alone (bench/million.py, docs/performance.md).
An int8 copy scanned for candidates and re-ranked exactly was measured and not kept: on
this machine's CPU (AVX-512, fast float16 conversion) usearch's int8 cosine scan took
0.09-0.11 s per million against 0.10-0.14 s for float16, the whole int8 search 0.105 s
against 0.102 s (0.207 against 0.220 s under load), for 1.3 GiB more on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .store import Index

#: Rows gathered at a time when a search is limited to some photos (a folder).
GATHER_ROWS = 65536


@dataclass(frozen=True, slots=True)
class VectorTable:
    """One backbone's embeddings: ``unit[i]`` is photo ``ids[i]``'s, L2-normalised.

    ids: (N,) int64, ascending. unit: (N, dim) float16, read-only (memory-mapped).
    """

    backbone: str
    ids: np.ndarray
    unit: np.ndarray
    version: int
    #: (st_dev, st_ino) of the ids file it was read from; the mapping keeps that inode
    #: alive, so another file at the same path (a rebuild) never has the same pair.
    file_id: tuple[int, int] = (0, 0)

    def rows_of(self, photo_ids: np.ndarray) -> np.ndarray:
        """Row numbers of those ``photo_ids`` (sorted int64) that have an embedding."""
        pos = np.searchsorted(self.ids, photo_ids)
        inside = pos < len(self.ids)
        pos, wanted = pos[inside], photo_ids[inside]
        out: np.ndarray = pos[self.ids[pos] == wanted]
        return out


#: Opened copies, by (folder, backbone): kept while the process runs, at most
#: :data:`OPENED_LIMIT` of them (the oldest goes first).
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
    empty) or the copy cannot be written next to the index.
    """
    where = folder(index.path)
    version = embedding_version(index, backbone)
    stem = f"{_stem(backbone)}.{version}"
    key = (os.fspath(where), backbone)
    cached = _OPENED.pop(key, None)
    if (
        cached is not None
        and cached.version == version
        and cached.file_id == _file_id(where / f"{stem}.ids.npy")
    ):
        table: VectorTable | None = cached
    else:
        table = _load(where, stem, backbone, version)
        if table is None:
            try:
                table = _build(index, backbone, where)
            except OSError:
                return None
    if table is not None:
        while len(_OPENED) >= OPENED_LIMIT:  # dicts keep insertion order: the oldest goes
            _OPENED.pop(next(iter(_OPENED)))
        _OPENED[key] = table
    return table


def _file_id(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


def _load(where: Path, stem: str, backbone: str, version: int) -> VectorTable | None:
    ids_file, vec_file = where / f"{stem}.ids.npy", where / f"{stem}.f16.npy"
    try:
        file_id = _file_id(ids_file)
        ids = np.load(ids_file, mmap_mode="r")
        unit = _map_populated(vec_file)
    except (OSError, ValueError):
        return None
    if ids.ndim != 1 or unit.ndim != 2 or len(ids) != len(unit) or unit.dtype != np.float16:
        return None
    return VectorTable(backbone, np.asarray(ids, dtype=np.int64), unit, version, file_id)


def _map_populated(path: Path) -> np.ndarray:
    """The ``.npy`` array at ``path``, memory-mapped read-only with its page tables filled
    at once (Linux's ``MAP_POPULATE``) where the system has it.

    Every search reads every row: faulting them in page by page made the first search of
    a process 0.1 to 0.3 s slower per 200,000 rows of 1280 values than the next
    (bench/million.py); populated, the mapping costs a third of that.
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
            fd, tmp_ids = tempfile.mkstemp(dir=where, prefix=".", suffix=".ids.npy")
            with os.fdopen(fd, "wb") as f:
                np.save(f, ids)
                f.flush()
                os.fsync(f.fileno())
            # The ids file is renamed last: its presence says the pair is complete.
            os.replace(tmp_vec, where / f"{stem}.f16.npy")
            os.replace(tmp_ids, where / f"{stem}.ids.npy")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_vec)
            raise
    finally:
        if own:
            conn.execute("COMMIT")
    _drop_old(where, _stem(backbone), stem)
    return _load(where, stem, backbone, version)


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
    """The ``n`` best (photo ids, cosine scores) for ``query`` (dim,), best first.

    ``rows``: search only these rows of the table (a folder's photos), gathered
    :data:`GATHER_ROWS` at a time so memory stays bounded by that, not by the folder.
    usearch's float16 inner products pick ``2n + 16`` rows, which are then ranked by their
    float32 cosines with the query (the scores returned; ties by id): float16's rounding
    (about 1e-3 on a cosine) can only swap photos whose scores are closer than that, and
    the extra rows let the float32 order decide at the ``n``-th place.
    """
    from usearch.compiled import MetricKind
    from usearch.index import search

    q = np.asarray(query, dtype=np.float32).reshape(-1)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    q16 = q.astype(np.float16)
    total = len(table.ids) if rows is None else len(rows)
    if total == 0 or n <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    picked: list[np.ndarray] = []
    step = total if rows is None else GATHER_ROWS
    for start in range(0, total, step):
        if rows is None:
            block, where = table.unit, None
        else:
            where = rows[start : start + step]
            block = np.ascontiguousarray(table.unit[where])
        k = min(2 * n + 16, len(block))
        found = search(block, q16, k, MetricKind.IP, exact=True)
        keys = np.asarray(found.keys, dtype=np.int64)[:k]
        picked.append(keys if where is None else where[keys])
    found_rows = np.unique(np.concatenate(picked))
    v = table.unit[found_rows].astype(np.float32)
    # einsum, not BLAS: a few rows are not worth waking BLAS threads, which on a busy
    # machine costs a scheduler slice (10 ms measured) for a 0.1 ms product.
    with np.errstate(invalid="ignore", over="ignore"):
        dots = np.einsum("ij,j->i", v, q)
        scores = (dots / np.maximum(np.sqrt(np.einsum("ij,ij->i", v, v)), 1e-12)).astype(np.float32)
    ids = table.ids[found_rows]
    order = np.lexsort((ids, -scores))[:n]
    return ids[order], scores[order]
