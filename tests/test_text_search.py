"""Text search and the whole open-vocabulary flow through the command line:
export (ViT-B-32, random weights) -> install -> scan -> search -> album, then retag."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from conftest import invoke, ndjson
from PIL import Image

from phototag.cli.console import ExitCode
from phototag.index import Index


@pytest.fixture
def lib(make_photo: Callable[..., Path], tmp_path: Path) -> Path:
    # At most twice the input size: JPEG draft decoding does not reduce them, so the
    # embeddings are exactly what OpenCLIP computes from the same file.
    make_photo("lib/coffee.jpg", "coffee", size=(420, 280))
    make_photo("lib/cat.jpg", "chelsea", size=(400, 300))
    make_photo("lib/astronaut.png", "astronaut", size=(300, 300))
    make_photo("lib/sub/rocket.jpg", "rocket", size=(300, 448))
    return tmp_path / "lib"


@pytest.mark.slow
def test_export_install_scan_search_album_end_to_end_with_vit_b_32(lib: Path) -> None:
    code, out, err = invoke(
        "models", "export", "clip", "--arch", "ViT-B-32", "--pretrained", "none"
    )
    assert code == ExitCode.OK, err
    assert "installed clip-vit-b-32-none" in err or "installed clip-vit-b-32-random" in err
    code, out, _ = invoke("models", "list", "--json")
    listing = json.loads(out)
    backbone = next(
        b["name"] for b in listing["backbones"] if b["kind"] == "zero-shot" and b["installed"]
    )
    runs_on = {r["name"]: r["backbone"] for r in listing["recognizers"]}
    assert runs_on["scene"] == runs_on["mushroom"] == backbone
    assert runs_on["imagenet"] == "efficientnet-lite0"

    code, _, err = invoke(
        "scan", lib, "-m", "scene", "-m", "food", "--write", "none", "--device", "cpu"
    )
    assert code == ExitCode.OK, err
    assert "4 files: 4 tagged" in err
    with Index.open(Path(os.environ["PHOTOTAG_INDEX"])) as idx:
        assert idx.count_embeddings(backbone) == 4
        coffee = idx.photo(lib / "coffee.jpg")
        assert coffee is not None and coffee.tags["scene"] and coffee.tags["food"]

    code, out, err = invoke("search", "a cup of coffee on a table", "--json", "-n", "3")
    assert code == ExitCode.OK, err
    found = ndjson(out)
    assert len(found) == 3
    scores = [float(str(f["score"])) for f in found]
    assert scores == sorted(scores, reverse=True)
    # The scores are cosines of PyTorch's embeddings of the same files (float16 in the index).
    torch.manual_seed(0)
    model, _, transform = open_clip.create_model_and_transforms("ViT-B-32")
    model.eval()
    with torch.no_grad():
        t = model.encode_text(open_clip.get_tokenizer("ViT-B-32")(["a cup of coffee on a table"]))
        t = (t / t.norm(dim=-1, keepdim=True))[0].numpy()
        for f in found:
            im = model.encode_image(transform(Image.open(str(f["path"])).convert("RGB"))[None])[0]
            want = float(np.dot(t, (im / im.norm()).numpy()))
            assert float(str(f["score"])) == pytest.approx(want, abs=3e-3), f["path"]

    code, out, _ = invoke("search", "a rocket", "--json", "--under", lib / "sub")
    assert [Path(str(f["path"])).name for f in ndjson(out)] == ["rocket.jpg"]
    code, out, _ = invoke("search", "anything", "--json", "--min-score", "1.0")
    assert code == ExitCode.OK and ndjson(out) == []

    code, _, err = invoke("search", "a cup of coffee on a table", "-n", "2", "--album", "coffee")
    assert code == ExitCode.OK, err
    albums = Path(os.environ["XDG_DATA_HOME"]) / "phototag" / "albums"
    entries = sorted(p.name for p in (albums / "coffee").iterdir() if not p.name.startswith("."))
    assert len(entries) == 2
    code, out, _ = invoke("album", "--list", "--json")
    [listed] = [a for a in ndjson(out) if a["name"] == "coffee"]
    assert "search" in json.dumps(listed)
    code, _, err = invoke("album", "--refresh")  # the text query is stored and run again
    assert code == ExitCode.OK, err
    again = sorted(p.name for p in (albums / "coffee").iterdir() if not p.name.startswith("."))
    assert again == entries

    # Tag albums from zero-shot tags: the best scene tag of the coffee photo gathers it.
    top = coffee.tags["scene"][0].tag
    code, _, err = invoke("album", "--tag", top, "-m", "scene", "--out", albums / "by-tag")
    assert code == ExitCode.OK, err
    assert any(p.name.endswith("coffee.jpg") for p in (albums / "by-tag").iterdir())


@pytest.mark.usefixtures("fake_onnx")
def test_search_says_what_is_missing(
    lib: Path, tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = invoke("scan", lib, "-m", "imagenet", "--write", "none", "--device", "cpu")
    assert code == ExitCode.OK, err
    code, _, err = invoke("search", "a cat")
    assert code == ExitCode.USAGE
    assert "needs a zero-shot" in err and "models list" in err
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    code, _, err = invoke("search", "a cat")
    assert code == ExitCode.USAGE
    assert "holds no clip-tiny embeddings" in " ".join(err.split()) and "phototag scan" in err
    code, _, err = invoke("search", "  ")
    assert code == ExitCode.USAGE and "empty" in err
    code, _, err = invoke("search", "a cat", "--backbone", "efficientnet-lite0")
    assert code == ExitCode.USAGE and "not an installed zero-shot backbone" in " ".join(err.split())


@pytest.mark.slow
def test_retag_rescores_zero_shot_tags_from_stored_embeddings_without_decoding(
    lib: Path, tiny_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    code, _, err = invoke("scan", lib, "-m", "fashion-color", "--write", "none", "--threshold", "0",
                          "--top-k", "100")  # fmt: skip
    assert code == ExitCode.OK, err
    assert "encoding the 44 prompts of 'fashion-color' with clip-tiny" in " ".join(err.split())
    code, _, err = invoke("scan", lib, "-m", "fashion-color", "--write", "none", "--threshold", "0",
                          "--top-k", "100")  # fmt: skip
    assert "4 unchanged" in err and "encoding" not in err  # cached
    # A user's own copy of the vocabulary, with a tag added, found first.
    mine = tmp_path / "mine"
    (mine / "vocabularies").mkdir(parents=True)
    original = (
        Path(__file__).parent.parent / "weights/vocabularies/fashion-color.toml"
    ).read_text()
    (mine / "vocabularies" / "fashion-color.toml").write_text(
        original.replace('"white", "black",', '"white", "black", "teal",')
    )
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", os.pathsep.join([str(mine), str(tiny_clip)]))

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("retag decoded a photo")

    monkeypatch.setattr("phototag.media.imaging.decode", no_decoding)
    monkeypatch.setattr("phototag.tagging.loader.decode", no_decoding)
    code, _, err = invoke("retag", "-m", "fashion-color", "--threshold", "0", "--top-k", "100",
                          "--write", "none")  # fmt: skip
    assert code == ExitCode.OK, err
    assert "4 changed" in err
    with Index.open(Path(os.environ["PHOTOTAG_INDEX"])) as idx:
        view = idx.photo(lib / "cat.jpg")
        assert view is not None
        assert "teal" in {c.tag for c in view.tags["fashion-color"]}


@pytest.mark.slow
def test_scan_backbone_option_switches_between_zero_shot_and_imagenet_scene(
    lib: Path, tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phototag.models.catalog import Catalog

    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    vocab = {}
    for backbone in ("efficientnet-lite0", "clip-tiny"):
        catalog = Catalog.discover()
        catalog.preferred = backbone
        vocab[backbone] = set(catalog.recognizer("scene").paths)
    for backbone, other in [
        ("efficientnet-lite0", "clip-tiny"),
        ("clip-tiny", "efficientnet-lite0"),
    ]:
        code, _, err = invoke("scan", lib, "-m", "scene", "--backbone", backbone,
                              "--write", "none", "--threshold", "0")  # fmt: skip
        assert code == ExitCode.OK, err
        assert "4 tagged" in err  # the other backbone's results are replaced, not kept
        with Index.open(Path(os.environ["PHOTOTAG_INDEX"])) as idx:
            # Over the whole library: the ImageNet scene recognizer needs evidence of a scene
            # (a [evidence] share), which the coffee cup alone does not give.
            paths = {
                row[0]
                for row in idx.conn.execute("SELECT path FROM tags WHERE recognizer = 'scene'")
            }
            assert paths and paths <= vocab[backbone] and paths - vocab[other]


@pytest.mark.slow
def test_similar_and_duplicates_compare_the_classifiers_embeddings_unless_told(
    lib: Path, tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CLIP installed a scan stores two embeddings per photo; the duplicate threshold
    was measured on EfficientNet-Lite0's, so that is what similar/duplicates use by default."""
    from phototag.library.search import by_embedding

    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    code, _, err = invoke("scan", lib, "--write", "none")
    assert code == ExitCode.OK, err
    with Index.open(Path(os.environ["PHOTOTAG_INDEX"])) as idx:
        assert idx.count_embeddings("clip-tiny") == idx.count_embeddings("efficientnet-lite0") == 4
        for backbone in ("efficientnet-lite0", "clip-tiny"):
            q = idx.embedding(lib / "coffee.jpg", backbone)
            assert q is not None
            want = [
                [os.fsdecode(s.path), round(s.score, 4)]
                for s in by_embedding(
                    idx, q, backbone, n=3, exclude=idx.photo_id(lib / "coffee.jpg")
                )
            ]
            args = ["similar", lib / "coffee.jpg", "-n", "3", "--json"]
            if backbone == "clip-tiny":
                args += ["--backbone", backbone]
            code, out, _ = invoke(*args)
            assert [[f["path"], f["score"]] for f in ndjson(out)] == want, backbone


@pytest.mark.slow
def test_scanning_and_searching_never_import_torch(
    lib: Path, tiny_clip: Path, tmp_path: Path
) -> None:
    """PyTorch and OpenCLIP are for 'models export' only: a scan and a search with a
    zero-shot backbone run on onnxruntime and phototag's own tokenizer."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from phototag.index import Index;"
        "from phototag.tagging.scan import scan, ScanOptions; from phototag.library.search import by_text\n"
        f"idx = Index.open(Path({str(tmp_path / 'i.sqlite')!r}))\n"
        f"list(scan([Path({str(lib)!r})], idx, ScanOptions(recognizers=['scene', 'mushroom'])))\n"
        "assert by_text(idx, 'a cat on a sofa', n=2)\n"
        "bad = {'torch', 'open_clip', 'torchvision'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PHOTOTAG_WEIGHTS": str(tiny_clip)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_zero_shot_tags_reach_the_sidecars_with_their_flag_in_the_hierarchy(
    lib: Path, tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    code, _, err = invoke("scan", lib / "sub", "-m", "mushroom", "--threshold", "0", "--top-k", "3")
    assert code == ExitCode.OK, err
    from phototag.metadata.keywords import Field
    from phototag.metadata.xmp import Sidecar, sidecar_path

    sidecar = Sidecar.read(sidecar_path(lib / "sub" / "rocket.jpg", "full"))
    assert sidecar is not None
    groups = {"deadly poisonous", "poisonous", "edible"}
    written = sidecar.fields()[Field.HIERARCHICAL]
    hierarchical = [k for k in written if k.startswith("phototag|mushroom|")]
    assert hierarchical and all(k.split("|")[2] in groups for k in hierarchical)


@pytest.mark.slow
def test_doctor_checks_zero_shot_models_without_encoding_vocabularies(
    tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    code, out, err = invoke("doctor", "--json")
    assert code == ExitCode.OK, out + err
    models = json.loads(out)["sections"]["models"]
    assert models["backbone clip-tiny"].startswith("ok, sha256 verified")
    assert models["recognizer mushroom"] == "48 tags on clip-tiny"
    assert models["recognizer imagenet"] == "1000 tags on efficientnet-lite0"
    assert not (Path(os.environ["PHOTOTAG_CACHE"]) / "text").exists()  # nothing was encoded
