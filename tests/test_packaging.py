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
