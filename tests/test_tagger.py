"""The one tagging path (phototag/tagging/tagger.py) and the rescan's completeness mark, with a fake
at the onnxruntime boundary (tests/conftest.py: FakeInferenceSession): fast, no model run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phototag.config import Device
from phototag.index import Index
from phototag.models.catalog import Catalog
from phototag.tagging.classify import Classification, classify
from phototag.tagging.retag import retag
from phototag.tagging.scan import Finished, ScanOptions, ScanReport, scan
from phototag.tagging.tagger import Tagger

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
        assert idx.conn.execute("SELECT complete_for FROM photos WHERE id = ?", (pid,)).fetchone() == (None,)
        fake_onnx.runs = 0
        again = run_scan(photos, idx)
        assert (again.unchanged, again.tagged, fake_onnx.runs) == (len(NAMES), 0, 0)
        assert idx.conn.execute("SELECT complete_for FROM photos WHERE id = ?", (pid,)).fetchone() != (None,)
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
