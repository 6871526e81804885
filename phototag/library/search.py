"""Similar photos and near-duplicates, from the embeddings and tags in the index.

Embedding search is exact: cosine similarity of the query against every stored float16
embedding, from a memory-mapped copy of them (phototag/index/vectors.py; the page cache
holds it, not the process), with folder filters applied in SQL before ranking
(bench/million.py measures 1,000,000 photos).
Near-duplicate detection cannot compare all pairs at that size, so it buckets embeddings
by random-hyperplane hashes (locality-sensitive hashing) and compares only within buckets.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import SimilarBy
from ..errors import ConfigError
from ..index.paths import canonical_path
from ..index.store import Index
from ..index.vectors import top_n, vector_table

if TYPE_CHECKING:
    from ..models.catalog import Catalog

__all__ = [
    "Similar",
    "SimilarBy",
    "by_embedding",
    "by_tags",
    "by_text",
    "duplicate_groups",
    "similar_to",
    "tag_similarity",
]


@dataclass(frozen=True, slots=True)
class Similar:
    path: Path
    score: float

    def as_json(self) -> dict[str, object]:
        return {"path": os.fsdecode(self.path), "score": round(self.score, 4)}


def normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    out: np.ndarray = v / np.maximum(n, 1e-12)
    return out


def by_embedding(
    index: Index,
    query: np.ndarray,
    backbone: str,
    *,
    n: int = 20,
    min_score: float = -1.0,
    under: Sequence[Path] = (),
    exclude: int | None = None,
    chunk: int = 8192,
) -> list[Similar]:
    """The ``n`` indexed photos whose embeddings are most cosine-similar to ``query`` (dim,).

    Exact search. ``under`` limits it to photos at or under those folders *before* ranking
    (the folder is a range of the path index, see :func:`~phototag.index.store.under_clause`),
    so a small folder in a large library gets its ``n`` best, never fewer because the
    library's best lay elsewhere. ``exclude``: a photo id left out (the query photo itself).
    Works from the memory-mapped copy of the embeddings (:mod:`phototag.index.vectors`),
    or, when it cannot be made, from SQLite in chunks of ``chunk`` rows.
    Raises :class:`ConfigError` when ``query``'s size is not the backbone's.
    """
    want = n + (1 if exclude is not None else 0)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    table = vector_table(index, backbone)
    if table is not None:
        if table.unit.shape[1] != q.size:
            raise ConfigError(
                f"a {q.size}-value query cannot be compared with {backbone}'s "
                f"{table.unit.shape[1]}-value embeddings"
            )
        rows = table.rows_of(index.ids_under(under)) if under else None
        ids, scores = top_n(table, q, want, rows)
    else:
        ids, scores = _top_n_chunks(index, q, backbone, want, under, chunk)
    paths = index.paths_of(ids.tolist())
    out = []
    for pid, score in zip(ids.tolist(), scores.tolist(), strict=True):
        if pid == exclude or score < min_score or not np.isfinite(score) or pid not in paths:
            continue
        out.append(Similar(paths[pid], float(score)))
        if len(out) == n:
            break
    return out


def _top_n_chunks(
    index: Index, q: np.ndarray, backbone: str, n: int, under: Sequence[Path], chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`by_embedding`'s ranking read from SQLite, with a running top ``n``."""
    q = normalize(q)
    best_ids = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float32)
    for ids, vecs in index.embedding_chunks(backbone, chunk, under=under):
        if vecs.shape[1] != q.size:
            raise ConfigError(
                f"a {q.size}-value query cannot be compared with {backbone}'s "
                f"{vecs.shape[1]}-value embeddings"
            )
        v = vecs.astype(np.float32)
        scores = (v @ q) / np.maximum(np.linalg.norm(v, axis=1), 1e-12)
        ids_all = np.concatenate([best_ids, ids])
        sc_all = np.concatenate([best_scores, scores])
        if len(sc_all) > n:
            top = np.argpartition(-sc_all, n - 1)[:n]
            ids_all, sc_all = ids_all[top], sc_all[top]
        best_ids, best_scores = ids_all, sc_all
    order = np.lexsort((best_ids, -best_scores))
    return best_ids[order], best_scores[order]


def tag_similarity(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Weighted Jaccard overlap of two photos' tags: sum of min scores / sum of max scores.

    1.0 for identical tags with identical scores, 0.0 for no tag in common; a tag both
    photos carry counts by how strongly both carry it.
    """
    keys = set(a) | set(b)
    den = sum(max(a.get(k, 0.0), b.get(k, 0.0)) for k in keys)
    if den <= 0:
        return 0.0
    return sum(min(a.get(k, 0.0), b.get(k, 0.0)) for k in keys) / den


def by_tags(
    index: Index,
    query_tags: Mapping[str, float],
    *,
    n: int = 20,
    min_score: float = 0.0,
    under: Sequence[Path] = (),
    model: str | None = None,
    exclude: int | None = None,
) -> list[Similar]:
    """Photos ranked by :func:`tag_similarity` to ``query_tags`` (tag path -> score)."""
    from .corrections import USER_RECOGNIZER, apply

    # Only photos sharing a tag with the query can score above 0: select those in SQL
    # (with the folder filter) before ranking, instead of reading every photo. The user's
    # corrections apply above storage: photos whose corrections add one of the query's tags
    # are candidates too, and every candidate's tags are read corrected.
    every = index.stored_corrections()
    candidates = index.photo_ids_tagged(list(query_tags), model)
    if model in (None, USER_RECOGNIZER):
        for content, cs in every.items():
            if any(c.action == "add" and c.path in query_tags for c in cs):
                candidates.update(index.ids_with_hash(content))
    candidates.discard(exclude if exclude is not None else -1)
    scored = []
    for photo in index.photos_with_tags(model, under=under, ids=candidates):
        fixes = every.get(photo.hash)
        if fixes:
            photo = replace(photo, tags=apply(photo.tags, fixes, model))
        s = tag_similarity(query_tags, {p: sc for _, p, sc in photo.tags})
        if s > 0 and s >= min_score:
            scored.append(Similar(photo.path, s))
    scored.sort(key=lambda x: (-x.score, os.fsencode(x.path)))
    return scored[:n]


def duplicate_groups(
    index: Index,
    backbone: str,
    *,
    threshold: float = 0.90,
    bits: int = 12,
    tables: int = 16,
    seed: int = 0,
) -> list[list[tuple[Path, float]]]:
    """Groups of near-identical photos: same content hash, or embeddings at least ``threshold``
    cosine-similar. Each group lists (path, similarity to the group's first photo).

    Candidate pairs come from ``tables`` random-hyperplane hashes of ``bits`` bits each;
    two embeddings with cosine similarity c land in the same bucket of one table with
    probability (1 - arccos(c)/pi)^bits. With 16 tables of 12 bits a pair at c = 0.90 is
    found with probability 0.93, at c = 0.95 with 0.995 (and groups are transitive: a
    third copy found with either member joins); an unrelated pair (c ~ 0.3) is even looked
    at with probability 0.03. Measured on real photos: a copy at half size re-saved at JPEG
    quality 70 scored 0.93 and 0.99, a 3-degree rotation 0.99, a crop 0.98; distinct photos
    at most 0.49 (when the threshold was chosen; tests/test_search.py plants such copies).
    Memory: one pass computes the hashes chunk by chunk (8 integers per photo); only the
    members of shared buckets are then read back and compared.
    """
    rng = np.random.default_rng(seed)
    planes: np.ndarray | None = None
    weights = (1 << np.arange(bits)).astype(np.int64)
    total = index.count_embeddings(backbone)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for group in index.hash_groups():
        for other in group[1:]:
            union(group[0], other)
    with tempfile.TemporaryFile() as spill:
        # Unit vectors go to a disk-backed float16 array: resident memory stays bounded by
        # the page cache, not by the library, while pair checks can still index any photo.
        unit_all: np.ndarray | None = None
        ids = np.empty(total, dtype=np.int64)
        keys = np.empty((total, tables), dtype=np.int64)
        pos = 0
        for chunk_ids, vecs in index.embedding_chunks(backbone):
            if planes is None:
                planes = rng.standard_normal((tables, vecs.shape[1], bits)).astype(np.float32)
                spill.truncate(total * vecs.shape[1] * 2)
                unit_all = np.memmap(
                    spill, dtype=np.float16, mode="r+", shape=(total, vecs.shape[1])
                )
            assert unit_all is not None
            unit = normalize(vecs.astype(np.float32))
            n = len(chunk_ids)
            ids[pos : pos + n] = chunk_ids
            unit_all[pos : pos + n] = unit
            for t in range(tables):
                keys[pos : pos + n, t] = ((unit @ planes[t]) > 0).astype(np.int64) @ weights
            pos += n
        if unit_all is not None and pos > 1:
            ids, keys = ids[:pos], keys[:pos]
            for t in range(tables):
                order = np.argsort(keys[:, t], kind="stable")
                sorted_keys = keys[order, t]
                starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
                sizes = np.diff(np.r_[starts, len(order)])
                # Buckets of two (most of them): all pairs checked in one vectorized step.
                pairs = starts[sizes == 2]
                if len(pairs):
                    a_rows, b_rows = order[pairs], order[pairs + 1]
                    sims = np.einsum(
                        "ij,ij->i",
                        unit_all[a_rows].astype(np.float32),
                        unit_all[b_rows].astype(np.float32),
                    )
                    for a_row, b_row in zip(
                        a_rows[sims >= threshold], b_rows[sims >= threshold], strict=True
                    ):
                        union(int(ids[a_row]), int(ids[b_row]))
                for s0, k in zip(starts[sizes > 2], sizes[sizes > 2], strict=True):
                    rows = np.sort(order[s0 : s0 + k])
                    block = unit_all[rows].astype(np.float32)
                    sims = block @ block.T
                    for a, b in zip(*np.nonzero(np.triu(sims >= threshold, k=1)), strict=True):
                        union(int(ids[rows[a]]), int(ids[rows[b]]))
        del unit_all
    groups: dict[int, list[int]] = {}
    for i in list(parent):
        groups.setdefault(find(i), []).append(i)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort()
        paths = index.paths_of(members)
        vecs = index.vectors_of(members, backbone)
        sims = (
            normalize(vecs) @ normalize(vecs[0])
            if len(vecs) == len(members)
            else np.ones(len(members))
        )
        out.append(
            [(paths[m], float(sim)) for m, sim in zip(members, sims, strict=True) if m in paths]
        )
    out.sort(key=lambda g: os.fsencode(g[0][0]))
    return out


def query_of(
    index: Index, photo: Path, model: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, float], int | None]:
    """A photo's embeddings (per backbone) and tags (path -> score): from the index if it is
    there, else by running the models on it now. Also its photo id, if indexed."""
    photo = canonical_path(photo)
    pid = index.photo_id(photo)
    if pid is not None:
        view = index.photo(photo)
        assert view is not None
        embeddings = {
            b: e for b in view.embeddings if (e := index.embedding(photo, b)) is not None and e.size
        }
        from .corrections import corrected_tags_of

        return embeddings, corrected_tags_of(index, pid, model), pid
    from ..errors import ImageError
    from ..tagging.classify import Classification, classify

    (result,) = list(classify([photo], recognizers=[model] if model else None))
    if not isinstance(result, Classification):
        raise ImageError(f"{photo}: {result.reason}")
    tags = {c.path: c.score for cands in result.candidates.values() for c in cands}
    return {b: e for b, e in result.embeddings.items() if e.size}, tags, None


def similar_to(
    index: Index,
    photo: Path,
    by: SimilarBy = SimilarBy.EMBEDDING,
    *,
    n: int = 20,
    min_score: float = 0.0,
    under: Sequence[Path] = (),
    model: str | None = None,
    backbone: str | None = None,
) -> list[Similar]:
    """Indexed photos most similar to ``photo`` (which need not be indexed), best first.

    By embedding: ``backbone``'s, else the one :func:`default_backbone` picks.
    """

    embeddings, tags, pid = query_of(index, photo, model)
    under = [canonical_path(u) for u in under]
    if by is SimilarBy.TAGS:
        return by_tags(index, tags, n=n, min_score=min_score, under=under, model=model, exclude=pid)
    if not embeddings:
        raise ConfigError(f"{photo} has no embedding in the index: scan it again")
    if backbone is not None and backbone not in embeddings:
        raise ConfigError(f"{photo} has no {backbone} embedding in the index")
    chosen = backbone or default_backbone(embeddings)
    return by_embedding(
        index, embeddings[chosen], chosen, n=n, min_score=min_score, under=under, exclude=pid
    )


def default_backbone(names: Iterable[str], catalog: Catalog | None = None) -> str:
    """Whose embeddings similarity and duplicates use by default: a classifier's (the
    duplicate threshold was measured on EfficientNet-Lite0's), else the first by name."""
    from ..models.catalog import backbone_kinds

    ordered = sorted(names)
    if not ordered:
        raise ValueError("no backbones to choose from")
    if len(ordered) == 1:
        return ordered[0]
    kinds = catalog.kinds if catalog is not None else backbone_kinds()
    return next((n for n in ordered if kinds.get(n) == "classifier"), ordered[0])


def by_text(
    index: Index,
    text: str,
    *,
    backbone: str | None = None,
    catalog: Catalog | None = None,
    n: int = 20,
    min_score: float = -1.0,
    under: Sequence[Path] = (),
) -> list[Similar]:
    """The indexed photos whose zero-shot image embeddings best fit ``text`` (cosine).

    ``backbone``: which zero-shot backbone's embeddings; by default the one the index holds
    the most embeddings of.
    """
    from ..models.catalog import Catalog

    if not text.strip():
        raise ConfigError("nothing to search for: the text is empty")
    catalog = catalog or Catalog.discover()
    zero_shot = [b for b in sorted(catalog.backbones) if catalog.kinds.get(b) == "zero-shot"]
    if backbone is not None and backbone not in zero_shot:
        raise ConfigError(
            f"{backbone!r} is not an installed zero-shot backbone; installed: "
            f"{', '.join(zero_shot) or 'none'}"
        )
    if not zero_shot:
        raise ConfigError(
            "text search needs a zero-shot (CLIP-style) backbone, and none is installed: "
            "'phototag models list' shows how to get one"
        )
    counts = {b: index.count_embeddings(b) for b in zero_shot}
    chosen = backbone or max(zero_shot, key=lambda b: counts[b])
    if counts[chosen] == 0:
        raise ConfigError(
            f"the index holds no {chosen} embeddings, so there is nothing to search yet: "
            f"run 'phototag scan FOLDER' with {chosen} installed (it runs for the scene, "
            "food, flower and mushroom recognizers), then search again"
        )
    query = catalog.text_encoder(chosen).encode([text])[0]
    under = [canonical_path(u) for u in under]
    return by_embedding(index, query, chosen, n=n, min_score=min_score, under=under)
