"""A user is told what they are missing: tags only an open-vocabulary model can produce, the
exact 'models install' command and its download size (doctor, album --tag, scan -m)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import conftest
import pytest

from phototag.cli.console import ExitCode
from phototag.models.availability import inactive_vocabularies, needed_for_tag
from phototag.models.catalog import Catalog


def test_without_an_open_vocabulary_model_its_tags_are_explained() -> None:
    catalog = Catalog.discover()
    inactive = {n.vocabulary: n for n in inactive_vocabularies(catalog)}
    assert {"scene", "food", "mushroom", "fashion-type"} <= set(inactive)
    needed = needed_for_tag(catalog, "wedding ceremony")
    assert needed is not None and needed.vocabulary == "scene"
    assert needed.command == "phototag models install ViT-B-32__openai"
    assert "~0.6 GB" in needed.sentence()
    assert needed_for_tag(catalog, "Destroying Angel").vocabulary == "mushroom"  # type: ignore[union-attr]
    # Tags the default model makes are not "missing"; nor are unknown words.
    assert needed_for_tag(catalog, "espresso") is None
    assert needed_for_tag(catalog, "scene") is None  # the ImageNet-mapped scene has it
    assert needed_for_tag(catalog, "no such tag") is None
    ja = needed_for_tag(catalog, "field day", "ja")
    assert ja is not None and ja.model == "ViT-B-16-SigLIP-i18n-256__webli"


def test_with_a_zero_shot_backbone_nothing_is_missing(with_tiny_clip: Path) -> None:
    catalog = Catalog.discover()
    assert inactive_vocabularies(catalog) == []
    assert needed_for_tag(catalog, "wedding ceremony") is None


@pytest.mark.slow  # the real models
def test_album_doctor_and_scan_say_what_to_install(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    make_photo("lib/coffee.jpg", "coffee")
    code, out, err = conftest.invoke("scan", tmp_path / "lib", "--write", "none", "-q")
    assert code == ExitCode.OK, err
    # No empty album is made (issue 14): a usage error that says what to install.
    code, out, err = conftest.invoke("album", "--tag", "wedding ceremony")
    assert code == ExitCode.USAGE, err
    text = " ".join(err.split())
    assert "no photo can have 'wedding ceremony' yet: the 'scene' vocabulary" in text
    assert "phototag models install ViT-B-32__openai (~0.6 GB download)" in text
    code, out, err = conftest.invoke("--lang", "ja", "album", "--tag", "運動会")
    assert code == ExitCode.USAGE and "phototag models install" in " ".join(err.split())
    code, out, err = conftest.invoke("album", "--tag", "espresso")
    assert "models install" not in err  # a tag the default model can make: nothing to install
    code, out, err = conftest.invoke("scan", tmp_path / "lib", "-m", "mushroom")
    assert code == ExitCode.USAGE and "phototag models install ViT-B-32__openai" in err
    code, out, err = conftest.invoke("tags")
    assert code == ExitCode.OK and "espresso" in out
    assert "more tags (fashion-color" in err and "phototag models install ViT-B-32__openai" in err
    code, out, err = conftest.invoke("tags", "-m", "food")  # -m: only what concerns food
    assert code == ExitCode.OK and "espresso" in out and "fashion" not in err, err
    assert "more tags (food)" in err
    code, out, err = conftest.invoke("doctor", "--json")
    assert "vocabulary mushroom" in out and "inactive" in out
