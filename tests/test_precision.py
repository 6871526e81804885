"""Tags worth keeping (issue 14): a group tag needs evidence that a member is present, and the
raw ImageNet classes are not written by default.

Fast tests drive the scoring rule with synthetic probabilities that cross the evidence share
from both sides; slow ones run the shipped model on the issue's real photos (scikit-image's
moon, galaxy field, retina, grass, gravel and histology slide; scikit-learn's dahlia).
"""

from __future__ import annotations

import dataclasses
import html.parser
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from metadata_readers import both

from phototag.errors import ModelError
from phototag.models.backbones import BackboneOutput
from phototag.models.catalog import DEFAULT_RECOGNIZERS, Catalog
from phototag.models.recognizers import (
    NO_EVIDENCE,
    Evidence,
    MappedRecognizer,
    load_recognizer,
)

ROOT = Path(__file__).resolve().parents[1]

# Ten classes: four dog breeds, two cats, four things that are no animal.
LABELS = ["beagle", "pug", "husky", "corgi", "tabby", "siamese", "moon", "bubble", "sink", "rock"]
TOML = """
name = "pets"
backbone = "efficientnet-lite0"
kind = "classes"
rollup = true
root_tag = {root_tag}
{evidence}

[[tags]]
path = "pets/dog"
classes = ["beagle", "pug", "husky", "corgi"]
each = true

[[tags]]
path = "pets/cat"
classes = ["tabby", "siamese"]
each = true
"""


def recognizer(
    tmp_path: Path, evidence: str = "[evidence]\ntop = 5\nshare = 0.7", root_tag: bool = True
) -> MappedRecognizer:
    path = tmp_path / "pets.toml"
    path.write_text(TOML.format(evidence=evidence, root_tag=str(root_tag).lower()))
    r = load_recognizer(path, LABELS)
    assert isinstance(r, MappedRecognizer)
    return r


def probs(**p: float) -> np.ndarray:
    """One photo's probabilities: the named classes as given, the rest spread evenly."""
    row = np.zeros(len(LABELS), np.float32)
    for name, v in p.items():
        row[LABELS.index(name)] = v
    rest = [i for i, name in enumerate(LABELS) if name not in p]
    row[rest] = (1.0 - row.sum()) / len(rest)
    return row[None, :]


def proposed(r: MappedRecognizer, row: np.ndarray) -> dict[str, float]:
    (cands,) = r.candidates(BackboneOutput(probs=row, embeddings=np.zeros((1, 1))), top_k=50)
    return {c.path: round(c.score, 4) for c in cands}


def test_a_group_is_proposed_just_above_the_evidence_share_and_dropped_just_below(
    tmp_path: Path,
) -> None:
    r = recognizer(tmp_path)
    # Top 5: beagle .36, pug .20 and three of the four no-animals at c each, so the
    # members' share is .56 / (.56 + 3c): 0.713 at c = .075, 0.680 at c = .088.
    above = probs(beagle=0.36, pug=0.20, moon=0.075, bubble=0.075, sink=0.075, rock=0.075)
    shares = dict(zip(r.groups, r.group_shares(above)[0], strict=True))
    assert shares["pets"] == pytest.approx(0.56 / 0.785, abs=1e-4)
    got = proposed(r, above)
    assert got["pets"] == pytest.approx(0.36 + 0.20 + 4 * 0.035, abs=1e-4)  # the plain sum
    assert {"pets/dog", "pets/dog/beagle"} <= set(got)
    below = probs(beagle=0.36, pug=0.20, moon=0.088, bubble=0.088, sink=0.088, rock=0.088)
    shares = dict(zip(r.groups, r.group_shares(below)[0], strict=True))
    assert shares["pets"] == pytest.approx(0.56 / 0.824, abs=1e-4)
    assert proposed(r, below) == {}  # not the group, nor the beagle (0.36) under it
    # The old rule (no evidence) proposes both: the test crosses the limit.
    old = dataclasses.replace(r, evidence=NO_EVIDENCE)
    assert {"pets", "pets/dog/beagle"} <= set(proposed(old, below))


def test_many_small_members_no_longer_add_up_to_a_group(tmp_path: Path) -> None:
    """The grass photo: no breed above 0.1, yet the plain sum made 'animal' 0.43."""
    r = recognizer(tmp_path)
    row = np.array([[0.09, 0.09, 0.09, 0.09, 0.04, 0.04, 0.14, 0.14, 0.14, 0.14]], np.float32)
    old = dataclasses.replace(r, evidence=NO_EVIDENCE)
    assert proposed(old, row)["pets"] == pytest.approx(0.44, abs=1e-4)
    assert proposed(r, row) == {}
    assert r.score(row).max() == 0.0


def test_a_split_between_subgroups_hedges_to_the_common_group(tmp_path: Path) -> None:
    """A dog and a cat, equally sure: 'pets' is backed, neither 'pets/dog' nor 'pets/cat'."""
    r = recognizer(tmp_path)
    row = probs(beagle=0.3, pug=0.15, tabby=0.3, siamese=0.15)
    got = proposed(r, row)
    assert "pets" in got
    assert not any(p.startswith(("pets/dog", "pets/cat")) for p in got), got
    # A breed split inside one subgroup stays a surely-a-dog: the reason rollup exists.
    dog = proposed(r, probs(beagle=0.3, pug=0.25, husky=0.2, corgi=0.15))
    assert dog["pets/dog"] == pytest.approx(0.9, abs=1e-4) and dog["pets"] >= dog["pets/dog"]


def test_the_root_is_checked_even_when_it_is_not_a_tag(tmp_path: Path) -> None:
    r = recognizer(tmp_path, root_tag=False)
    assert "pets" not in r.paths and "pets" in r.groups
    row = probs(beagle=0.36, pug=0.20, moon=0.088, bubble=0.088, sink=0.088, rock=0.088)
    assert proposed(r, row) == {}
    assert "pets/dog/beagle" in proposed(dataclasses.replace(r, evidence=NO_EVIDENCE), row)


def test_share_zero_is_the_plain_sum_and_is_what_vocabularies_get(tmp_path: Path) -> None:
    r = recognizer(tmp_path, evidence="[evidence]\nshare = 0.0")
    assert r.evidence == Evidence(top=5, share=0.0) and not r.evidence.active
    row = probs(beagle=0.2, moon=0.5)
    plain = recognizer(tmp_path, evidence="")
    assert plain.evidence == NO_EVIDENCE
    np.testing.assert_array_equal(r.score(row), plain.score(row))
    sums = row @ plain.matrix
    np.testing.assert_allclose(plain.score(row), sums, rtol=1e-6)


@pytest.mark.parametrize(
    ("evidence", "message"),
    [
        ("[evidence]\nshare = 1.5", "share must be between 0 and 1"),
        ("[evidence]\nshare = nan", "share must be between 0 and 1"),
        ("[evidence]\ntop = 0\nshare = 0.5", "top must be a whole number"),
        ('[evidence]\ntop = "5"', "field 'top' must be int"),
        ("[evidence]\nshares = 0.5", "unknown keys: shares"),
        ("evidence = 0.5", "field 'evidence' must be dict"),
    ],
)
def test_a_bad_evidence_table_is_refused_with_the_file_and_the_field(
    tmp_path: Path, evidence: str, message: str
) -> None:
    with pytest.raises(ModelError, match=message) as e:
        recognizer(tmp_path, evidence=evidence)
    assert "pets.toml" in str(e.value)


def test_imagenet_is_opt_in() -> None:
    assert "imagenet" not in DEFAULT_RECOGNIZERS
    catalog = Catalog.discover()
    assert "imagenet" not in [r.name for r in catalog.resolve(None)]
    assert [r.name for r in catalog.resolve(["imagenet"])] == ["imagenet"]


# -- the shipped model on the issue's real photos ------------------------------------------


@pytest.fixture
def old_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Switch to the plain-sum rule: a user copy of animal.toml with the evidence off."""

    def switch() -> None:
        shipped = (
            Path(__file__).parents[1] / "weights" / "recognizers" / "animal.toml"
        ).read_text()
        assert "share = 0.7" in shipped
        folder = tmp_path / "old-rule" / "recognizers"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "animal.toml").write_text(shipped.replace("share = 0.7", "share = 0.0"))
        monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tmp_path / "old-rule"))

    return switch


def _animal_tags(path: Path) -> list[str]:
    from phototag.config import Device
    from phototag.tagging.classify import Classification, classify

    (res,) = list(classify([path], device=Device.CPU, recognizers=["animal"]))
    assert isinstance(res, Classification)
    return [c.path for c in res.candidates["animal"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sample", "fired_before"),
    [
        ("moon", True),
        ("hubble_deep_field", True),
        ("immunohistochemistry", True),
        ("grass", True),
        ("retina", False),
        ("gravel", False),
    ],
)
def test_no_animal_on_the_issues_photos(
    make_photo: Callable[..., Path], old_rule: Callable[[], None], sample: str, fired_before: bool
) -> None:
    photo = make_photo(f"{sample}.jpg", sample, quality=90)
    assert _animal_tags(photo) == []
    # Where 'animal' came before, the old rule still gives it: the rule is what changed.
    # (The issue also saw it on the retina and gravel; here they stayed below 0.25 before too.)
    old_rule()
    assert bool(_animal_tags(photo)) == fired_before


@pytest.mark.slow
def test_no_animal_on_a_dahlia(tmp_path: Path, old_rule: Callable[[], None]) -> None:
    from PIL import Image
    from sklearn.datasets import load_sample_image

    path = tmp_path / "dahlia.jpg"
    Image.fromarray(load_sample_image("flower.jpg")).save(path, quality=90)
    assert _animal_tags(path) == []
    old_rule()
    assert "animal" in _animal_tags(path)


@pytest.mark.slow
def test_the_cat_is_still_an_animal_and_a_cat_and_the_coffee_still_food(
    make_photo: Callable[..., Path],
) -> None:
    got = _animal_tags(make_photo("cat.jpg", "chelsea"))
    assert got[:2] == ["animal", "animal/cat"]
    assert "animal/cat/tiger cat" in got
    from phototag.config import Device
    from phototag.tagging.classify import Classification, classify

    (res,) = list(classify([make_photo("coffee.jpg", "coffee")], device=Device.CPU))
    assert isinstance(res, Classification)
    assert [c.path for c in res.candidates["food"]][:3] == [
        "food",
        "food/drink",
        "food/drink/espresso",
    ]
    assert res.candidates["animal"] == []


class _Chips(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chips: list[str] = []
        self._in = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in = tag == "span" and ("class", "t") in attrs

    def handle_data(self, data: str) -> None:
        if self._in:
            self.chips.append(data.rsplit(" ", 1)[0])
            self._in = False


@pytest.mark.slow
def test_a_default_scan_writes_each_tag_once_in_sidecars_and_on_the_contact_sheet(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    """The issue's 'phototag|imagenet|tiger cat' beside 'phototag|animal|cat|tiger cat', and
    the chips 'tiger cat 0.34 tiger cat 0.34', are gone; read back by exiftool and exiv2."""
    make_photo("lib/cat.jpg", "chelsea")
    make_photo("lib/coffee.jpg", "coffee")
    for sample in ("moon", "grass", "hubble_deep_field", "immunohistochemistry"):
        make_photo(f"lib/{sample}.jpg", sample, quality=90)
    index = tmp_path / "i.sqlite"
    code, _, err = invoke(
        "scan", tmp_path / "lib", "--index", index, "--device", "cpu", "--write", "sidecar"
    )
    assert code == 0, err
    for name in ("cat.jpg", "coffee.jpg"):
        fields = both(tmp_path / "lib" / f"{name}.xmp")
        hierarchy = fields["lr:hierarchicalSubject"]
        assert hierarchy and not any("imagenet" in k for k in hierarchy), hierarchy
        subjects = fields["dc:subject"]
        assert len(subjects) == len(set(subjects)), subjects
    cat = both(tmp_path / "lib" / "cat.jpg.xmp")["lr:hierarchicalSubject"]
    assert "phototag|animal|cat|tiger cat" in cat

    # The issue's album of "animals" that were mostly not: now the cat alone.
    code, _, err = invoke("album", "--tag", "animal", "--index", index, "--out", tmp_path / "a")
    assert code == 0, err
    entries = [e for e in os.listdir(tmp_path / "a") if not e.startswith(".")]
    assert [os.path.realpath(tmp_path / "a" / e) for e in entries] == [
        os.path.realpath(tmp_path / "lib" / "cat.jpg")
    ]

    out = tmp_path / "cats"
    code, _, err = invoke("album", "--tag", "cat", "--index", index, "--out", out, "--html")
    assert code == 0, err
    parser = _Chips()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    assert "tiger cat" in parser.chips
    assert len(parser.chips) == len(set(parser.chips)), parser.chips


def test_the_labelled_photos_of_the_benchmark_are_well_formed() -> None:
    """bench/precision_photos.csv: one row per photo, a known source, domains from the set."""
    import csv

    rows = list(csv.DictReader((ROOT / "bench" / "precision_photos.csv").read_text().splitlines()))
    assert len(rows) >= 300
    assert len({r["file"] for r in rows}) == len(rows)
    domains = {"animal", "food", "flower", "scene", "none"}
    for r in rows:
        assert set(r["domain"].split("+")) <= domains, r
        assert r["domain"] == "none" or "none" not in r["domain"], r
        assert r["source"] in {"skimage", "sklearn", "palapeli", "opencv", "gcompris", "tuxpaint"}
        assert r["file"].startswith(r["source"] + "/") and r["file"].endswith(".jpg"), r
        if r["source"] == "gcompris":
            assert ".rcc:" in r["path"], r
    # Enough photos inside each domain to measure recall, and outside it for false positives.
    for d in domains - {"none"}:
        assert sum(d in r["domain"].split("+") for r in rows) >= 30, d


@settings(max_examples=60, deadline=None)
@given(
    top=st.one_of(
        st.integers(-3, 40), st.floats(allow_nan=True), st.text(max_size=3), st.booleans()
    ),
    share=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 3), st.text(max_size=3)
    ),
    extra=st.sampled_from(["", "x = 1"]),
    rows=arrays(np.float32, (3, len(LABELS)), elements=st.floats(0, 1, width=32)),
)
def test_any_evidence_table_is_refused_or_gives_the_plain_sum_or_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    top: object,
    share: object,
    extra: str,
    rows: np.ndarray,
) -> None:
    """Fuzzed [evidence]: a ModelError, or scores that are each the plain sum or 0."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.encode("unicode_escape").decode().replace('"', '\\"') + '"'
        if isinstance(v, float) and v != v:
            return "nan"
        if isinstance(v, float) and v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)

    table = f"[evidence]\ntop = {value(top)}\nshare = {value(share)}\n{extra}"
    try:
        r = recognizer(tmp_path_factory.mktemp("e"), evidence=table)
    except ModelError:
        return
    assert isinstance(top, int) and not isinstance(top, bool) and top >= 1
    assert 0.0 <= float(share) <= 1.0  # type: ignore[arg-type]
    probs = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1e-6)
    plain = dataclasses.replace(r, evidence=NO_EVIDENCE).score(probs)
    got = r.score(probs)
    assert got.shape == plain.shape
    assert np.all((got == plain) | (got == 0.0))
