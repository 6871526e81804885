"""The installed package carries its model and finds it from any working directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# Builds and installs a wheel.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_weights_and_works_from_anywhere(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("phototag-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("model.onnx", "backbone.toml", "labels.txt", "LICENSE"):
        assert f"phototag/weights/efficientnet-lite0/{f}" in names
    assert "phototag/weights/recognizers/food.toml" in names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    code = (
        "from phototag.models.catalog import Catalog; import phototag, sys;"
        "c = Catalog.discover(); print(phototag.__file__); print(c.backbones['efficientnet-lite0'])"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert out[1] == str(target / "phototag" / "weights" / "efficientnet-lite0")


def test_the_wheel_needs_no_torch_open_clip_or_transformers(tmp_path: Path) -> None:
    """Hub models run on onnxruntime, huggingface_hub and tokenizers only: the wheel's
    requirements name torch and open_clip only under extras, transformers nowhere, and the
    hub code imports none of them."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("phototag-*.whl")
    z = zipfile.ZipFile(wheel)
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip()
        for line in z.read(meta).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    core = [r for r in requires if "extra ==" not in r]
    names = {
        r.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in core
    }
    assert {"huggingface-hub", "tokenizers", "numpy"} <= {n.replace("_", "-") for n in names}
    assert not {"torch", "torchvision", "open-clip-torch", "transformers"} & names
    # transformers only as the tests' reference (the test extra), never to run a model.
    extras = [
        r.replace("'", '"').rsplit("extra == ", 1)[-1] for r in requires if "transformers" in r
    ]
    assert extras and set(extras) <= {'"test"', '"dev"'}  # dev includes test
    for f in ("hub.toml", "names/ja.toml"):
        assert f"phototag/weights/{f}" in z.namelist()
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    code = (
        "import sys; import phototag.models.hub as h, phototag.models.hftokenizer,"
        " phototag.models.availability, phototag.names as n;"
        "assert 'ViT-B-32__openai' in h.hub_models(); assert n.tag_names('ja').names;"
        "print(sorted(m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "[]"
