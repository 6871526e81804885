"""Similar photos (by embedding and by tags) and near-duplicate groups."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phototag.config import Device, SimilarBy
from phototag.index import Index
from phototag.index.store import PhotoRecord
from phototag.library.search import (
    by_embedding,
    by_tags,
    duplicate_groups,
    similar_to,
    tag_similarity,
)
from phototag.models.recognizers import Candidate
from phototag.tagging.scan import ScanOptions, scan

DISTINCT = ["coffee", "chelsea", "astronaut", "rocket", "camera", "brick", "grass", "coins", "moon", "page",
            "hubble_deep_field", "immunohistochemistry", "retina", "logo", "horse", "clock"]  # fmt: skip


@pytest.fixture
def photos(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    lib = tmp_path / "lib"
    for name in DISTINCT:
        make_photo(f"lib/{name}.jpg", name, quality=90)
    return lib


def scanned(tmp_path: Path, lib: Path) -> Index:
    idx = Index.open(tmp_path / "i.sqlite")
    list(scan([lib], idx, ScanOptions(device=Device.CPU)))
    return idx


@pytest.mark.slow
def test_a_resized_recompressed_copy_ranks_first_and_an_unrelated_photo_last(
    tmp_path: Path, photos: Path, make_photo: Callable[..., Path]
) -> None:
    big = make_photo(
        "query/coffee big.jpg", "coffee", size=(1200, 800), quality=92
    )  # not in the index
    Image.open(big).resize((600, 400)).save(photos / "coffee copy.jpg", quality=70)
    (photos / "coffee.jpg").unlink()
    with scanned(tmp_path, photos) as idx:
        found = similar_to(idx, big, SimilarBy.EMBEDDING, n=len(DISTINCT) + 1)
        assert found[0].path.name == "coffee copy.jpg" and found[0].score > 0.9
        assert found[-1].score < 0.3
        assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
        # Querying with an indexed photo leaves the photo itself out.
        again = similar_to(idx, photos / "coffee copy.jpg", n=3)
        assert "coffee copy.jpg" not in [s.path.name for s in again]


def test_by_tags_ranks_as_computed_by_hand(tmp_path: Path) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        stored = {
            "a.jpg": {"scene/nature/seashore": 0.8, "scene/nature": 0.9},
            "b.jpg": {"scene/nature/seashore": 0.4, "food/drink": 0.5},
            "c.jpg": {"food/drink": 0.9},
        }
        with idx.transaction():
            for name, tags in stored.items():
                pid = idx.upsert_photo(PhotoRecord(Path("/p") / name, 1, 1, name, 1, 1, None))
                idx.set_results(
                    pid, "x", "fp", [Candidate(p.rsplit("/", 1)[-1], s, p) for p, s in tags.items()]
                )
        query = {"scene/nature/seashore": 0.6, "scene/nature": 0.7}
        # a: min 0.6+0.7=1.3 / max 0.8+0.9=1.7 = 0.7647; b: min 0.4 / max 0.6+0.7+0.5 = 0.2222; c: 0
        found = by_tags(idx, query)
        assert [(s.path.name, round(s.score, 4)) for s in found] == [
            ("a.jpg", 0.7647),
            ("b.jpg", 0.2222),
        ]
        assert tag_similarity(query, query) == 1.0 and tag_similarity(query, {}) == 0.0


@pytest.mark.slow
def test_duplicates_finds_planted_copies_and_no_false_groups(tmp_path: Path, photos: Path) -> None:
    with scanned(tmp_path, photos) as idx:
        assert duplicate_groups(idx, "efficientnet-lite0") == []  # 16 distinct photos
    shutil.copy(photos / "rocket.jpg", photos / "rocket copy.jpg")  # exact copy
    cat = Image.open(photos / "chelsea.jpg")
    cat.resize((900, 600)).save(photos / "chelsea big.jpg", quality=92)  # bigger re-save
    cat.crop((10, 10, cat.width - 10, cat.height - 10)).save(
        photos / "chelsea crop.jpg", quality=80
    )
    (tmp_path / "i.sqlite").unlink()
    with scanned(tmp_path, photos) as idx:
        groups = duplicate_groups(idx, "efficientnet-lite0")
        got = sorted(sorted(p.name for p, _ in g) for g in groups)
        assert got == [
            ["chelsea big.jpg", "chelsea crop.jpg", "chelsea.jpg"],
            ["rocket copy.jpg", "rocket.jpg"],
        ]


def test_embedding_search_is_exact_and_chunked(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((300, 16)).astype(np.float32)
    with Index.open(tmp_path / "i.sqlite") as idx:
        with idx.transaction():
            for i, v in enumerate(vecs):
                folder = "a" if i < 100 else "b"
                pid = idx.upsert_photo(
                    PhotoRecord(Path(f"/p/{folder}/{i:03d}.jpg"), 1, 1, str(i), 1, 1, None)
                )
                idx.set_embedding(pid, "b", "fp", v)
        q = rng.standard_normal(16)
        found = by_embedding(idx, q, "b", n=10, chunk=7)  # many small chunks
        v16 = vecs.astype(np.float16).astype(np.float32)
        cos = v16 @ q / np.linalg.norm(v16, axis=1) / np.linalg.norm(q)
        expected = [f"{i:03d}.jpg" for i in np.argsort(-cos)[:10]]
        assert [s.path.name for s in found] == expected
        under = by_embedding(idx, q, "b", n=5, under=[Path("/p/a")])
        expected_a = [f"{i:03d}.jpg" for i in np.argsort(-cos) if i < 100][:5]
        assert [s.path.name for s in under] == expected_a
