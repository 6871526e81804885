"""Zero-shot (CLIP-style) backbones, proved against OpenCLIP + PyTorch with random weights.

No pretrained CLIP weights can be had here, so every numeric claim is checked against the
reference implementation on the same random weights: the tokenizer's ids, the preprocessing
pixels, the ONNX embeddings and the zero-shot scores.
"""

from __future__ import annotations

import functools
import io
import os
import random
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import open_clip  # the test extra installs phototag[clip]: these tests never skip
import pytest
import torch
from conftest import TINY_CLIP_CONFIG, jpeg_bytes, sample
from PIL import Image, ImageOps

from phototag.errors import ModelError, UnknownModelError
from phototag.media.imaging import center_crop, decode, preprocess, resize_short_side
from phototag.models.backbones import Backbone
from phototag.models.catalog import Catalog
from phototag.models.manifest import load_backbone_manifest
from phototag.models.recognizers import MappedRecognizer
from phototag.models.tokenizer import Tokenizer
from phototag.models.zeroshot import (
    DEFAULT_BACKGROUND,
    TextEncoder,
    ZeroShotRecognizer,
    load_vocabulary,
)

VOCABULARIES = Path(__file__).parent.parent / "weights" / "vocabularies"


@functools.cache
def reference() -> tuple[Any, Any, Any]:
    """The tiny model exactly as the exporter built it (seed 0), with OpenCLIP's transform
    and tokenizer: the reference every phototag number is compared with."""
    open_clip.add_model_config(TINY_CLIP_CONFIG)
    torch.manual_seed(0)
    model, _, transform = open_clip.create_model_and_transforms("phototag-tiny-clip")
    model.eval()
    return model, transform, open_clip.get_tokenizer("phototag-tiny-clip")


def strings(n: int, seed: int = 0) -> list[str]:
    """Unicode of many scripts, emoji (with ZWJ sequences), HTML entities, mojibake,
    whitespace, CLIP's special tokens, and texts long enough to be truncated."""
    rng = random.Random(seed)
    pieces = [
        "a photo of", "wedding ceremony", "手巻き寿司", "カレーライス", "🎂🎉", "👨‍👩‍👧", "café",
        "naïve", "&amp;", "&lt;b&gt;", "Ã©", "\u200b", "\t\n", "  ", "O'Reilly's", "it's",
        "1234567", "ß", "ǅ", "İstanbul", "Ελληνικά", "русский", "عربى", "हिन्दी",
        "<start_of_text>", "<END_OF_TEXT>", "x" * 50, "\ufeff", "🏳️‍🌈", "1/2", "$%^&",
        "Amanita virosa", "border-striped cut-and-sewn shirt",
    ]  # fmt: skip
    out = []
    for _ in range(n):
        parts = [
            rng.choice(pieces)
            if rng.random() < 0.6
            else "".join(
                chr(
                    rng.choice(
                        [
                            rng.randint(32, 126),
                            rng.randint(0xA0, 0x2FFF),
                            rng.randint(0x3000, 0x9FFF),
                            rng.randint(0x1F300, 0x1FAFF),
                        ]
                    )
                )
                for _ in range(rng.randint(1, 8))
            )
            for _ in range(rng.randint(0, 30))
        ]
        out.append(" ".join(parts) if rng.random() < 0.7 else "".join(parts))
    return out


@pytest.mark.slow  # over 10 s
def test_tokenizer_gives_openclips_ids_on_thousands_of_strings() -> None:
    from open_clip.tokenizer import default_bpe

    texts = strings(3000)
    for f in sorted(VOCABULARIES.glob("*.toml")):  # every prompt phototag will ever encode
        v = load_vocabulary(f)
        texts += [t for row in v.texts() for t in row]
    ours = Tokenizer(Path(default_bpe()))(texts)
    theirs = open_clip.get_tokenizer("ViT-B-32")(texts).numpy()
    assert ours.shape == theirs.shape == (len(texts), 77)
    mismatched = [texts[i] for i in np.flatnonzero((ours != theirs).any(axis=1))]
    assert not mismatched, mismatched[:5]
    assert (ours[:, -1] != 0).sum() > 500  # many were long enough to be cut at 77 tokens


def oriented_jpeg(a: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(a, exif=exif)


@pytest.mark.slow  # parity with OpenCLIP: imports torch (seconds), so not in the fast tier
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_preprocessing_matches_openclips_transform_pixel_for_pixel(
    with_tiny_clip: Path, orientation: int
) -> None:
    """Resize (shortest side, bicubic) + centre crop give OpenCLIP's exact pixels; the
    normalised tensors agree to float rounding. Decoded at full size, as OpenCLIP does."""
    _, transform, _ = reference()
    pre = load_backbone_manifest(with_tiny_clip).preprocess
    for which, size in [("astronaut", (512, 512)), ("coffee", (600, 400)), ("chelsea", (451, 300)),
                        ("rocket", (427, 640)), ("coffee", (225, 1000)), ("chelsea", (3200, 230)), ("astronaut", (301, 299)),
                        ("chelsea", (224, 224)), ("rocket", (3000, 2001))]:  # fmt: skip
        a = np.asarray(Image.fromarray(sample(which)).resize(size, Image.Resampling.BICUBIC))
        data = oriented_jpeg(a, orientation)
        theirs_im = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        ours_im = decode(data, min_side=10**6, max_pixels=10**9).image  # no draft reduction
        assert np.array_equal(np.asarray(ours_im), np.asarray(theirs_im))
        geometry = transform.transforms[:2]  # Resize, CenterCrop
        assert type(geometry[0]).__name__ == "Resize" and type(geometry[1]).__name__ == "CenterCrop"
        crop_theirs = np.asarray(geometry[1](geometry[0](theirs_im)))
        crop_ours = center_crop(resize_short_side(ours_im, 224, "bicubic", True), 224, True)
        assert np.array_equal(crop_ours, crop_theirs), (which, size, orientation)
        full = preprocess(ours_im, pre)
        np.testing.assert_allclose(full, transform(theirs_im).numpy(), atol=2e-6, rtol=0)


@pytest.mark.slow
def test_onnx_embeddings_match_pytorch_on_real_photos(with_tiny_clip: Path) -> None:
    model, transform, tokenizer = reference()
    manifest = load_backbone_manifest(with_tiny_clip)
    photos = [Image.fromarray(sample(n)) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    got = Backbone(manifest).predict(np.stack([preprocess(p, manifest.preprocess) for p in photos]))
    with torch.no_grad():
        want = model.encode_image(torch.stack([transform(p) for p in photos])).numpy()
    assert np.abs(got.embeddings - want).max() < 1e-4
    # The text encoder runs on the tokens up to the last end-of-text only (here 77 for the
    # long text, then ~8 for the short ones alone): the same embeddings as PyTorch's at 77.
    assert manifest.text is not None and manifest.text.variable_length
    texts = ["a photo of a cat.", "a cup of coffee", "宇宙飛行士 🚀", "x " * 100]
    with torch.no_grad():
        want_t = model.encode_text(tokenizer(texts)).numpy()
    want_t /= np.linalg.norm(want_t, axis=1, keepdims=True)
    assert np.abs(TextEncoder(manifest).encode(texts) - want_t).max() < 1e-4
    assert np.abs(TextEncoder(manifest).encode(texts[:2]) - want_t[:2]).max() < 1e-4


@pytest.mark.slow
def test_zero_shot_scores_equal_a_hand_computation(with_tiny_clip: Path, tmp_path: Path) -> None:
    """softmax(logit_scale * cos) over the tags' averaged prompt embeddings and the default
    background prompts, computed from the TOML and PyTorch alone."""
    from phototag.tagging.classify import classify

    model, transform, tokenizer = reference()
    spec = tomllib.loads((VOCABULARIES / "fashion-color.toml").read_text())
    leaves = []
    for entry in spec["groups"]["fashion-color"]["tags"]:
        tag, names = (
            (entry, [entry]) if isinstance(entry, str) else (entry["tag"], entry["prompts"])
        )
        leaves.append((tag, [t.format(n) for n in names for t in spec["templates"]]))
    rows = [texts for _, texts in leaves] + [[b] for b in DEFAULT_BACKGROUND]
    with torch.no_grad():
        classes = []
        for texts in rows:
            e = model.encode_text(tokenizer(texts))
            e = e / e.norm(dim=-1, keepdim=True)
            m = e.mean(dim=0)
            classes.append(m / m.norm())
        photo = tmp_path / "coffee.png"
        Image.fromarray(sample("coffee")).save(photo)
        img = model.encode_image(transform(Image.open(photo).convert("RGB"))[None])
        img = img / img.norm(dim=-1, keepdim=True)
        probs = torch.softmax(model.logit_scale.exp() * img @ torch.stack(classes).T, dim=-1)[0]
    want = {tag: float(probs[i]) for i, (tag, _) in enumerate(leaves)}

    [result] = list(classify([photo], recognizers=["fashion-color"], threshold=0.0, top_k=100))
    got = {c.tag: c.score for c in result.candidates["fashion-color"]}  # type: ignore[union-attr]
    assert set(got) == set(want)
    for tag in want:
        assert got[tag] == pytest.approx(want[tag], abs=1e-4), tag
    # The background took its share: the tags' scores do not sum to one.
    assert sum(want.values()) < 1.0


def test_vocabularies_are_complete() -> None:
    v = {f.stem: load_vocabulary(f) for f in VOCABULARIES.glob("*.toml")}
    assert set(v) == {"scene", "food", "flower", "mushroom", "fashion-type", "fashion-pattern",
                      "fashion-color", "fashion-style"}  # fmt: skip
    tags = {name: {leaf.rsplit("/", 1)[-1] for leaf in voc.leaves} for name, voc in v.items()}
    assert len(tags["scene"]) >= 40
    assert {"wedding ceremony", "field day", "birthday party", "graduation", "festival", "beach",
            "mountain", "night view", "snow"} <= tags["scene"]  # fmt: skip
    japanese = [leaf for leaf in v["food"].leaves if leaf.startswith("food/japanese/")]
    general = [leaf for leaf in v["food"].leaves if leaf.startswith("food/general/")]
    assert len(japanese) >= 150 and len(general) >= 30
    assert {"hand-rolled sushi", "curry rice", "ramen", "takoyaki"} <= tags["food"]
    assert len(tags["flower"]) >= 40 and {"tulip", "cherry blossom"} <= tags["flower"]
    flagged = {leaf.split("/")[1] for leaf in v["mushroom"].leaves}
    assert flagged == {"deadly poisonous", "poisonous", "edible"}
    assert 35 <= len(v["mushroom"].leaves) <= 50
    assert "mushroom/deadly poisonous/destroying angel" in v["mushroom"].leaves
    assert "cut-and-sewn top" in tags["fashion-type"]
    assert "border stripes" in tags["fashion-pattern"]
    assert min(len(tags[f"fashion-{k}"]) for k in ("type", "pattern", "color", "style")) >= 15
    for voc in v.values():  # every tag asks with at least one prompt, each from a template
        assert all(row and all(t.strip() for t in row) for row in voc.texts())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('templates = ["a photo"]\n[groups.t]\ntags = ["x"]\n', "must contain '{}' once"),
        ('[groups.t]\ntags = ["x", "x"]\n', "listed twice"),
        ('[groups."other/g"]\ntags = ["x"]\n', "not under 't'"),
        ('[groups.t]\ntags = ["a/b|c"]\n', "no '|'"),
        ('[groups.t]\ntags = [{tag = "x", prompts = []}]\n', "non-empty list"),
        ("[groups.t]\ntags = [3]\n", "a tag is a string"),
        ("groups = {}\n", "no tags"),
        ('[groups.t]\ntags = ["a"]\n[groups."t/a/b"]\ntags = ["c"]\n', "both a tag and a group"),
    ],
)
def test_bad_vocabularies_are_refused_with_the_reason(
    tmp_path: Path, body: str, message: str
) -> None:
    f = tmp_path / "t.toml"
    f.write_text('name = "t"\nkind = "zero-shot"\n' + body)
    with pytest.raises(
        ModelError, match=message.replace("|", r"\|").replace("{", r"\{").replace("}", r"\}")
    ):
        load_vocabulary(f)


@pytest.mark.slow
def test_the_same_names_use_the_richer_vocabulary_when_a_zero_shot_backbone_is_there(
    tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without = Catalog.discover()
    assert isinstance(without.recognizer("scene"), MappedRecognizer)
    assert "mushroom" not in [r.name for r in without.resolve(None)]
    with pytest.raises(UnknownModelError, match="no zero-shot backbone"):
        without.recognizer("mushroom")

    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    with_zs = Catalog.discover()
    scene = with_zs.recognizer("scene")
    assert isinstance(scene, ZeroShotRecognizer) and scene.backbone == "clip-tiny"
    assert "scene/event/wedding ceremony" in scene.paths and "scene/event" in scene.paths
    names = [r.name for r in with_zs.resolve(None)]
    assert names == ["scene", "food", "flower", "animal", "mushroom"]
    # Explicitly the classifier: the ImageNet-mapped recognizers, even with CLIP installed.
    explicit = Catalog.discover()
    explicit.preferred = "efficientnet-lite0"
    assert isinstance(explicit.recognizer("scene"), MappedRecognizer)
    typo = Catalog.discover()
    typo.preferred = "no-such-backbone"
    with pytest.raises(UnknownModelError, match="no backbone named"):
        typo.recognizer("scene")


@pytest.mark.slow
def test_text_embeddings_are_computed_once_per_backbone_and_vocabulary(
    with_tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Catalog.discover().recognizer("flower")
    assert isinstance(first, ZeroShotRecognizer)
    cached = list((Path(os.environ["PHOTOTAG_CACHE"]) / "text").glob("*.npy"))
    assert len(cached) == 1

    def refuse(self: TextEncoder, texts: list[str]) -> np.ndarray:
        raise AssertionError("encoded again although cached")

    monkeypatch.setattr(TextEncoder, "encode", refuse)
    again = Catalog.discover().recognizer("flower")
    assert isinstance(again, ZeroShotRecognizer)
    np.testing.assert_array_equal(again.classes, first.classes)
    monkeypatch.undo()
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(with_tiny_clip.parent))
    cached[0].write_bytes(b"\x93NUMPY garbage")  # a damaged cache is computed again
    healed = Catalog.discover().recognizer("flower")
    assert isinstance(healed, ZeroShotRecognizer)
    np.testing.assert_allclose(healed.classes, first.classes, atol=1e-6)


def test_a_zero_shot_backbone_without_its_text_encoder_is_refused(
    with_tiny_clip: Path, tmp_path: Path
) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(with_tiny_clip, bad)
    text = (bad / "backbone.toml").read_text()
    (bad / "backbone.toml").write_text(text.replace('model = "text.onnx"', 'model = "gone.onnx"'))
    with pytest.raises(ModelError, match="which \\[files\\] does not list"):
        load_backbone_manifest(bad)
    before, after = text.split("[text]")
    (bad / "backbone.toml").write_text(before + after[after.index("[files") :])
    with pytest.raises(ModelError, match="missing field 'text'"):
        load_backbone_manifest(bad)


@pytest.mark.slow
def test_each_encoder_checks_its_own_files(with_tiny_clip: Path, tmp_path: Path) -> None:
    """A damaged text model stops text encoding, not image encoding, and the other way round
    (so a search does not hash the image model, nor a scan the text model)."""
    import shutil

    for damaged, fails in (("text.onnx", "text"), ("model.onnx", "image")):
        folder = tmp_path / damaged
        shutil.copytree(with_tiny_clip, folder)
        data = bytearray((folder / damaged).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / damaged).write_bytes(bytes(data))
        m = load_backbone_manifest(folder)
        image, text = Backbone(m).load, functools.partial(TextEncoder(m).encode, ["a photo"])
        with pytest.raises(ModelError, match="does not match the sha256"):
            (image if fails == "image" else text)()
        (text if fails == "image" else image)()  # the other encoder is fine
