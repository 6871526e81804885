"""Issue 14, "the first hour": what a new user trips on in an hour of use, each example a test.

Training on the default install, names that are checked, help that tells, output that adds
up, settings that stick. The commands run through CliRunner and the tests look at the
index, the weights folder and the album folders afterwards, not only at the text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import invoke, ndjson

from phototag.config import user_weights_dir


@pytest.fixture
def index(tmp_path: Path) -> Path:
    return tmp_path / "index.sqlite"


# -- training works out of the box ----------------------------------------------------------


@pytest.fixture
def train_dir(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    """Two tags of three real photos each (resized copies, so each file is new content)."""
    for tag, which in (("cups", "coffee"), ("cats", "chelsea")):
        for i, side in enumerate((200, 240, 280)):
            make_photo(f"train/{tag}/{i}.jpg", which, size=(side, side))
    return tmp_path / "train"


def test_scikit_learn_is_a_default_dependency() -> None:
    import tomllib

    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert any(d.startswith("scikit-learn") for d in meta["project"]["dependencies"])
    assert any(d.startswith("pathspec") for d in meta["project"]["dependencies"])


@pytest.mark.parametrize("how", ["name", "dot"])
def test_train_with_a_relative_folder(
    train_dir: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "name":
        monkeypatch.chdir(train_dir.parent)
        arg = "train"
    else:
        monkeypatch.chdir(train_dir)
        arg = "."
    code, out, err = invoke("train", arg, "--name", "mine", "--no-augment", "--device", "cpu")
    assert code == 0, err
    assert "Traceback" not in out + err
    assert (user_weights_dir() / "recognizers" / "mine.toml").is_file()
    assert (user_weights_dir() / "recognizers" / "mine.npz").is_file()


def test_train_refuses_to_shadow_a_shipped_or_existing_recognizer_without_force(
    train_dir: Path,
) -> None:
    folder = user_weights_dir() / "recognizers"
    code, _, err = invoke("train", train_dir, "--name", "animal", "--no-augment")
    assert code == 2
    assert "shipped" in err and "--force" in err
    assert not (folder / "animal.toml").exists()

    assert invoke("train", train_dir, "--name", "pets", "--no-augment")[0] == 0
    before = (folder / "pets.toml").read_bytes()
    code, _, err = invoke("train", train_dir, "--name", "pets", "--no-augment", "--seed", "3")
    assert code == 2 and "already have" in err
    assert (folder / "pets.toml").read_bytes() == before
    code, _, err = invoke("train", train_dir, "--name", "pets", "--no-augment", "--seed", "3", "--force")
    assert code == 0, err
    assert (folder / "pets.toml").read_bytes() != before  # the seed is in the manifest

    code, _, err = invoke("train", train_dir, "--name", "animal", "--no-augment", "--force")
    assert code == 0, err
    assert (folder / "animal.toml").is_file()


def test_recognizers_list_and_remove(train_dir: Path) -> None:
    assert invoke("train", train_dir, "--name", "pets", "--no-augment")[0] == 0
    code, out, _ = invoke("recognizers", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in ndjson(out)}
    assert rows["pets"]["origin"] == "trained" and rows["pets"]["tags"] == 2
    assert rows["animal"]["origin"] == "shipped"

    code, _, err = invoke("recognizers", "remove", "animal")
    assert code == 2 and "shipped" in err
    code, _, err = invoke("recognizers", "remove", "pet")
    assert code == 2 and "pets" in err  # the closest match
    code, _, err = invoke("recognizers", "remove", "pets")
    assert code == 0, err
    assert not list((user_weights_dir() / "recognizers").iterdir())
    rows = {r["name"] for r in ndjson(invoke("recognizers", "list", "--json")[1])}
    assert "pets" not in rows and "animal" in rows


def test_training_reports_progress_per_photo(train_dir: Path, tmp_path: Path) -> None:
    from phototag.config import Device
    from phototag.train import TrainOptions, train_from_folder

    seen: list[tuple[int, int]] = []
    train_from_folder(
        train_dir,
        TrainOptions(name="p", out_dir=tmp_path / "w", augment=False, device=Device.CPU),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (6, 6)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) >= 6
