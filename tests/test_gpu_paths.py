"""The GPU code paths, exercised on the CPU where they can be: provider settings, I/O binding,
the float16 variant and its accuracy check, fixed batch shapes. (No GPU was available to this
work: the CUDA and TensorRT providers themselves are not run here; docs/performance.md.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import sample
from PIL import Image

from phototag.config import Device
from phototag.media.imaging import preprocess
from phototag.models import session as session_module
from phototag.models.backbones import Backbone
from phototag.models.catalog import Catalog
from phototag.models.fp16 import TOLERANCE, compare, fp16_variant
from phototag.models.session import CPU, CUDA, TENSORRT, open_session, provider_settings


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PHOTOTAG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def manifest():  # type: ignore[no-untyped-def]
    return Catalog.discover().backbone("efficientnet-lite0")


def photos(manifest, names=("coffee", "chelsea", "astronaut")) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.stack([preprocess(Image.fromarray(sample(n)), manifest.preprocess) for n in names])


def test_provider_settings(cache: Path) -> None:
    cuda = provider_settings(CUDA)
    assert (
        cuda["cudnn_conv_algo_search"] == "EXHAUSTIVE" and cuda["do_copy_in_default_stream"] == "1"
    )
    trt = provider_settings(TENSORRT)
    assert trt["trt_fp16_enable"] == "True" and trt["trt_engine_cache_enable"] == "True"
    assert Path(trt["trt_engine_cache_path"]).is_relative_to(cache)  # not inside site-packages
    assert provider_settings(CPU) == {}


@pytest.mark.slow
def test_io_binding_gives_the_same_outputs(manifest) -> None:  # type: ignore[no-untyped-def]
    s = open_session(manifest.model_path, Device.CPU)
    x = photos(manifest)
    plain = s.run(["embedding", "logits"], {"image": x})
    bound = s.run_bound(["embedding", "logits"], {"image": x})
    for a, b in zip(plain, bound, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_float16_variant_is_made_once_checked_and_cached(manifest, cache: Path) -> None:  # type: ignore[no-untyped-def]
    path = fp16_variant(manifest)
    assert (
        path.is_relative_to(cache)
        and path.stat().st_size < manifest.model_path.stat().st_size * 0.6
    )
    report = json.loads(path.with_suffix(".json").read_text())
    assert report["top1_agreement"] == 1.0
    assert report["max_logit_diff"] <= TOLERANCE["max_logit_diff"]
    assert report["max_embedding_rel_diff"] <= TOLERANCE["max_embedding_rel_diff"]
    mtime = path.stat().st_mtime_ns
    assert fp16_variant(manifest) == path and path.stat().st_mtime_ns == mtime  # cached, not remade
    # On real photos too: same top class, logits close, embeddings close.
    import onnxruntime as ort

    x = photos(manifest)
    a = ort.InferenceSession(str(manifest.model_path), providers=[CPU]).run(None, {"image": x})
    b = ort.InferenceSession(str(path), providers=[CPU]).run(None, {"image": x})
    assert (a[0].argmax(1) == b[0].argmax(1)).all()
    assert np.abs(a[0] - b[0]).max() < 0.1
    assert compare(manifest, manifest.model_path, path)["max_embedding_rel_diff"] < 0.02


@pytest.mark.slow
def test_a_float16_variant_out_of_tolerance_is_refused(
    manifest, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from phototag.errors import ModelError
    from phototag.models import fp16

    monkeypatch.setattr(fp16, "TOLERANCE", {**fp16.TOLERANCE, "max_logit_diff": 1e-9})
    with pytest.raises(ModelError, match="differs too much"):
        fp16_variant(manifest)
    assert not list((cache / "fp16").glob("*.onnx"))


@pytest.mark.slow
def test_when_a_gpu_provider_is_chosen_the_float16_variant_is_loaded_and_the_fallback_reported(
    manifest,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr(session_module, "choose_providers", lambda device, available: [CUDA, CPU])
    backbone = Backbone(manifest, device=Device.AUTO)
    s = backbone.load()
    assert s.path == fp16_variant(manifest)  # the GPU path was taken...
    assert s.providers == [CPU]  # ...but without CUDA here onnxruntime fell back, and we say so
    out = backbone.predict(photos(manifest))
    assert out.probs is not None and out.probs.argmax(1)[0] == 967  # espresso, in float16


@pytest.mark.slow
def test_smaller_batches_are_padded_to_a_fixed_shape_without_changing_results(manifest) -> None:  # type: ignore[no-untyped-def]
    x = photos(manifest)
    plain = Backbone(manifest, device=Device.CPU).predict(x)
    padded = Backbone(manifest, device=Device.CPU, pad_to=8).predict(x)
    assert padded.embeddings.shape == (3, 1280)
    np.testing.assert_allclose(padded.embeddings, plain.embeddings, atol=1e-4)


def test_doctor_says_why_cuda_cannot_be_used() -> None:
    from phototag.models.session import cuda_problems

    problems = cuda_problems()
    assert problems and (
        "driver" in problems[0]
        or "missing CUDA libraries" in problems[0]
        or "no CUDA provider" in problems[0]
    )
