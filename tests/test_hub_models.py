"""Ready ONNX models from the Hugging Face Hub in Immich's layout, against a local hub.

The hub (tests/hubfake.py) serves models the fixtures make: OpenCLIP models with random
weights exported as Immich exports them, with a tokenizer.json of CLIP's BPE, and a small
NLLB-style multilingual model whose SentencePiece Unigram tokenizer is trained here.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import conftest
import numpy as np
import pytest
from hubfake import FakeHub, immich_export, unigram_tokenizer
from PIL import Image
from waiting import changed_since, kill, wait_until, written_since

from phototag.cli.console import ExitCode
from phototag.errors import ModelError
from phototag.models.catalog import Catalog
from phototag.models.hub import install_from_hub
from phototag.models.manifest import load_backbone_manifest, verify_files

TINY = "phototag-tiny-clip__random"
MULTI = "nllb-tiny__random"
CLIP_TOKENIZER_CONFIG = {"pad_token": "<|endoftext|>", "bos_token": "<|startoftext|>",
                         "eos_token": "<|endoftext|>", "model_max_length": 77}  # fmt: skip

#: English and Japanese sentences the multilingual tokenizer is trained on.
CORPUS = [
    "kids playing on the beach",
    "a wedding ceremony in a church",
    "a bowl of ramen",
    "curry rice on a plate",
    "hand-rolled sushi",
    "tulips in a garden",
    "a poisonous mushroom",
    "a birthday party with a cake",
    "a school sports day",
    "a dog in the snow",
    "海辺で遊ぶ子供たち",
    "教会での結婚式",
    "ラーメン一杯",
    "皿に盛ったカレーライス",
    "手巻き寿司",
    "庭に咲くチューリップ",
    "毒きのこのドクツルタケ",
    "ケーキのある誕生日パーティー",
    "学校の運動会",
    "雪の中の犬",
    "夕日の海岸で遊ぶ子どもたち",
    "桜の下でお花見",
    "お正月のおせち料理",
]


def _openclip(name: str, config: dict[str, Any]) -> Any:
    import open_clip
    import torch

    open_clip.factory._MODEL_CONFIGS[name] = config
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    model.eval()
    return model


@pytest.fixture(scope="session")
def hub_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two model repositories in Immich's layout (about 10 s to make), and their models."""
    import open_clip

    from phototag.models.hftokenizer import clip_bpe_tokenizer

    root = tmp_path_factory.mktemp("hub")
    tiny_cfg = json.loads(conftest.TINY_CLIP_CONFIG.read_text())
    tiny = _openclip("phototag-tiny-clip", tiny_cfg)
    bpe = clip_bpe_tokenizer(Path(open_clip.tokenizer.default_bpe()))
    immich_export(tiny, tiny_cfg, bpe, CLIP_TOKENIZER_CONFIG, root / TINY)

    languages = ["eng_Latn", "jpn_Jpan"]
    sp = unigram_tokenizer(CORPUS * 3, languages, vocab_size=300)
    vocab = sp.get_vocab_size(with_added_tokens=True)
    multi_cfg = json.loads(json.dumps(tiny_cfg))
    multi_cfg["text_cfg"].update(vocab_size=vocab, context_length=32)
    multi = _openclip("nllb-tiny", multi_cfg)
    immich_export(multi, multi_cfg, sp, {"pad_token": "<pad>", "model_max_length": 32},
                  root / MULTI)  # fmt: skip
    return {"root": root, "tiny": tiny, "multi": multi, "sp": sp}


@pytest.fixture
def hub(
    hub_repos: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHub]:
    """The local hub, with HF_ENDPOINT pointing at it and an empty Hugging Face cache."""
    import huggingface_hub.utils as hf_utils

    root = hub_repos["root"]
    repos = {f"immich-app/{n}": root / n for n in (TINY, MULTI)}
    server = FakeHub(repos, tmp_path / "ca.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "*")
    # huggingface_hub keeps one HTTP client, made with the CA of the time it was made.
    close = getattr(hf_utils, "close_session", None) or hf_utils.reset_sessions
    close()
    yield server
    close()
    server.close()


def _no_leftovers(dest: Path) -> None:
    """Nothing half-installed: no staging folders, no versions without a link."""
    if dest.exists():
        assert [p.name for p in dest.iterdir()] == [], list(dest.iterdir())


# -- install ------------------------------------------------------------------------------


@pytest.mark.slow  # the real models
def test_install_scan_search_in_japanese_and_album_end_to_end(
    hub: FakeHub, tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    """models install (from the local hub) -> scan -> search in Japanese -> album, through
    the command line, checking the installed files and the index afterwards."""
    code, out, err = conftest.invoke("models", "install", MULTI)
    assert code == ExitCode.OK, out + err
    assert f"installed {MULTI}" in err and "MB" in err
    assert "%|" not in err  # no progress bars when the output is not a terminal
    folder = Catalog.discover().backbones[MULTI]
    m = load_backbone_manifest(folder)
    verify_files(m)
    assert m.kind == "zero-shot" and m.text is not None and m.text.language_prefix
    assert m.text.dtype == "int32" and m.text.max_batch == 1 and m.max_batch == 1
    assert m.source["repository"] == f"immich-app/{MULTI}" and m.source["commit"] == hub.commit
    for name in ("coffee", "chelsea", "astronaut"):
        make_photo(f"lib/{name}.jpg", name)
    code, out, err = conftest.invoke("scan", tmp_path / "lib", "-m", "scene", "--write", "none")
    assert code == ExitCode.OK, out + err
    code, out, err = conftest.invoke("search", "海辺で遊ぶ子供たち", "-n", "2", "--json")
    assert code == ExitCode.OK, out + err
    found = conftest.ndjson(out)
    assert len(found) == 2 and all(str(tmp_path / "lib") in str(r["path"]) for r in found)
    code, out, err = conftest.invoke(
        "search", "海辺で遊ぶ子供たち", "-n", "2", "--album", "海辺", "--json"
    )
    assert code == ExitCode.OK, out + err
    code, out, err = conftest.invoke("album", "--list", "--json")
    assert code == ExitCode.OK and "海辺" in out, out + err


@pytest.mark.slow  # the real models
def test_the_japanese_query_reaches_the_model_after_its_language_code(hub_repos: dict[str, Any],
                                                                      hub: FakeHub, tmp_path: Path) -> None:  # fmt: skip
    from phototag.models.zeroshot import TextEncoder

    done = install_from_hub(MULTI, tmp_path / "w")
    m = load_backbone_manifest(done.folder)
    sp = hub_repos["sp"]
    ja = TextEncoder(m, language="ja")
    ids = ja.tokenizer(["海辺で遊ぶ子供たち"])[0]
    assert ids[0] == sp.token_to_id("jpn_Jpan") and sp.token_to_id("</s>") in ids
    assert TextEncoder(m).tokenizer(["a dog"])[0][0] == sp.token_to_id("eng_Latn")
    # Prompts in several languages: each gets its own code (kana: Japanese).
    mixed = TextEncoder(m).tokenizer(["a dog", "雪の中の犬"])
    assert [mixed[0][0], mixed[1][0]] == [sp.token_to_id("eng_Latn"), sp.token_to_id("jpn_Jpan")]
    assert ids[-1] == sp.token_to_id("<pad>")  # padded to the context length with <pad>
    # Against the PyTorch model on the same ids (Immich's text export, batch of one).
    import torch

    texts = ["海辺で遊ぶ子供たち", "教会での結婚式", "a bowl of ramen"]
    got = ja.encode(texts)
    with torch.no_grad():
        ref = hub_repos["multi"].encode_text(torch.as_tensor(ja.tokenizer(texts)), normalize=True)
    assert np.abs(got - ref.numpy()).max() < 1e-4
    # A vocabulary whose prompts are Japanese binds on the multilingual model.
    from phototag.models.zeroshot import bind, load_vocabulary

    vocab_file = tmp_path / "events-ja.toml"
    vocab_file.write_text(
        'name = "events-ja"\nkind = "zero-shot"\ntemplates = ["{}の写真"]\n'
        '[groups."events-ja"]\ntags = [{tag = "field day", prompts = ["運動会"]}, '
        '{tag = "wedding ceremony", prompts = ["結婚式", "教会での結婚式"]}]\n',
        encoding="utf-8",
    )
    vocab = load_vocabulary(vocab_file)
    assert vocab.prompts[0] == ("運動会の写真",)
    recognizer = bind(vocab, ja)
    assert recognizer.classes.shape == (2 + len(vocab.background), 64)
    scores = recognizer.score(ja.encode(["運動会"]))
    assert scores.shape == (1, len(recognizer.paths)) and np.isfinite(scores).all()


@pytest.mark.slow  # the real models
def test_an_interrupted_download_resumes(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # huggingface_hub writes what it received in chunks of 10 MB; the test model is ~1 MB.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)
    hub.cut.add("visual/model.onnx")
    try:
        done = install_from_hub(TINY, tmp_path / "w")
    except ModelError as e:  # older huggingface_hub: resumed by the next run instead
        assert "resumes next time" in str(e)
        done = install_from_hub(TINY, tmp_path / "w")
    ranges = hub.downloads("visual/model.onnx")
    assert ranges[0] is None and len(ranges) == 2
    assert ranges[1] is not None and int(ranges[1].split("=")[1].rstrip("-")) > 0  # resumed
    verify_files(load_backbone_manifest(done.folder))


@pytest.mark.slow  # the real models
def test_a_file_with_a_wrong_checksum_is_refused_and_nothing_is_left(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.lie.add("textual/model.onnx")
    dest = tmp_path / "w"
    with pytest.raises(ModelError, match=r"does not match the hub's sha256.*nothing installed"):
        install_from_hub(TINY, dest)
    _no_leftovers(dest)
    assert not list((tmp_path / "hf").rglob("*.onnx")) or all(
        p.name != "model.onnx" or "textual" not in str(p) for p in (tmp_path / "hf").rglob("*")
    )
    hub.lie.clear()  # the next try fetches the refused file again, and installs
    assert install_from_hub(TINY, dest).name == TINY
    assert len(hub.downloads("textual/model.onnx")) == 2


def test_an_unreachable_hub_fails_in_seconds_with_the_reason(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # the discard port: nobody listens
    t0 = time.monotonic()
    code, _out, err = conftest.invoke("models", "install", TINY)
    took = time.monotonic() - t0
    assert code == ExitCode.ERROR and took < 5, (took, err)
    text = " ".join(err.split())
    assert "cannot reach the model hub at https://127.0.0.1:9" in text and "Traceback" not in text
    assert TINY not in Catalog.discover().backbones


@pytest.mark.slow  # the real models
def test_offline_with_a_cached_model_installs_from_the_cache(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_from_hub(TINY, tmp_path / "first")
    hub.close()  # the hub is gone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = install_from_hub(TINY, tmp_path / "w")
    verify_files(load_backbone_manifest(done.folder))
    with pytest.raises(ModelError, match="not in the Hugging Face cache"):
        install_from_hub(MULTI, tmp_path / "w")
    # A cached file damaged on disk is refused offline too (the blob name is its sha256).
    blob = next(p for p in (tmp_path / "hf").rglob("blobs/*") if p.stat().st_size > 10_000)
    blob.write_bytes(b"\0" * blob.stat().st_size)
    with pytest.raises(ModelError, match="does not match"):
        install_from_hub(TINY, tmp_path / "w2")
    _no_leftovers(tmp_path / "w2")


def test_names_that_are_not_models_say_so(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model repository immich-app/nope__x"):
        install_from_hub("nope__x", tmp_path / "w")
    code, _out, err = conftest.invoke("models", "install", "a/b/c")
    assert code == ExitCode.ERROR and "no such folder or archive" in err


def test_list_available_shows_the_immich_family() -> None:
    code, out, _err = conftest.invoke("models", "list", "--available", "--json")
    assert code == ExitCode.OK
    rows = {r["name"]: r for r in conftest.ndjson(out)}
    assert {"ViT-B-32__openai", "ViT-B-16-SigLIP2__webli", "nllb-clip-base-siglip__v1",
            "XLM-Roberta-Large-Vit-B-16Plus"} <= set(rows)  # fmt: skip
    b32 = rows["ViT-B-32__openai"]
    assert b32["embedding_dim"] == 512 and b32["license"] == "MIT" and b32["languages"] == "en"
    assert b32["install"] == "phototag models install ViT-B-32__openai"
    assert rows["nllb-clip-base-siglip__v1"]["license"] == "CC-BY-NC-4.0"


# -- the installed model equals the reference ---------------------------------------------


@pytest.mark.parametrize("photo", ["coffee", "chelsea", "astronaut", "rocket"])
@pytest.mark.slow  # the real models
def test_onnx_equals_pytorch_on_real_photos(
    hub_repos: dict[str, Any], hub: FakeHub, tmp_path: Path, photo: str
) -> None:
    """phototag's preprocessing (from preprocess_cfg.json) + the installed ONNX encoders
    against OpenCLIP's transform + PyTorch, on photos from scikit-image."""
    import open_clip
    import torch

    from phototag.media.imaging import preprocess
    from phototag.models.backbones import Backbone
    from phototag.models.zeroshot import TextEncoder

    m = load_backbone_manifest(install_from_hub(TINY, tmp_path / "w").folder)
    model = hub_repos["tiny"]
    from open_clip.transform import PreprocessCfg, image_transform_v2

    transform = image_transform_v2(
        PreprocessCfg(**open_clip.get_model_preprocess_cfg(model)), is_train=False
    )
    im = Image.fromarray(conftest.sample(photo))
    ours = preprocess(im, m.preprocess)
    theirs = transform(im).numpy()
    assert np.abs(ours - theirs).max() < 1e-5  # the same pixels
    got = Backbone(m).predict(ours[None]).embeddings
    with torch.no_grad():
        ref = model.encode_image(torch.as_tensor(theirs)[None], normalize=True).numpy()
    assert np.abs(got - ref).max() < 1e-4
    texts = ["a photo of a cat.", "a cup of coffee", "手巻き寿司 🍣", "an astronaut"]
    tok = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        text_ref = model.encode_text(tok(texts), normalize=True).numpy()
    assert np.abs(TextEncoder(m).encode(texts) - text_ref).max() < 1e-4


@pytest.mark.slow  # parity with OpenCLIP: imports torch (seconds), so not in the fast tier
def test_squash_resize_is_openclips_pixel_for_pixel() -> None:
    """SigLIP's resize_mode 'squash' (the whole photo to size x size), as OpenCLIP does it."""
    import open_clip

    from phototag.media.imaging import preprocess
    from phototag.models.hub import preprocess_from_cfg

    cfg = {"size": [256, 256], "mode": "RGB", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
           "interpolation": "bicubic", "resize_mode": "squash", "fill_color": 0}  # fmt: skip
    transform = open_clip.image_transform(
        256, is_train=False, mean=cfg["mean"], std=cfg["std"], resize_mode="squash",
        interpolation="bicubic",
    )  # fmt: skip
    settings = preprocess_from_cfg(cfg, "test")
    for photo in ("coffee", "chelsea", "rocket"):
        im = Image.fromarray(conftest.sample(photo))
        assert np.abs(preprocess(im, settings) - transform(im).numpy()).max() < 1e-5
    with pytest.raises(ModelError, match="resize_mode 'longest' is not supported"):
        preprocess_from_cfg({**cfg, "resize_mode": "longest"}, "test")


# -- tokenizers ---------------------------------------------------------------------------


def _strings(n: int) -> list[str]:
    """English, Japanese, emoji, HTML entities, full-width and odd spacing, deterministic."""
    from phototag.models.catalog import Catalog

    rng = random.Random(0)
    words: list[str] = []
    for path in Catalog.discover().vocabularies.values():
        words += [w for line in path.read_text(encoding="utf-8").splitlines()
                  for w in line.replace('"', " ").split() if w.isascii() and w.isalpha()]  # fmt: skip
    japanese = ["結婚式", "運動会", "誕生日", "手巻き寿司", "カレーライス", "チューリップ",
                "ドクツルタケ", "海辺で遊ぶ子供たち", "ｶﾀｶﾅ", "ＡＢＣ", "お花見", "七五三"]  # fmt: skip
    extras = ["🍣", "🎂🎉", "&amp;", "&lt;b&gt;", "café", "naïve", "it's", "don't", "\t", "  ",
              "Ⅻ", "①", "x²", "—", "“quoted”", "l'été", "Straße", "İstanbul", "123", "4.5"]  # fmt: skip
    pool = words + japanese * 20 + extras * 10
    return [" ".join(rng.choice(pool) for _ in range(rng.randint(1, 60))) for _ in range(n)]


@pytest.mark.slow  # parity with OpenCLIP: imports torch (seconds), so not in the fast tier
def test_tokenizer_json_gives_the_ids_of_the_port_and_of_openclip() -> None:
    """CLIP's BPE as tokenizer.json, run by the tokenizers library with OpenCLIP's cleaning,
    gives the ids of phototag's port and of OpenCLIP's own tokenizer on 3,000 strings;
    only the padding differs (49407, Hugging Face's pad token, not 0: the text encoder reads
    the first end-of-text and is causal, so what follows it changes nothing)."""
    import open_clip

    from phototag.models.hftokenizer import HubTokenizer, clip_bpe_tokenizer
    from phototag.models.tokenizer import Tokenizer

    vocab = Path(open_clip.tokenizer.default_bpe())
    path = Path(os.environ["PHOTOTAG_CACHE"]) / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    clip_bpe_tokenizer(vocab).save(str(path))
    texts = _strings(3000)
    hub = HubTokenizer(path, 77, clean="lower", pad_token="<|endoftext|>")(texts)
    port = Tokenizer(vocab)(texts)
    reference = open_clip.get_tokenizer("ViT-B-32")(texts).numpy()
    assert np.array_equal(port, reference)
    eot = 49407
    ends = (hub == eot).argmax(axis=1)
    assert (hub[np.arange(len(texts)), ends] == eot).all()
    for i, e in enumerate(ends):
        assert np.array_equal(hub[i, : e + 1], reference[i, : e + 1]), texts[i]
        assert (hub[i, e + 1 :] == eot).all() and (reference[i, e + 1 :] == 0).all()
    assert (ends == 76).sum() > 100  # long strings were truncated the same way too


@pytest.mark.slow  # parity with OpenCLIP: imports torch (seconds), so not in the fast tier
@pytest.mark.parametrize("clean", ["whitespace", "canonicalize", "lower"])
def test_a_sentencepiece_tokenizer_json_gives_the_ids_of_openclips_hf_tokenizer(
    hub_repos: dict[str, Any], tmp_path: Path, clean: str
) -> None:
    """The SentencePiece Unigram tokenizer.json of the multilingual test model, run by
    phototag (tokenizers only) and by OpenCLIP's HFTokenizer (transformers' fast tokenizer
    with padding to max_length and truncation), on 3,000 English and Japanese strings."""
    from open_clip.tokenizer import HFTokenizer

    from phototag.models.hftokenizer import HubTokenizer

    folder = tmp_path / "tok"
    folder.mkdir()
    hub_repos["sp"].save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"pad_token": "<pad>", "model_max_length": 32, "tokenizer_class": "PreTrainedTokenizerFast"}
    ))  # fmt: skip
    texts = _strings(3000) + CORPUS
    reference = HFTokenizer(str(folder), context_length=32, clean=clean)(texts).numpy()
    ours = HubTokenizer(folder / "tokenizer.json", 32, clean=clean, pad_token="<pad>")(texts)
    assert np.array_equal(ours, reference)
    assert (ours[:, -1] != 0).sum() > 100  # long strings truncated the same way


@pytest.mark.slow  # parity with OpenCLIP: imports torch (seconds), so not in the fast tier
def test_cleaning_is_openclips(hub_repos: dict[str, Any]) -> None:
    from open_clip.tokenizer import _clean_canonicalize, _clean_lower, _clean_whitespace

    from phototag.models.hftokenizer import clean_text

    for s in _strings(500):
        assert clean_text(s, "lower") == _clean_lower(s)
        assert clean_text(s, "whitespace") == _clean_whitespace(s)
        assert clean_text(s, "canonicalize") == _clean_canonicalize(s)


def test_a_damaged_tokenizer_json_is_one_clear_error(tmp_path: Path) -> None:
    from phototag.models.hftokenizer import HubTokenizer

    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": "nonsense"')
    with pytest.raises(ModelError, match="cannot read the tokenizer"):
        HubTokenizer(bad, 77)


# -- a real-size model ---------------------------------------------------------------------


@pytest.mark.slow
def test_vit_b_32_exported_as_immich_installs_and_matches_pytorch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A random-weight OpenCLIP ViT-B-32 in Immich's layout (its real size: ~600 MB of
    ONNX), served by the local hub, installed, and run against PyTorch on real photos."""
    import huggingface_hub.utils as hf_utils
    import open_clip
    import torch

    from phototag.media.imaging import preprocess
    from phototag.models.backbones import Backbone
    from phototag.models.hftokenizer import clip_bpe_tokenizer
    from phototag.models.zeroshot import TextEncoder

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    repo = tmp_path / "ViT-B-32__random"
    immich_export(model, open_clip.get_model_config("ViT-B-32"),
                  clip_bpe_tokenizer(Path(open_clip.tokenizer.default_bpe())),
                  CLIP_TOKENIZER_CONFIG, repo)  # fmt: skip
    server = FakeHub({"immich-app/ViT-B-32__random": repo}, tmp_path / "ca.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    hf_utils.close_session()
    try:
        m = load_backbone_manifest(install_from_hub("ViT-B-32__random", tmp_path / "w").folder)
    finally:
        server.close()
        hf_utils.close_session()
    shutil.rmtree(repo)
    from open_clip.transform import PreprocessCfg, image_transform_v2

    transform = image_transform_v2(
        PreprocessCfg(**open_clip.get_model_preprocess_cfg(model)), is_train=False
    )
    photos = [Image.fromarray(conftest.sample(p)) for p in ("coffee", "chelsea", "astronaut")]
    backbone = Backbone(m)
    for im in photos:
        got = backbone.predict(preprocess(im, m.preprocess)[None]).embeddings
        with torch.no_grad():
            ref = model.encode_image(transform(im)[None], normalize=True).numpy()
        assert np.abs(got - ref).max() < 1e-4
    texts = ["a photo of a cat.", "海辺で遊ぶ子供たち", "a wedding ceremony"]
    with torch.no_grad():
        ref = model.encode_text(open_clip.get_tokenizer("ViT-B-32")(texts), normalize=True)
    assert np.abs(TextEncoder(m).encode(texts) - ref.numpy()).max() < 1e-4


def test_a_repository_with_damaged_files_is_refused_and_nothing_is_left(
    hub: FakeHub, hub_repos: dict[str, Any], tmp_path: Path
) -> None:
    """Files that pass the checksum (the hub serves them so) but are not what Immich's layout
    says: one clear ModelError each, and no backbone, staging folder or version left."""
    good = hub_repos["root"] / TINY
    pre = json.loads((good / "visual" / "preprocess_cfg.json").read_text())
    damages: dict[str, Callable[[Path], object]] = {
        "not JSON": lambda f: (f / "config.json").write_text("{not json"),
        "letterbox": lambda f: (f / "visual" / "preprocess_cfg.json").write_text(
            json.dumps({**pre, "resize_mode": "longest"})
        ),
        "no size": lambda f: (f / "visual" / "preprocess_cfg.json").write_text('{"mean": 1}'),
        "tokenizer": lambda f: (f / "textual" / "tokenizer.json").write_text('{"model": 1}'),
        "pad token": lambda f: (f / "textual" / "tokenizer_config.json").write_text(
            '{"pad_token": "<nope>"}'
        ),
        "graph": lambda f: (f / "textual" / "model.onnx").write_bytes(b"not an onnx graph"),
        "missing file": lambda f: (f / "textual" / "tokenizer.json").unlink(),
    }
    dest = tmp_path / "w"
    for i, (what, damage) in enumerate(damages.items()):
        folder = tmp_path / "repos" / f"bad{i}__x"
        shutil.copytree(good, folder)
        damage(folder)
        hub.repos[f"immich-app/bad{i}__x"] = folder
        with pytest.raises(ModelError) as e:
            install_from_hub(f"bad{i}__x", dest)
        assert "\n" not in str(e.value) and "Traceback" not in str(e.value), what
        _no_leftovers(dest)
    code, _out, err = conftest.invoke("models", "install", "bad6__x", "--to", dest)
    assert code == ExitCode.ERROR and "lacks textual/tokenizer.json" in err


@pytest.mark.slow  # the real models
def test_a_kill_at_any_moment_of_a_hub_install_leaves_nothing_or_the_whole_backbone(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL 'models install' (in a process of its own, against the local hub, an empty
    cache each time) at points of its progress seen from outside: with 10, 50 and 90 % of the
    repository sent (the hub holds the rest back, so the kill lands mid-download), with the
    backbone half copied into the weights folder, half staged, and in place. Afterwards the
    backbone is absent or whole, and the next install (from a cache a kill left half-filled)
    clears what the kills left and installs."""
    import subprocess
    import sys

    dest = tmp_path / "w"
    code = (
        "import sys; from pathlib import Path; from phototag.models.hub import install_from_hub;"
        "install_from_hub(sys.argv[1], Path(sys.argv[2]))"
    )
    cmd = [sys.executable, "-c", code, TINY, str(dest)]
    size = sum(f.stat().st_size for f in hub.repos[f"immich-app/{TINY}"].rglob("*") if f.is_file())

    def run(i: int, reached: Callable[[], bool], what: str) -> None:
        p = subprocess.Popen(cmd, env={**os.environ, "HF_HOME": str(tmp_path / f"hf{i}")})
        wait_until(reached, what, p)
        kill(p)
        visible = (
            sorted(e.name for e in dest.iterdir() if e.name[0] != ".") if dest.exists() else []
        )
        assert visible in ([], [TINY]), visible
        if visible:  # whole, not half of a backbone
            verify_files(Catalog.discover([dest]).backbone(TINY))

    for i, share in enumerate((0.1, 0.5, 0.9)):
        hub.hold(int(share * size))
        run(i, hub.holding.is_set, f"{share:.0%} of the repository sent")
        hub.drop()
        assert not dest.exists()  # nothing is installed before everything is downloaded
    # The files downloaded: by the bytes written into the weights folder (copied from the
    # cache, then staged), then by the backbone's entry (a link) appearing.
    for i, (what, reached) in enumerate((("half of the backbone copied", 0.5 * size),
                                         ("half of the backbone staged", 1.5 * size),
                                         ("the backbone in place", math.inf)), 3):  # fmt: skip
        since = time.time_ns()

        def progress(since: int = since) -> float:
            return math.inf if changed_since(dest / TINY, since) else written_since(dest, since)

        run(i, lambda r=reached, f=progress: f() >= r, what)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf1"))  # what the kill at 50 % left
    done = install_from_hub(TINY, dest)
    verify_files(load_backbone_manifest(done.folder))
    link = dest / TINY
    assert sorted(p.name for p in dest.iterdir()) == sorted([TINY, os.readlink(link)])
