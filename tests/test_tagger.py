"""The one tagging path (phototag/tagger.py) and the rescan's completeness mark, with a fake
at the onnxruntime boundary (tests/conftest.py: FakeInferenceSession): fast, no model run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import counting_predicts, sample

from phototag.config import Device
from phototag.errors import UnknownModelError
from phototag.index import Index
from phototag.media.imaging import preprocess
from phototag.models.backbones import Backbone
from phototag.models.catalog import Catalog
from phototag.tagging.classify import Classification, classify
from phototag.tagging.retag import retag
from phototag.tagging.scan import Finished, ScanOptions, ScanReport, scan
from phototag.tagging.tagger import PhotoResult, Tagger, tag_each

NAMES = ["coffee", "chelsea", "astronaut", "rocket", "camera", "coins"]


@pytest.fixture
def photos(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    for name in NAMES:
        make_photo(f"lib/{name}.jpg", name, size=(96, 64))
    return tmp_path / "lib"


def run_scan(lib: Path, idx: Index, **options: object) -> ScanReport:
    events = list(scan([lib], idx, ScanOptions(device=Device.CPU, **options)))  # type: ignore[arg-type]
    last = events[-1]
    assert isinstance(last, Finished)
    return last.report


def stored_tags(idx: Index, path: Path) -> dict[str, list[tuple[str, float]]]:
    view = idx.photo(path)
    assert view is not None
    return {r: [(c.path, round(c.score, 4)) for c in cs] for r, cs in view.tags.items()}


def test_scan_classify_and_retag_give_the_same_tags_through_one_path(
    tmp_path: Path, photos: Path, fake_onnx: type
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        # faces=False: the face step (faces/step.py) is beside the tagging path, not in it
        report = run_scan(photos, idx, threshold=0.0, top_k=3, faces=False)
        assert report.tagged == len(NAMES) and fake_onnx.runs > 0
        scanned = {p: stored_tags(idx, p) for p in sorted(photos.iterdir())}
        classified = {
            r.path: {m: [(c.path, round(c.score, 4)) for c in cs] for m, cs in r.candidates.items()}
            for r in classify(sorted(photos.iterdir()), threshold=0.0, top_k=3)
            if isinstance(r, Classification)
        }
        assert classified == scanned
        # retag from the stored embeddings with the same settings changes nothing...
        scanned_with = [r.name for r in Tagger.resolve().recognizers]
        same = retag(idx, scanned_with, threshold=0.0, top_k=3)
        assert same.changed == 0 and same.photos == len(NAMES)
        # ...and with a higher threshold drops the weak tags, as a scan at it would.
        higher = retag(idx, scanned_with, threshold=0.3, top_k=3)
        for p, tags in scanned.items():
            expected = {r: [(t, s) for t, s in ts if s >= 0.3] for r, ts in tags.items()}
            assert {r: ts for r, ts in stored_tags(idx, p).items()} == expected
        assert higher.changed == sum(
            any(s < 0.3 for ts in tags.values() for _, s in ts) for tags in scanned.values()
        )


def test_a_nightly_rescan_runs_no_model_and_reads_only_the_photo_rows(
    tmp_path: Path, photos: Path, fake_onnx: type
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        run_scan(photos, idx, faces=False)  # the mark of the recognizers alone (no face step)
        digest = Tagger.resolve().digest
        marks = {r[0] for r in idx.conn.execute("SELECT complete_for FROM photos")}
        assert marks == {digest}
        fake_onnx.runs = 0
        again = run_scan(photos, idx, faces=False)
        assert (again.unchanged, again.tagged, fake_onnx.runs) == (len(NAMES), 0, 0)


def test_any_change_to_a_photos_results_clears_its_mark_and_the_rescan_checks_it(
    tmp_path: Path, photos: Path, fake_onnx: type
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        run_scan(photos, idx)
        pid = idx.photo_id(photos / "coffee.jpg")
        assert pid is not None
        # Another writer rewrites one result with the same fingerprint: the mark goes (a
        # trigger), the rescan finds the photo complete by looking, and marks it again.
        row = idx.conn.execute(
            "SELECT recognizer, fingerprint FROM results WHERE photo_id = ? LIMIT 1", (pid,)
        ).fetchone()
        with idx.transaction():
            idx.set_results(pid, row[0], row[1], [])
        assert idx.conn.execute(
            "SELECT complete_for FROM photos WHERE id = ?", (pid,)
        ).fetchone() == (None,)
        fake_onnx.runs = 0
        again = run_scan(photos, idx)
        assert (again.unchanged, again.tagged, fake_onnx.runs) == (len(NAMES), 0, 0)
        assert idx.conn.execute(
            "SELECT complete_for FROM photos WHERE id = ?", (pid,)
        ).fetchone() != (None,)
        # retag at another threshold changes the results' fingerprints: a scan at the old
        # settings must not trust the old mark; it rescores from the stored embeddings
        # (no model run), and marks the photos again.
        retag(idx, [r.name for r in Tagger.resolve().recognizers], threshold=0.5)
        fake_onnx.runs = 0
        redo = run_scan(photos, idx)
        assert (redo.rescored, redo.unchanged, redo.tagged, fake_onnx.runs) == (len(NAMES), 0, 0, 0)
        settled = run_scan(photos, idx)
        assert (settled.unchanged, settled.rescored) == (len(NAMES), 0)
        # An embedding deleted behind the scan's back: that photo is tagged again.
        with idx.transaction():
            idx.conn.execute("DELETE FROM embeddings WHERE photo_id = ?", (pid,))
        last = run_scan(photos, idx)
        assert (last.tagged, last.unchanged) == (1, len(NAMES) - 1)


def test_resolving_a_zero_shot_choice_leaves_the_callers_catalog_alone() -> None:
    catalog = Catalog.discover()
    before = catalog.preferred
    tagger = Tagger.resolve(["imagenet"], catalog=catalog, zero_shot="efficientnet-lite0")
    assert catalog.preferred == before
    assert [r.name for r in tagger.recognizers] == ["imagenet"]
    assert list(tagger.backbones) == ["efficientnet-lite0"]


# -- a server's batch: each photo with its own recognizers and settings (tag_each) ----------


def _inputs(backbones: dict[str, Backbone], names: list[str]) -> list[dict[str, np.ndarray]]:
    """Per sample photo: its preprocessed input for each of ``backbones``."""
    from PIL import Image

    return [
        {n: preprocess(Image.fromarray(sample(name)), b.manifest.preprocess) for n, b in backbones.items()}
        for name in names
    ]  # fmt: skip


def assert_same(got: PhotoResult, want: PhotoResult) -> None:
    """The same tags in the same order, the same embeddings and boxes, up to the float
    rounding of a batch against a photo alone (which can move an embedding's value across a
    float16 step: one unit in its last place, 2**-10 relative, as stored)."""
    assert {r: [c.path for c in cs] for r, cs in got.tags.items()} == {
        r: [c.path for c in cs] for r, cs in want.tags.items()
    }
    for r, cs in want.tags.items():
        np.testing.assert_allclose([c.score for c in got.tags[r]], [c.score for c in cs], atol=1e-5)
    for parts, wanted in ((got.embeddings, want.embeddings), (got.detections, want.detections)):
        assert list(parts) == list(wanted)
        for name, a in wanted.items():
            np.testing.assert_allclose(parts[name], a, rtol=2**-10, atol=1e-5)


def test_a_batch_of_requests_is_tagged_as_each_own_tagger_would_with_each_backbone_run_once(
    fake_onnx: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog.discover()  # a server's: its recognizers are resolved once

    def resolve(names: list[str], **kw: Any) -> Tagger:
        return Tagger.resolve(names, catalog=catalog, reuse=shared, **kw)

    shared = Tagger.resolve(["scene", "object"], catalog=catalog).backbones  # classifier, detector
    a = resolve(["food", "scene"], threshold=0.0, top_k=5)
    b = resolve(["people"], threshold=0.2, top_k=1, embed=["efficientnet-lite0"])
    c = resolve(["scene", "object"], threshold=0.0, top_k=3)
    d = resolve(["food", "scene"], threshold=0.05, top_k=2)  # a's recognizers, stricter
    assert d.recognizers[0] is a.recognizers[0]
    lite = shared["efficientnet-lite0"]
    assert a.backbones["efficientnet-lite0"] is b.backbones["efficientnet-lite0"] is lite
    assert list(a.backbones) == ["efficientnet-lite0"]
    assert list(b.backbones) == ["centernet", "efficientnet-lite0"]  # the embedding asked for
    taggers = [a, b, c, d, b, a]
    inputs = _inputs(shared, ["coffee", "chelsea", "astronaut", "rocket", "camera", "coins"])
    calls = counting_predicts(monkeypatch)
    results = tag_each(list(zip(taggers, inputs, strict=True)))
    # Each backbone once, over the photos that need it (b's for the embedding alone).
    assert sorted(calls) == [("centernet", 3), ("efficientnet-lite0", 6)]
    calls.clear()
    for tagger, x, result in zip(taggers, inputs, results, strict=True):
        (alone,) = tagger.run([x])
        assert list(result.tags) == [r.name for r in tagger.recognizers]  # in the order asked
        assert list(result.embeddings) == list(tagger.backbones)
        assert_same(result, alone)
    assert len(calls) == 9  # the comparison ran the models, photo by photo
    # Settings are per photo: a's top 5 at threshold 0, d's top 2, b's one people tag.
    assert [len(results[i].tags["food"]) for i in (0, 5)] == [5, 5]
    assert len(results[3].tags["food"]) <= 2
    assert all(c.score >= 0.05 for c in results[3].tags["food"])
    assert all(len(results[i].tags["people"]) <= 1 for i in (1, 4))
    assert tag_each([]) == []


def test_a_batch_refuses_two_backbones_of_one_name() -> None:
    a = Tagger.resolve(["scene"], verify=False)
    b = Tagger.resolve(["food"], verify=False)  # its own Backbone: it would run twice
    x = {"efficientnet-lite0": np.zeros((3, 224, 224), np.float32)}
    with pytest.raises(ValueError, match="two backbones named 'efficientnet-lite0'"):
        tag_each([(a, x), (b, x)])


def test_resolve_reuses_backbones_by_name_and_refuses_an_unknown_embedding() -> None:
    first = Tagger.resolve(["scene"], verify=False)
    again = Tagger.resolve(["animal", "object"], reuse=first.backbones, verify=False)
    assert again.backbones["efficientnet-lite0"] is first.backbones["efficientnet-lite0"]
    assert list(again.backbones) == ["efficientnet-lite0", "centernet"]
    with pytest.raises(UnknownModelError, match="no backbone named 'nosuch'"):
        Tagger.resolve(["scene"], embed=["nosuch"], verify=False)


def exact_scores(idx: Index) -> dict[tuple[int, str, str], float]:
    rows = idx.conn.execute("SELECT photo_id, recognizer, path, score FROM tags")
    return {(pid, r, p): s for pid, r, p, s in rows}


def test_retag_after_a_scan_with_the_same_settings_changes_nothing(
    tmp_path: Path, photos: Path, fake_onnx: type
) -> None:
    """A fresh tester's report: scan, then retag with the same settings, said "71 changed"
    (sport 0.2602 -> 0.2601). The fake's logits, like a real graph's, come from the float32
    embedding; the index keeps float16: the recognizers must see the stored form both times."""
    with Index.open(tmp_path / "i.sqlite") as idx:
        run_scan(photos, idx, faces=False)
        scanned = exact_scores(idx)
        assert scanned  # tags to compare
        again = retag(idx)
        assert (again.changed, again.photos) == (0, len(NAMES))
        assert exact_scores(idx) == scanned  # to the last bit, not only to 4 places
        # A rescan's rescoring (another top-k, then back) gives the scan's scores as well.
        run_scan(photos, idx, faces=False, top_k=2)
        back = run_scan(photos, idx, faces=False)
        assert back.rescored == len(NAMES)
        assert exact_scores(idx) == scanned


def test_a_recognizer_sees_the_embedding_as_the_index_stores_it(
    tmp_path: Path, photos: Path, fake_onnx: type
) -> None:
    """Tagger.from_outputs (scan, classify, serve, Ray) and Tagger.rescore (retag) score the
    same float16-rounded embedding with the same head."""
    from PIL import Image

    tagger = Tagger.resolve(threshold=0.0, top_k=1000, verify=False)
    inputs = [
        {
            name: preprocess(Image.fromarray(sample(n)), b.manifest.preprocess)
            for name, b in tagger.backbones.items()
        }
        for n in NAMES
    ]
    fresh = tagger.run(inputs)
    embedders = [n for n, b in tagger.backbones.items() if not b.manifest.detections_output]
    assert embedders
    for name in embedders:
        computed = np.stack([r.embeddings[name] for r in fresh])
        # What Index.set_embedding writes and vectors_of reads back: "<f2" bytes.
        kept = np.frombuffer(np.asarray(computed, "<f2").tobytes(), "<f2").astype(np.float32)
        np.testing.assert_array_equal(kept.reshape(computed.shape), computed)
        rescored = tagger.rescore(name, kept.reshape(computed.shape))
        mine = [r for r in tagger.recognizers if r.backbone == name]
        assert mine
        for r in mine:
            assert rescored[r.name] == [f.tags[r.name] for f in fresh]
