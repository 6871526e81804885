"""Real photos get the right tags from the shipped model (scikit-image's sample photos)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phototag.config import Device
from phototag.tagging.classify import Classification, classify

# What the real models say about real photos.
pytestmark = pytest.mark.slow


def tags_of(path: Path, **kw: object) -> dict[str, list[str]]:
    (res,) = list(classify([path], device=Device.CPU, **kw))  # type: ignore[arg-type]
    assert isinstance(res, Classification)
    return {model: [c.tag for c in cands] for model, cands in res.candidates.items()}


def test_a_cup_of_coffee_is_espresso_and_a_drink(make_photo: Callable[..., Path]) -> None:
    tags = tags_of(make_photo("coffee.jpg", "coffee", quality=90))
    assert "imagenet" not in tags  # opt-in only (-m imagenet): it repeated every leaf
    assert tags["food"][:3] == ["food", "drink", "espresso"]
    assert tags_of(make_photo("coffee.jpg", "coffee"), recognizers=["imagenet"])["imagenet"][0] == (
        "espresso"
    )
    assert tags["animal"] == [] and tags["scene"] == []


def test_a_cat_is_an_animal_and_a_cat(make_photo: Callable[..., Path]) -> None:
    tags = tags_of(make_photo("chelsea.png", "chelsea"))
    assert tags["animal"][:2] == ["animal", "cat"]
    assert tags["food"] == []


def test_a_rocket_is_not_food_and_scores_are_ranked_probabilities(
    make_photo: Callable[..., Path],
) -> None:
    (res,) = list(
        classify([make_photo("rocket.jpg", "rocket")], device=Device.CPU, threshold=0.0, top_k=50)
    )
    assert isinstance(res, Classification)
    for cands in res.candidates.values():
        scores = [c.score for c in cands]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(c.score < 0.25 for c in res.candidates["food"])


def test_scan_then_retag_with_the_same_settings_changes_nothing(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    """A fresh tester's report with the real default models: `scan --write none`, then
    `retag --write none`, said "71 changed" (sport 0.2602 -> 0.2601): scan scored the
    float32 embedding, retag the float16 one the index keeps. Photos and a clip alike."""
    import sqlite3

    from conftest import invoke, sample
    from media_files import make_video, pan_frames

    lib = tmp_path / "lib"
    for name in (
        "coffee",
        "chelsea",
        "astronaut",
        "rocket",
        "camera",
        "coins",
        "hubble_deep_field",
    ):
        make_photo(f"lib/{name}.jpg", name)
    make_video(lib / "cat.mp4", pan_frames(sample("chelsea"), 10, (320, 240)))
    db = tmp_path / "i.sqlite"

    def scores() -> dict[tuple[str, str, str], float]:
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT CAST(p.path AS TEXT), t.recognizer, t.path, t.score"
                " FROM tags t JOIN photos p ON p.id = t.photo_id"
            ).fetchall()
        return {(p, r, t): s for p, r, t, s in rows}

    code, _, err = invoke("scan", lib, "--write", "none", "--index", db)
    assert code == 0, err
    scanned = scores()
    tagged = {Path(p).name for p, _, _ in scanned}
    assert "cat.mp4" in tagged and len(tagged) >= 5  # scores to compare, the clip's too
    code, out, err = invoke("retag", "--write", "none", "--index", db)
    assert code == 0, err
    assert ": 0 changed in" in out + err
    assert scores() == scanned  # to the last bit
