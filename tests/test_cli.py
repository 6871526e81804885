"""The command line through Typer's CliRunner: exit codes, JSON shapes, and the index afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke, ndjson

from phototag.cli.app import app
from phototag.cli.console import ExitCode
from phototag.index import Index


@pytest.fixture
def index(tmp_path: Path) -> Path:
    return tmp_path / "idx.sqlite"


@pytest.mark.usefixtures("fake_onnx")
def test_scan_of_a_clean_folder_exits_0_and_fills_the_index(library: Path, index: Path) -> None:
    code, _, err = invoke("scan", library / "2024", "--index", index, "--device", "cpu")
    assert code == ExitCode.OK, err
    assert "4 files: 4 tagged" in err
    with Index.open(index) as idx:
        assert idx.count_photos() == 4


@pytest.mark.usefixtures("fake_onnx")
def test_scan_with_bad_files_exits_1_names_each_and_still_tags_the_rest(
    library: Path, index: Path
) -> None:
    code, _, err = invoke("scan", library, "--index", index, "--device", "cpu")
    assert code == ExitCode.FILES_FAILED
    for name in ("empty.jpg", "text.jpg", "truncated.jpg", "bomb.png", "broken.jpg"):
        assert name in err
    assert "new\\nline.jpg" not in err  # a good file with a newline is not an error...
    with Index.open(index) as idx:
        assert idx.count_photos() == 6  # ...and it is in the index


@pytest.mark.slow
def test_scan_json_is_one_record_per_photo_and_per_failure(library: Path, index: Path) -> None:
    code, out, _ = invoke(
        "scan", library, "--index", index, "--json", "--device", "cpu", "-m", "food", "-m", "animal"
    )
    records = ndjson(out)
    photos = [r for r in records if "tags" in r]
    errors = [r for r in records if "error" in r]
    assert code == ExitCode.FILES_FAILED
    assert len(photos) == 6 and len(errors) == 6
    coffee = next(r for r in photos if str(r["path"]).endswith("2024/coffee.jpg"))
    assert set(coffee["tags"]) == {"food", "animal"}  # type: ignore[arg-type]
    food = coffee["tags"]["food"]  # type: ignore[index]
    assert {"tag", "score", "path"} <= set(food[0])
    assert [c["score"] for c in food] == sorted((c["score"] for c in food), reverse=True)


@pytest.mark.usefixtures("fake_onnx")
def test_quiet_prints_nothing_on_success(library: Path, index: Path) -> None:
    code, out, err = invoke(
        "scan", library / "2024", "--index", index, "--quiet", "--device", "cpu"
    )
    assert (code, out, err) == (0, "", "")
    code, out, err = invoke("scan", library / "bad", "--index", index, "--quiet")
    assert code == ExitCode.FILES_FAILED and out == "" and "empty.jpg" in err


def test_usage_errors_exit_2(index: Path, tmp_path: Path) -> None:
    assert invoke("scan", tmp_path / "nope", "--index", index)[0] == ExitCode.USAGE
    code, _, err = invoke("classify", tmp_path / "nope.jpg")
    assert code == ExitCode.USAGE and "no such file" in err, err
    assert invoke("scan", tmp_path, "--threshold", "7", "--index", index)[0] == ExitCode.USAGE
    code, _, err = invoke("scan", tmp_path, "-m", "unicorns", "--index", index)
    assert code == ExitCode.USAGE and "no recognizer named 'unicorns'" in err


def test_an_index_that_is_not_a_database_exits_3_and_is_left_alone(tmp_path: Path) -> None:
    bad = tmp_path / "idx.sqlite"
    bad.write_text("not a database")
    code, _, err = invoke("scan", tmp_path, "--index", bad)
    assert code == ExitCode.ERROR and "not a usable phototag index" in err
    assert bad.read_text() == "not a database"


@pytest.mark.slow
def test_classify_json_has_the_classic_shape(library: Path) -> None:
    code, out, _ = invoke(
        "classify", library / "2024" / "coffee.jpg", "--json", "-m", "imagenet", "--device", "cpu"
    )
    assert code == 0
    (doc,) = ndjson(out)
    assert set(doc) == {"path", "model", "candidates"}
    assert doc["model"] == "imagenet"
    assert doc["candidates"][0]["tag"] == "espresso"  # type: ignore[index]
    assert 0.5 < doc["candidates"][0]["score"] <= 1  # type: ignore[index]


@pytest.mark.usefixtures("fake_onnx")
def test_classify_table_and_a_bad_file(library: Path) -> None:
    code, out, err = invoke(
        "classify", library / "2024" / "cat.png", library / "bad" / "text.jpg", "--device", "cpu"
    )
    assert code == ExitCode.FILES_FAILED
    assert "cat" in out and "animal" in out
    assert "text.jpg" in err


@pytest.mark.slow
def test_show_and_tags_read_the_index(library: Path, index: Path) -> None:
    invoke("scan", library / "2024", "--index", index, "--device", "cpu")
    code, out, _ = invoke("show", library / "2024" / "coffee.jpg", "--index", index, "--json")
    assert code == 0
    (view,) = ndjson(out)
    assert "espresso" in [c["tag"] for c in view["tags"]["food"]]  # type: ignore[index]
    # No raw ImageNet classes by default, so no tag is listed twice (issue 14).
    assert "imagenet" not in view["tags"]  # type: ignore[operator]
    names = [c["tag"] for cands in view["tags"].values() for c in cands]  # type: ignore[union-attr]
    assert len(names) == len(set(names)), names
    code, out, _ = invoke("show", library / "2024" / "coffee.jpg", "--index", index)
    assert "espresso" in out and "600x400" in out
    code, _, err = invoke("show", library / "bad" / "text.jpg", "--index", index)
    assert code == ExitCode.FILES_FAILED and "not in the index" in err
    code, out, _ = invoke("tags", "--index", index, "--json")
    counts = {(r["model"], r["tag"]): r["photos"] for r in ndjson(out)}
    assert counts[("animal", "cat")] == 2 and counts[("food", "espresso")] == 2
    assert not any(model == "imagenet" for model, _ in counts)


@pytest.mark.usefixtures("fake_onnx")
def test_forget_drops_photos_under_a_folder(library: Path, index: Path) -> None:
    invoke("scan", library, "--index", index, "--device", "cpu")
    code, _, err = invoke("forget", library / "2024", "--index", index)
    assert code == 0 and "dropped 4" in err
    with Index.open(index) as idx:
        assert idx.count_photos() == 2


@pytest.mark.usefixtures("fake_onnx")
def test_doctor_reports_providers_models_and_the_index(library: Path, index: Path) -> None:
    invoke("scan", library / "2024", "--index", index, "--device", "cpu")
    code, out, _ = invoke("doctor", "--index", index, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["problems"] == []
    assert "CPUExecutionProvider" in report["sections"]["runtime"]["providers asked for"]
    assert report["sections"]["index"]["integrity"] == "ok"
    assert report["sections"]["index"]["photos"] == 4
    assert report["sections"]["models"]["backbone efficientnet-lite0"].startswith(
        "ok, sha256 verified"
    )


def test_every_command_has_help_text() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert command.help and len(command.help.strip()) > 20, name
        code, out, _ = invoke(name, "--help")
        assert code == 0 and "Usage" in out
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{name} --{param.name} has no help"


def test_help_does_not_import_the_heavy_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, phototag.cli.app;"
        "heavy = {'onnxruntime', 'numpy', 'PIL'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# -- retag, recognizers remove, write and clean say and do what they say (fix-write) -----


def _sidecars(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.xmp"))


@pytest.mark.usefixtures("fake_onnx")
def test_retag_says_which_changed_photos_have_no_file_and_writes_them_when_asked(
    library: Path, index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photo never written (scan --write none, or no tags then) gets no file from a plain
    retag (docs/cli.md), but the retag says so and how to write it; --write writes it."""
    import phototag.tagging.retag as retag_module
    from phototag.index.records import Candidate

    lib = library / "2024"
    invoke("scan", lib, "--index", index, "--device", "cpu", "--write", "none", "-q")
    assert _sidecars(lib) == []
    photo = sorted(lib.glob("*.jpg"))[0]

    def fake_retag(idx: Index, *a: object, **kw: object) -> retag_module.RetagReport:
        pid = idx.photo_id(photo)
        assert pid is not None
        with idx.transaction():
            idx.set_results(pid, "mine", "fp", [Candidate("cup", 0.9, "mine/cup")])
        return retag_module.RetagReport(
            photos=1, changed=1, changed_ids=[pid], recognizers=["mine"]
        )

    monkeypatch.setattr(retag_module, "retag", fake_retag)
    code, _, err = invoke("retag", "-m", "imagenet", "--index", index)
    assert code == 0, err
    assert "1 of them have never been written" in " ".join(err.split()) and _sidecars(lib) == []
    code, _, err = invoke("retag", "-m", "imagenet", "--write", "sidecar", "--index", index)
    assert code == 0, err
    assert "sidecars: 1 written, 0 unchanged, 0 failed" in err
    assert "embedded" not in err
    (sidecar,) = _sidecars(lib)
    assert "phototag|mine|cup" in sidecar.read_text(encoding="utf-8")
    code, _, err = invoke("retag", "-m", "imagenet", "--write", "none", "--index", index)
    assert code == 0 and "written" not in err  # no line for a mode not used


@pytest.mark.usefixtures("fake_onnx")
def test_removing_a_recognizer_takes_its_tags_out_of_the_index_and_the_files(
    library: Path, index: Path, tmp_path: Path
) -> None:
    from test_train import _save

    from phototag.index.records import Candidate

    lib = library / "2024"
    invoke("scan", lib, "--index", index, "--device", "cpu", "-q")
    _save(tmp_path / "w", "mine", 0.5)
    photo = sorted(lib.glob("*.jpg"))[0]
    with Index.open(index) as idx:
        pid = idx.photo_id(photo)
        assert pid is not None
        with idx.transaction():
            idx.set_results(pid, "mine", "fp", [Candidate("cup", 0.9, "mine/cup")])
    assert invoke("write", lib, "--index", index)[0] == 0
    sidecar = photo.with_name(photo.name + ".xmp")
    sidecar.write_text(
        sidecar.read_text(encoding="utf-8").replace(
            "<rdf:li>phototag|mine|cup</rdf:li>",
            "<rdf:li>phototag|mine|cup</rdf:li><rdf:li>Holiday</rdf:li>",
        ),
        encoding="utf-8",
    )  # a user's keyword beside phototag's, which must stay
    assert "phototag|mine|cup" in sidecar.read_text(encoding="utf-8")

    code, _, err = invoke("recognizers", "remove", "mine", "--to", tmp_path / "w", "--index", index)
    assert code == 0, err
    assert "its tags deleted from 1 photos" in err
    with Index.open(index) as idx:
        assert not any(t.startswith("mine/") for p in idx.photos_under([lib]) for t in p.tag_paths)
    text = sidecar.read_text(encoding="utf-8")
    assert "mine" not in text and "Holiday" in text
    code, out, _ = invoke("tags", "--index", index, "--json")
    assert not any(r["model"] == "mine" for r in ndjson(out))


@pytest.mark.usefixtures("fake_onnx")
def test_write_counts_each_kind_of_target_once_under_its_own_label(
    library: Path, index: Path
) -> None:
    lib = library / "2024"
    invoke("scan", lib, "--index", index, "--device", "cpu", "--write", "none", "-q")
    code, _, err = invoke("write", lib, "--index", index)
    assert code == 0, err
    written = len(_sidecars(lib))
    assert written > 0
    assert f"sidecars: {written} written, {4 - written} unchanged, 0 failed" in err
    assert "embedded" not in err
    # Switching to embedded: each photo is handled once as a photo; the sidecars phototag
    # takes its values back from are counted as sidecars, not as photos a second time.
    code, _, err = invoke("write", "--write", "embed", lib, "--index", index)
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if "written" in ln]
    assert len(lines) == 2, err
    embedded = next(ln for ln in lines if ln.startswith("photos (embedded)"))
    numbers = [int(w) for w in embedded.replace(",", " ").split() if w.isdigit()]
    assert sum(numbers) == 4, embedded
    side = next(ln for ln in lines if ln.startswith("sidecars"))
    assert sum(int(w) for w in side.replace(",", " ").split() if w.isdigit()) == written


@pytest.mark.usefixtures("fake_onnx")
def test_a_path_that_is_neither_on_disk_nor_indexed_is_an_error_not_a_no_op(
    library: Path, index: Path, tmp_path: Path
) -> None:
    invoke("scan", library / "2024", "--index", index, "--device", "cpu", "-q")
    for command in ("write", "clean", "forget"):
        code, _, err = invoke(command, tmp_path / "nope", library / "2024", "--index", index)
        assert code == ExitCode.USAGE, (command, err)
        assert "nope" in err and "written" not in err and "dropped" not in err, (command, err)
    with Index.open(index) as idx:
        assert idx.count_photos() == 4  # forget dropped nothing
    # A photo gone from disk that the index holds can still be cleaned and forgotten.
    gone = library / "2024" / "coffee.jpg"
    gone.unlink()
    assert invoke("clean", gone, "--index", index)[0] == 0
    code, _, err = invoke("forget", gone, "--index", index)
    assert code == 0 and "dropped 1" in err
