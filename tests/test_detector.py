"""The embedded COCO detector: the ONNX file against TensorFlow's reference outputs, people
counted on photos of pasted people, tags from counts and sizes, nothing on blank or noise, one
decode per photo for both backbones, and the detector's boxes in classify, show and albums."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import sample
from PIL import Image
from typer.testing import CliRunner

from phototag.cli.app import app
from phototag.config import Device
from phototag.index import Index
from phototag.library.query import TagQuery, run_query
from phototag.models.backbones import Backbone, BackboneOutput
from phototag.models.catalog import Catalog
from phototag.models.manifest import load_backbone_manifest, verify_files
from phototag.tagging import loader
from phototag.tagging.scan import Finished, ScanOptions, scan

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((Path(__file__).parent / "data" / "centernet_reference.json").read_text())


@pytest.fixture(scope="module")
def detector() -> Backbone:
    return Backbone(Catalog.discover().backbone("centernet"), device=Device.CPU)


def detect(detector: Backbone, images: list[Image.Image]) -> np.ndarray:
    x = np.stack(
        [
            np.asarray(im.convert("RGB").resize((512, 512), Image.Resampling.BILINEAR), np.float32)
            for im in images
        ]
    )
    out = detector.predict(x)
    assert out.detections is not None
    return out.detections


def test_the_committed_detector_matches_its_manifest() -> None:
    m = load_backbone_manifest(ROOT / "weights" / "centernet")
    verify_files(m)
    assert m.kind == "detector" and m.license == "MIT" and (m.folder / "LICENSE").is_file()
    assert len(m.labels()) == 80 and m.labels()[0] == "person"


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.slow
def test_onnx_reproduces_tensorflows_detections(detector: Backbone, name: str) -> None:
    """Reference: the TF.js graph run in TensorFlow itself (scripts/export_centernet.py)."""
    img = np.asarray(
        Image.fromarray(sample(name)).resize((512, 512), Image.Resampling.BILINEAR), np.float32
    )
    session = detector.load()
    got = session.run(["tower_0/detections"], {"tower_0/images:0": img[None]})[0][0]
    ref = np.array(REFERENCE[name])
    got = got[got[:, 4] >= 0.1][: len(ref)]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got[:, :4], ref[:, :4], atol=0.05)  # box corners, in 512-pixel units
    np.testing.assert_allclose(got[:, 4], ref[:, 4], atol=2e-3)
    assert (got[:, 5] == ref[:, 5]).all()


def pasted_people(n: int, background: str, seed: int) -> Image.Image:
    """Real photo, real person: the astronaut pasted n times onto a real texture."""
    person = Image.fromarray(sample("astronaut")).crop((0, 0, 380, 512))
    bg = Image.fromarray(sample(background)).resize((1200, 800))
    rng = np.random.default_rng(seed)
    for i in range(n):
        h = int(rng.uniform(250, 380)) if n < 5 else 300
        p = person.resize((int(person.width * h / person.height), h))
        x = int(max(0, min(1200 - p.width, (i + 0.5) * 1200 / max(n, 1) - p.width / 2)))
        bg.paste(p, (x, 800 - h - int(rng.uniform(0, 100))))
    return bg


@pytest.mark.parametrize("background", ["grass", "brick", "gravel"])
@pytest.mark.slow
def test_people_are_counted(detector: Backbone, background: str) -> None:
    counts = {n: pasted_people(n, background, n) for n in (0, 1, 2, 5)}
    dets = detect(detector, list(counts.values()))
    people = Catalog.discover().recognizer("people")
    for (n, _), det in zip(counts.items(), dets, strict=True):
        persons = det[(det[:, 5] == 0) & (det[:, 4] >= 0.3)]
        assert len(persons) == n, (background, n)
    tags = [
        [c.tag for c in cands]
        for cands in people.candidates(BackboneOutput(None, np.zeros((4, 0)), dets))
    ]
    assert tags == [[], ["person"], ["couple"], ["group"]]


def box(
    x1: float, y1: float, x2: float, y2: float, score: float = 0.9, cls: int = 0
) -> list[float]:
    return [x1, y1, x2, y2, score, cls]


def test_people_tags_follow_from_counts_and_sizes() -> None:
    people = Catalog.discover().recognizer("people")
    photos = [
        [box(0.1, 0.1, 0.7, 0.9)],  # one person, 48 % of the frame
        [box(0.1, 0.1, 0.3, 0.4)],  # one person, 6 %
        [box(0, 0, 0.2, 0.5), box(0.5, 0, 0.7, 0.5)],
        [box(0, 0, 0.1, 0.1)] * 4,
        [box(0, 0, 0.1, 0.1)] * 12,
        [box(0, 0, 0.5, 0.5, cls=16)],  # a dog: no people tag
        [box(0, 0, 0.9, 0.9, score=0.2)],  # a person below min_score: nothing
    ]
    k = max(len(p) for p in photos)
    dets = np.zeros((len(photos), k, 6), np.float32)
    for i, p in enumerate(photos):
        dets[i, : len(p)] = p
    result = people.candidates(BackboneOutput(None, np.zeros((len(photos), 0)), dets))
    assert [[(c.path, round(c.score, 2)) for c in r] for r in result] == [
        [("people/portrait", 0.9)], [("people/person", 0.9)], [("people/couple", 0.9)],
        [("people/group", 0.9)], [("people/crowd", 0.9)], [], [],
    ]  # fmt: skip


@pytest.mark.slow
def test_nothing_is_detected_on_blank_or_noise(detector: Backbone) -> None:
    rng = np.random.default_rng(0)
    images = [
        Image.new("RGB", (640, 480), c) for c in ((0, 0, 0), (255, 255, 255), (128, 128, 128))
    ]
    images.append(Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)))
    for det in detect(detector, images):
        assert (det[:, 4] < 0.3).all()


@pytest.mark.slow
def test_a_scan_with_both_backbones_decodes_each_photo_once(
    tmp_path: Path, make_photo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_photo("lib/coffee.jpg", "coffee")
    pasted_people(2, "grass", 2).save(tmp_path / "lib" / "two.jpg", quality=90)
    pasted_people(1, "brick", 1).save(tmp_path / "lib" / "one.jpg", quality=90)
    decodes: list[int] = []
    real = loader.decode
    monkeypatch.setattr(loader, "decode", lambda *a, **k: decodes.append(1) or real(*a, **k))
    with Index.open(tmp_path / "i.sqlite") as idx:
        events = list(
            scan(
                [tmp_path / "lib"],
                idx,
                ScanOptions(device=Device.CPU, recognizers=["imagenet", "people", "object"]),
            )
        )
        assert isinstance(events[-1], Finished) and events[-1].report.tagged == 3
        assert len(decodes) == 3  # one decode per photo feeds both backbones
        view = idx.photo(tmp_path / "lib" / "two.jpg")
        assert view is not None and [c.tag for c in view.tags["people"]] == ["couple"]
        assert "person" in [c.tag for c in view.tags["object"]]
        assert sum(1 for _, label, s, _ in view.detections if label == "person" and s >= 0.3) == 2
        assert {"cup"} <= {c.tag for c in idx.photo(tmp_path / "lib" / "coffee.jpg").tags["object"]}  # type: ignore[union-attr]
        two = run_query(idx, TagQuery(tags=("person",), min_count=2))
        assert [m.path.name for m in two] == ["two.jpg"]
        assert sorted(
            m.path.name for m in run_query(idx, TagQuery(tags=("person",), min_count=1))
        ) == ["one.jpg", "two.jpg"]
        again = list(
            scan(
                [tmp_path / "lib"],
                idx,
                ScanOptions(device=Device.CPU, recognizers=["imagenet", "people", "object"]),
            )
        )
        assert again[-1].report.unchanged == 3 and len(decodes) == 3  # type: ignore[union-attr]


@pytest.mark.slow
def test_classify_json_and_show_include_the_boxes(tmp_path: Path) -> None:
    pasted_people(2, "gravel", 3).save(tmp_path / "two.jpg", quality=90)
    runner = CliRunner()
    r = runner.invoke(
        app, ["classify", str(tmp_path / "two.jpg"), "-m", "people", "--json", "--device", "cpu"]
    )
    doc = json.loads(r.stdout)
    assert doc["candidates"][0]["tag"] == "couple"
    persons = [d for d in doc["detections"] if d["label"] == "person" and d["score"] >= 0.3]
    assert len(persons) == 2 and all(0 <= v <= 1.05 for d in persons for v in d["box"])
    index = ["--index", str(tmp_path / "i.sqlite")]
    runner.invoke(
        app,
        ["scan", str(tmp_path), "-m", "people", "-m", "object", "--device", "cpu", "-q", *index],
    )
    r = runner.invoke(app, ["show", str(tmp_path / "two.jpg"), *index])
    assert "detected: 2 x person" in r.stdout
    r = runner.invoke(app, ["album", "--tag", "person", "--min-count", "2", "--json", *index])
    assert len(r.stdout.splitlines()) == 1


@pytest.mark.slow
def test_retag_rederives_people_tags_from_stored_boxes_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phototag.media import imaging
    from phototag.tagging.retag import retag

    lib = tmp_path / "lib"
    lib.mkdir()
    Image.fromarray(sample("astronaut")).save(lib / "portrait.jpg", quality=90)
    pasted_people(0, "brick", 0).save(lib / "none.jpg", quality=90)
    with Index.open(tmp_path / "i.sqlite") as idx:
        list(scan([lib], idx, ScanOptions(device=Device.CPU, recognizers=["people"])))
        first = idx.photo(lib / "portrait.jpg")
        assert first is not None and [c.tag for c in first.tags["people"]] == ["portrait"]
        decodes: list[int] = []
        for module in (imaging, loader):
            real = module.decode
            monkeypatch.setattr(
                module, "decode", lambda *a, _r=real, **k: decodes.append(1) or _r(*a, **k)
            )
        assert retag(idx, ["people"]).changed == 0  # the same boxes give the same tags
        # A stricter notion of a portrait, as a user's own recognizer: 90 % of the frame.
        weights = tmp_path / "w" / "recognizers"
        weights.mkdir(parents=True)
        (weights / "people.toml").write_text(
            (ROOT / "weights" / "recognizers" / "people.toml")
            .read_text()
            .replace("portrait_area = 0.2", "portrait_area = 0.9")
        )
        monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tmp_path / "w"))
        report = retag(idx, ["people"])
        assert decodes == [] and report.changed == 1 and report.photos == 2
        view = idx.photo(lib / "portrait.jpg")
        assert view is not None and [c.tag for c in view.tags["people"]] == ["person"]
        assert idx.photo(lib / "none.jpg").tags["people"] == []  # type: ignore[union-attr]
