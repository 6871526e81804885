"""A float16 variant of a backbone, for GPUs: made from the float32 file on first use, cached,
and checked against float32 before it is trusted.

The conversion is onnxruntime's own (``onnxruntime.transformers.float16``, which needs the
``onnx`` package: the ``cuda`` extra brings it). Inputs and outputs stay float32
(``keep_io_types``), so the rest of phototag does not change. Before the variant is used,
both models run on the same inputs -- real-looking photos drawn from a seeded generator --
and the variant must agree within :data:`TOLERANCE`; the measured differences are stored
next to it (``<sha>.json``) and shown by ``phototag doctor``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..config import cache_dir
from ..errors import ModelError
from ..fsutil import atomic_write, atomic_writer
from .manifest import BackboneManifest

#: What the float16 variant may differ by from float32 on the check inputs. Measured on
#: EfficientNet-Lite0 on the CPU (tests/test_gpu_paths.py): logits 0.03, embedding 0.5 %.
TOLERANCE = {"max_logit_diff": 0.1, "max_embedding_rel_diff": 0.02, "top1_agreement": 1.0}


def check_inputs(m: BackboneManifest, n: int = 8) -> np.ndarray:
    """Seeded photo-like inputs: smooth colour fields plus texture, normalised as the model wants."""
    rng = np.random.default_rng(1234)
    c = m.preprocess.crop
    xx = np.mgrid[0:c, 0:c][1] / c
    batch = []
    for _ in range(n):
        base = np.stack([np.sin(xx * rng.uniform(1, 8) + rng.uniform(0, 6)) for _ in range(3)], -1)
        img = np.clip(127 + 90 * base + rng.normal(0, 20, (c, c, 3)), 0, 255)
        mean, std = np.array(m.preprocess.mean), np.array(m.preprocess.std)
        batch.append(((img - mean) / std).transpose(2, 0, 1))
    return np.asarray(batch, dtype=np.float32)


def compare(m: BackboneManifest, fp32: Path, fp16: Path) -> dict[str, float]:
    """Run both models on :func:`check_inputs` (on the CPU) and measure how far they differ."""
    import onnxruntime as ort

    x = check_inputs(m)
    outputs = [m.embedding_output, *([m.logits_output] if m.logits_output else [])]
    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(
        outputs, {m.input_name: x}
    )
    b = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"]).run(
        outputs, {m.input_name: x}
    )
    result = {
        "max_embedding_rel_diff": float(np.abs(a[0] - b[0]).max() / max(np.abs(a[0]).max(), 1e-12))
    }
    if m.logits_output:
        result["max_logit_diff"] = float(np.abs(a[1] - b[1]).max())
        result["top1_agreement"] = float((a[1].argmax(1) == b[1].argmax(1)).mean())
    return result


def within_tolerance(measured: dict[str, float]) -> bool:
    ok = measured.get("max_embedding_rel_diff", 1.0) <= TOLERANCE["max_embedding_rel_diff"]
    if "max_logit_diff" in measured:
        ok &= measured["max_logit_diff"] <= TOLERANCE["max_logit_diff"]
        ok &= measured["top1_agreement"] >= TOLERANCE["top1_agreement"]
    return bool(ok)


def fp16_variant(m: BackboneManifest) -> Path:
    """The cached float16 variant of ``m``'s model, made and checked on first use."""
    folder = cache_dir() / "fp16"
    target = folder / f"{m.fingerprint}.onnx"
    report = target.with_suffix(".json")
    if target.exists() and report.exists():
        measured = json.loads(report.read_text())
        if within_tolerance(measured):
            return target
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        raise ModelError(
            "the float16 variant needs the onnx package: pip install 'phototag[cuda]'"
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the float32 number ... will be truncated": expected
        model16 = convert_float_to_float16(onnx.load(str(m.model_path)), keep_io_types=True)
    with atomic_writer(target) as f:
        f.write(model16.SerializeToString())
        f.flush()
        measured = compare(m, m.model_path, Path(f.name))
        if not within_tolerance(measured):
            raise ModelError(
                f"the float16 variant of {m.name} differs too much from float32: {measured}"
            )
    atomic_write(report, (json.dumps(measured, indent=1) + "\n").encode())
    return target
