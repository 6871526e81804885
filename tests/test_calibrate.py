"""Temperature scaling of zero-shot vocabularies: the fit itself on data with a known answer,
and the command on labelled photos with the random-weight test model."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from phototag.cli.app import app
from phototag.cli.console import ExitCode
from phototag.models.backbones import softmax
from phototag.models.catalog import Catalog
from phototag.models.zeroshot import ZeroShotRecognizer, load_vocabulary
from phototag.training.calibrate import ece, fit_temperature, nll


@pytest.mark.parametrize("true_t", [20.0, 100.0, 300.0])
def test_the_fit_recovers_the_temperature_that_made_the_labels(true_t: float) -> None:
    """Labels drawn from softmax(T* x cos): the fitted T is T*, and calibration error drops."""
    rng = np.random.default_rng(int(true_t))
    cos = rng.uniform(0.15, 0.35, (4000, 30))
    p = softmax(true_t * cos)
    labels = np.array([rng.choice(30, p=row) for row in p])
    t = fit_temperature(cos, labels)
    assert t == pytest.approx(true_t, rel=0.1)
    assert nll(cos, labels, t) <= nll(cos, labels, 100.0) + 1e-9
    assert ece(softmax(t * cos), labels) < 0.03


@pytest.mark.slow
def test_calibrate_fits_saves_a_user_copy_and_retag_uses_it(
    tiny_clip: Path,
    make_photo: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    for i, (tag, which) in enumerate([("white", "coffee"), ("black", "chelsea"),
                                      ("navy", "astronaut"), ("red", "rocket")] * 2):  # fmt: skip
        make_photo(f"labelled/{tag}/{i}.jpg", which, size=(300 + 7 * i, 260))
    make_photo("labelled/not-a-color/x.jpg", "coffee")
    runner = CliRunner()
    r = runner.invoke(
        app, ["models", "calibrate", "fashion-color", str(tmp_path / "labelled"), "--json"]
    )
    assert r.exit_code == ExitCode.OK, r.stderr
    import json

    report = json.loads(r.stdout)
    assert report["photos"] == 8
    assert any("not-a-color" in s for s in report["skipped"])
    assert report["nll_after"] <= report["nll_before"]
    assert report["temperature_before"] == pytest.approx(14.2857, abs=1e-3)  # the model's own
    saved = Path(report["saved"])
    assert (
        saved
        == Path(os.environ["XDG_DATA_HOME"]) / "phototag/weights/vocabularies/fashion-color.toml"
    )
    assert load_vocabulary(saved).temperature == pytest.approx(report["temperature"], abs=1e-4)
    rec = Catalog.discover().recognizer("fashion-color")  # the user's copy wins
    assert isinstance(rec, ZeroShotRecognizer)
    assert rec.scale == pytest.approx(report["temperature"], abs=1e-4)

    # Calibrating again replaces the line instead of adding a second one.
    r = runner.invoke(app, ["models", "calibrate", "fashion-color", str(tmp_path / "labelled")])
    assert r.exit_code == ExitCode.OK, r.stderr
    assert saved.read_text().count("temperature =") == 1

    r = runner.invoke(
        app, ["models", "calibrate", "fashion-color", str(tmp_path / "labelled" / "white")]
    )
    assert r.exit_code == ExitCode.USAGE and "at least 5" in " ".join(r.stderr.split())
    r = runner.invoke(app, ["models", "calibrate", "imagenet", str(tmp_path / "labelled")])
    assert r.exit_code == ExitCode.USAGE and "not a zero-shot vocabulary" in r.stderr
