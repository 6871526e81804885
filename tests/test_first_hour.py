"""Issue 14, "the first hour": what a new user trips on in an hour of use, each example a test.

Training on the default install, names that are checked, help that tells, output that adds
up, settings that stick. The commands run through CliRunner and the tests look at the
index, the weights folder and the album folders afterwards, not only at the text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
@pytest.mark.slow  # the real models
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
    assert len(list((user_weights_dir() / "recognizers").glob("mine.head-*.npz"))) == 1


@pytest.mark.slow  # the real models
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
    assert code == 2 and "already have" in err and "--force" in err and "--name" in err
    assert (folder / "pets.toml").read_bytes() == before
    code, _, err = invoke(
        "train", train_dir, "--name", "pets", "--no-augment", "--seed", "3", "--force"
    )
    assert code == 0, err
    assert (folder / "pets.toml").read_bytes() != before  # the seed is in the manifest

    code, _, err = invoke("train", train_dir, "--name", "animal", "--no-augment", "--force")
    assert code == 0, err
    assert (folder / "animal.toml").is_file()


@pytest.mark.slow  # the real models
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


@pytest.mark.slow  # the real models
def test_training_reports_progress_per_photo(train_dir: Path, tmp_path: Path) -> None:
    from phototag.config import Device
    from phototag.training.train import TrainOptions, train_from_folder

    seen: list[tuple[int, int]] = []
    train_from_folder(
        train_dir,
        TrainOptions(name="p", out_dir=tmp_path / "w", augment=False, device=Device.CPU),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (6, 6)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) >= 6


# -- names are checked; nothing silently does nothing ---------------------------------------


@pytest.fixture
def scanned(tmp_path: Path, make_photo: Callable[..., Path], index: Path) -> Path:
    """A cat and a cup of coffee, scanned with the default recognizers (no sidecars)."""
    make_photo("Pictures/cat.jpg", "chelsea", taken="2023:06:10 12:00:00")
    make_photo("Pictures/coffee.jpg", "coffee", taken="2024:01:05 08:00:00")
    code, _, err = invoke("scan", tmp_path / "Pictures", "--index", index, "--write", "none")
    assert code == 0, err
    return tmp_path / "Pictures"


def albums(index: Path) -> list[str]:
    from phototag.index import Index

    with Index.open(index, create=False) as idx:
        return [a.name for a in idx.albums()]


def albums_dir() -> Path:
    from phototag.config import default_albums_dir

    return default_albums_dir()


@pytest.mark.slow  # the real models (its fixture scans)
def test_an_album_of_a_zero_shot_tag_says_it_needs_a_zero_shot_backbone(
    scanned: Path, index: Path
) -> None:
    code, out, err = invoke("album", "--tag", "wedding ceremony", "--index", index)
    assert code == 2
    assert "zero-shot" in err and "phototag models install" in err
    assert "Traceback" not in out + err
    assert albums(index) == [] and not albums_dir().exists()


@pytest.mark.slow  # the real models (its fixture scans)
def test_a_misspelt_tag_gets_the_closest_tags_and_no_album(scanned: Path, index: Path) -> None:
    code, _, err = invoke("album", "--tag", "weding", "--index", index)
    assert code == 2 and "'wedding'" in err
    code, _, err = invoke("album", "--tag", "cta", "--index", index)
    assert code == 2 and "'cat'" in err
    code, _, err = invoke("album", "--tag", "zzqxw", "--index", index)
    assert code == 2 and "no recognizer gives a tag 'zzqxw'" in err
    code, _, err = invoke("album", "--tag", "cat", "--not", "weding", "--index", index)
    assert code == 2 and "'wedding'" in err
    assert albums(index) == []


@pytest.mark.slow  # the real models (its fixture scans)
def test_a_known_tag_no_photo_has_makes_no_album_unless_allowed(scanned: Path, index: Path) -> None:
    code, _, err = invoke("album", "--tag", "dog", "--index", index)
    assert code == 2 and "--allow-empty" in err
    assert albums(index) == []
    code, _, err = invoke("album", "--tag", "dog", "--allow-empty", "--index", index)
    assert code == 0, err
    assert albums(index) == ["dog"] and (albums_dir() / "dog").is_dir()


@pytest.mark.slow  # the real models (its fixture scans)
def test_album_remove_takes_back_what_phototag_made_and_keeps_the_users_files(
    scanned: Path, index: Path
) -> None:
    assert invoke("album", "--tag", "cat", "--html", "--index", index)[0] == 0
    folder = albums_dir() / "cat"
    entries = [p for p in folder.iterdir() if p.is_symlink()]
    assert len(entries) == 1 and (folder / "index.html").exists()
    code, _, err = invoke("album", "--remove", "cta", "--index", index)
    assert code == 2 and "'cat'" in err
    assert folder.is_dir()

    (folder / "my notes.txt").write_text("mine")
    code, _, err = invoke("album", "--remove", "cat", "--index", index)
    assert code == 0, err
    assert albums(index) == []
    assert sorted(p.name for p in folder.iterdir()) == ["my notes.txt"]
    assert (scanned / "cat.jpg").is_file()  # the photo itself is never touched

    assert invoke("album", "--tag", "espresso", "--tag", "cat", "--any", "--index", index)[0] == 0
    assert invoke("album", "--remove", "espresso or cat", "--index", index)[0] == 0
    assert not (albums_dir() / "espresso or cat").exists()


@pytest.mark.slow  # the real models (its fixture scans)
def test_album_list_has_a_header_and_counts(scanned: Path, index: Path) -> None:
    assert invoke("album", "--tag", "cat", "--index", index)[0] == 0
    assert invoke("album", "--tag", "animal", "--since", "2023", "--out", albums_dir() / "pets",
                  "--index", index)[0] == 0  # fmt: skip
    code, out, err = invoke("album", "--list", "--index", index)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["album", "photos", "query", "link"]
    cat = next(line for line in lines if line.split()[0] == "cat")
    assert cat.split()[1:3] == ["1", "symlink"]  # no query: the name says it
    pets = next(line for line in lines if line.split()[0] == "pets")
    assert "animal taken 2023 to ..." in pets
    assert "2 albums" in err
    rows = {r["name"]: r for r in ndjson(invoke("album", "--list", "--json", "--index", index)[1])}
    assert rows["cat"]["photos"] == 1 and rows["pets"]["photos"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ("tags", "-m", "nosuch"),
        ("album", "--tag", "cat", "--model", "nosuch"),
        ("album", "--tag", "cat", "--under", "/no/such/Picturse"),
        ("similar", "PHOTO", "--by", "tags", "-m", "nosuch"),
        ("similar", "PHOTO", "--under", "/no/such/Picturse"),
    ],
)
@pytest.mark.slow  # the real models (its fixture scans)
def test_unknown_names_and_missing_folders_are_usage_errors(
    scanned: Path, index: Path, args: tuple[str, ...]
) -> None:
    argv = [str(scanned / "cat.jpg") if a == "PHOTO" else a for a in args]
    code, out, err = invoke(*argv, "--index", index)
    assert code == 2, (out, err)
    assert "error:" in err and "Traceback" not in out + err
    assert ("nosuch" in err and "animal" in err) or "no such folder" in err
    assert albums(index) == []


@pytest.mark.slow  # the real models (its fixture scans)
def test_since_takes_a_year_or_a_month(scanned: Path, index: Path) -> None:
    def found(*args: str) -> list[str]:
        code, out, err = invoke("album", "--tag", "animal", "--tag", "food", "--any", "--json",
                                *args, "--index", index)  # fmt: skip
        assert code == 0, err
        return sorted(Path(str(m["path"])).name for m in ndjson(out))

    assert found("--since", "2023") == ["cat.jpg", "coffee.jpg"]
    assert found("--since", "2023-07") == ["coffee.jpg"]
    assert found("--until", "2023") == ["cat.jpg"]
    assert found("--until", "2023-06") == ["cat.jpg"]
    assert found("--since", "2024-01", "--until", "2024-01") == ["coffee.jpg"]
    code, _, err = invoke("album", "--tag", "cat", "--since", "2023-13", "--index", index)
    assert code == 2 and "YYYY-MM" in err


@pytest.mark.slow  # the real models (its fixture scans)
def test_tag_remove_of_a_tag_the_photo_never_had_says_so(scanned: Path, index: Path) -> None:
    from phototag.index import Index

    code, _, err = invoke("tag", "remove", scanned / "cat.jpg", "elephant", "--index", index)
    assert code == 2 and "no tag 'elephant'" in err
    code, _, err = invoke("tag", "remove", scanned / "cat.jpg", "cat", "--index", index)
    assert code == 0, err
    with Index.open(index, create=False) as idx:
        assert list(idx.corrections(action="remove").values()) == [["cat"]]


@pytest.mark.slow  # the real models (its fixture scans)
def test_show_and_tag_on_a_missing_file_and_on_an_album_entry(
    scanned: Path, index: Path, tmp_path: Path
) -> None:
    from phototag.index import Index

    code, _, err = invoke("show", tmp_path / "nope.jpg", "--index", index)
    assert code == 1 and "no such file" in err
    (tmp_path / "elsewhere.jpg").write_bytes((scanned / "cat.jpg").read_bytes())
    code, _, err = invoke("show", tmp_path / "elsewhere.jpg", "--index", index)
    assert code == 1 and "not in the index" in err

    assert invoke("album", "--tag", "cat", "--index", index)[0] == 0
    entry = next((albums_dir() / "cat").glob("*cat.jpg"))
    code, out, err = invoke("show", entry, "--json", "--index", index)
    assert code == 0, err
    assert ndjson(out)[0]["path"] == str(scanned / "cat.jpg")
    code, _, err = invoke("tag", "add", entry, "Mittens", "--index", index)
    assert code == 0, err
    with Index.open(index, create=False) as idx:
        pid = idx.photo_id(scanned / "cat.jpg")
        assert idx.corrections(action="add") == {pid: ["user/Mittens"]}


@pytest.mark.slow  # the real models (its fixture scans)
def test_classify_of_a_folder_suggests_scan(scanned: Path) -> None:
    code, out, err = invoke("classify", scanned)
    assert code == 2
    assert "phototag scan" in err and "Traceback" not in out + err


# -- help tells the truth -------------------------------------------------------------------


def _every_command() -> list[tuple[list[str], object]]:
    """(argv prefix, click command) for every command and sub-command of the app."""
    import typer.main

    from phototag.cli.app import app

    out: list[tuple[list[str], object]] = []

    def visit(prefix: list[str], cmd: Any) -> None:
        if hasattr(cmd, "commands"):  # a group (Typer's own click, not necessarily click's)
            for name, sub in cmd.commands.items():
                visit([*prefix, name], sub)
        else:
            out.append((prefix, cmd))

    visit([], typer.main.get_command(app))
    return out


def _flat(text: str) -> str:
    """Rendered help without the box drawing and line wrapping."""
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("argv", [c for c, _ in _every_command()], ids=" ".join)
def test_help_shows_defaults_extras_and_no_python_types(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    command: Any = dict((" ".join(c), cmd) for c, cmd in _every_command())[" ".join(argv)]
    code, out, _ = invoke(*argv, "--help")
    assert code == 0
    text = _flat(out)
    assert "list[" not in text and "<list" not in text
    usage = text.split("Usage:", 1)[1].split(" ", 6)
    assert not any(w.startswith("{") for w in usage), usage
    options = [p for p in command.params if p.param_type_name == "option" and p.name != "help"]
    # Each option's row: from its name to the next option's name.
    where = sorted((text.index(f" {p.opts[0]} "), i) for i, p in enumerate(options))
    rows = {}
    for k, (start, i) in enumerate(where):
        end = where[k + 1][0] if k + 1 < len(where) else len(text)
        rows[i] = text[start:end]
    for i, p in enumerate(options):
        row, written = rows[i], (p.help or "").replace("\\[", "[")
        for hand in written.split("[default:")[1:]:  # a hand-written default survives Rich
            assert "[default: " + _flat(hand)[:15] in row, (p.name, hand)
        for extra in ("phototag[ray]", "phototag[clip]", "phototag[cuda]"):
            if extra in written:
                assert extra in row, (p.name, extra)
        automatic = p.show_default is not False and p.default not in (None, False, (), [], "")
        if automatic and not p.is_flag:
            assert "[default:" in row, (p.name, row)
    if argv == ["scan"]:
        assert "pip install 'phototag[ray]'" in text
        assert "[default: index.sqlite in the user data folder]" in text
        assert (
            "[default: [scan] recognizers in the config file, else scene, food, flower, animal;"
            in text
        )
    if argv == ["models", "export"]:
        assert "phototag[clip]" in text


# -- output adds up; cron stays quiet -----------------------------------------------------------


@pytest.mark.slow  # the real models
def test_the_scan_summary_adds_up_and_is_a_json_line_with_json(library: Path, index: Path) -> None:
    code, out, err = invoke("scan", library, "--index", index, "--json", "--write", "none")
    assert code == 1
    records = ndjson(out)
    summary = records[-1]["summary"]
    assert isinstance(summary, dict)
    photos = [r for r in records if "tags" in r]
    failed = [r for r in records if "error" in r]
    assert summary["found"] == len(photos) + len(failed) == 12  # 6 good, 6 bad (a broken link)
    parts = ("tagged", "reused", "unchanged", "failed")
    assert summary["found"] == sum(summary[k] for k in parts)  # type: ignore[misc]
    assert "files:" not in err  # the summary is on stdout, not text on stderr

    code, _, err = invoke("scan", library / "bad", "--index", index, "--write", "none")
    line = next(x for x in err.splitlines() if " files: " in x and " tagged" in x)
    numbers = [int(w) for w in line.replace(",", " ").replace(";", " ").split() if w.isdigit()]
    found, tagged, reused, unchanged, failed_n = numbers[:5]
    assert found == tagged + reused + unchanged + failed_n == 6


@pytest.mark.slow  # the real models
def test_known_failures_are_counted_not_repeated_and_listed_by_failures(
    library: Path, index: Path
) -> None:
    code, _, err = invoke("scan", library, "--index", index, "--write", "none")
    assert code == 1 and err.count("error:") == 6
    code, out, err = invoke("scan", library, "--index", index, "--write", "none")
    assert code == 0, err  # nothing new failed
    assert "error:" not in err
    assert "files that failed before are unchanged" in err and "phototag failures" in err
    code, out, err = invoke("scan", library, "--index", index, "--write", "none", "--quiet")
    assert (code, out, err) == (0, "", "")  # what cron mails: nothing

    code, out, _ = invoke("failures", "--index", index, "--json")
    assert code == 0
    listed = {Path(str(r["path"])).name for r in ndjson(out)}
    assert {"empty.jpg", "text.jpg", "truncated.jpg", "bomb.png"} <= listed

    # A new bad file is still an error, every time it is new.
    (library / "bad" / "new.jpg").write_bytes(b"not a photo either")
    code, _, err = invoke("scan", library, "--index", index, "--write", "none", "--quiet")
    assert code == 1 and "new.jpg" in err and err.count("error:") == 1


@pytest.mark.slow  # the real models
def test_progress_moves_as_files_are_read_before_their_batch_is_tagged(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    from phototag.config import Device
    from phototag.index import Index
    from phototag.tagging.scan import Planned, Read, ScanOptions, Tagged, scan

    for i in range(5):
        make_photo(f"lib/{i}.jpg", "coffee", size=(120 + i, 120))
    with Index.open(tmp_path / "i.sqlite") as idx:
        events = list(scan([tmp_path / "lib"], idx, ScanOptions(device=Device.CPU, batch_size=4)))
    kinds = [type(e).__name__ for e in events]
    planned = next(e for e in events if isinstance(e, Planned))
    assert sum(isinstance(e, Read) for e in events) == planned.todo == 5
    first_tagged = next(i for i, e in enumerate(events) if isinstance(e, Tagged))
    assert kinds[first_tagged - 4 : first_tagged] == ["Read"] * 4  # the whole batch was read first


def test_the_rate_is_not_absurd_at_the_first_update() -> None:
    from rich.progress import Progress

    from phototag.cli.scan import _RateColumn

    now = [100.0]
    column = _RateColumn()
    bar = Progress(column, get_time=lambda: now[0])
    task = bar.add_task("scan", total=100)
    bar.start_task(task)
    now[0] += 0.0002
    bar.advance(task, 16)  # a whole batch lands at once
    assert column.render(bar.tasks[0]).plain == "- images/s"
    now[0] += 2.0
    bar.advance(task, 16)
    assert column.render(bar.tasks[0]).plain == "16.0 images/s"  # 32 in 2.0002 s


@pytest.mark.slow  # the real models
def test_duplicates_show_what_to_choose_a_keeper_by(
    tmp_path: Path, make_photo: Callable[..., Path], index: Path
) -> None:
    import shutil

    lib = tmp_path / "lib"
    make_photo("lib/cat.jpg", "chelsea", taken="2020:05:01 10:00:00")
    make_photo("lib/cat big.jpg", "chelsea", size=(902, 600), quality=95)
    (lib / "a").mkdir()
    shutil.copy(lib / "cat.jpg", lib / "a" / "cat copy.jpg")
    make_photo("lib/coffee.jpg", "coffee")
    shutil.copy(lib / "coffee.jpg", lib / "coffee copy.jpg")
    assert invoke("scan", lib, "--index", index, "--write", "none")[0] == 0
    code, out, err = invoke("duplicates", "--index", index, "--json")
    assert code == 0, err
    groups = ndjson(out)
    assert len(groups) == 2
    freed = [g["reclaimable"] for g in groups]
    assert freed == sorted(freed, reverse=True)  # type: ignore[type-var]  # most freed first

    def named(word: str) -> dict[str, Any]:
        return next(
            g
            for g in groups
            if all(word in Path(str(p["path"])).name for p in g["photos"])  # type: ignore[union-attr]
        )

    cats, coffees = named("cat"), named("coffee")
    names = [Path(str(p["path"])).name for p in cats["photos"]]  # type: ignore[union-attr]
    assert names[0] == "cat big.jpg"  # most pixels: the suggested keeper
    assert set(names[1:]) == {"cat.jpg", "cat copy.jpg"}
    first = cats["photos"][0]  # type: ignore[index]
    assert (first["width"], first["height"], first["same_as"]) == (902, 600, None)
    same = [p["same_as"] for p in cats["photos"]]  # type: ignore[union-attr]
    assert same == [None, None, 1]  # the two small ones are byte-identical to each other
    assert coffees["photos"][1]["same_as"] == 0  # type: ignore[index]
    assert cats["identical"] is False and coffees["identical"] is True
    dated = [p for p in cats["photos"] if p["taken_at"]]  # type: ignore[union-attr]
    assert {Path(str(p["path"])).name for p in dated} == {"cat.jpg", "cat copy.jpg"}
    sizes = {Path(str(p["path"])).name: p["size"] for p in cats["photos"]}  # type: ignore[union-attr]
    assert sizes["cat.jpg"] == (lib / "cat.jpg").stat().st_size
    assert cats["reclaimable"] == sizes["cat.jpg"] + sizes["cat copy.jpg"]

    code, out, err = invoke("duplicates", "--index", index)
    assert code == 0
    assert "byte-identical" in out and "near-identical" in out
    assert "keep" in out and "902x600" in out and "2020-05-01" in out and "=2" in out
    assert "groups of near-identical photos" in err


@pytest.mark.slow  # the real models (its fixture scans)
def test_show_json_gives_every_time_in_iso_8601(scanned: Path, index: Path) -> None:
    from datetime import datetime

    code, out, _ = invoke("show", scanned / "cat.jpg", "--json", "--index", index)
    assert code == 0
    doc = ndjson(out)[0]
    times = {k: v for k, v in doc.items() if k.endswith("_at")}
    assert set(times) == {"taken_at", "modified_at", "scanned_at"}
    for value in times.values():
        assert isinstance(value, str)
        datetime.fromisoformat(value)
    assert times["taken_at"] == "2023-06-10T12:00:00"
    modified = datetime.fromisoformat(str(times["modified_at"])).timestamp()
    assert abs(modified - (scanned / "cat.jpg").stat().st_mtime) < 1


# -- settings stick ------------------------------------------------------------------------


def _results(index: Path) -> dict[str, dict[str, str]]:
    """photo name -> recognizer -> fingerprint of its stored result (recognizers only: the
    face step's result does not depend on --threshold or --top-k, see phototag.faces)."""
    from phototag.index import Index

    with Index.open(index, create=False) as idx:
        rows = idx.conn.execute(
            "SELECT p.path, r.recognizer, r.fingerprint FROM results r JOIN photos p ON p.id = r.photo_id"
            " WHERE r.recognizer != 'faces'"
        ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for path, rec, fp in rows:
        out.setdefault(os.fsdecode(path).rsplit("/", 1)[-1], {})[rec] = fp
    return out


@pytest.mark.slow  # the real models (its fixture scans)
def test_scan_threshold_rescores_stored_embeddings_without_decoding(
    scanned: Path, index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phototag.tagging import loader

    decodes: list[int] = []
    real = loader.decode
    monkeypatch.setattr(loader, "decode", lambda *a, **k: decodes.append(1) or real(*a, **k))
    code, out, err = invoke("scan", scanned, "--index", index, "--write", "none",
                            "--threshold", "0.6", "--json")  # fmt: skip
    assert code == 0, err
    summary = ndjson(out)[-1]["summary"]
    assert summary["rescored"] == 2 and summary["decoded"] == 0 and summary["tagged"] == 0  # type: ignore[index]
    assert not decodes
    assert all(fp.endswith(":t0.6:k5") for r in _results(index).values() for fp in r.values())
    # The next plain scan goes back to the default, and says so.
    code, _, err = invoke("scan", scanned, "--index", index, "--write", "none")
    assert code == 0 and "2 unchanged photos tagged again" in err and "threshold 0.25" in err
    assert "[scan] in the config file" in err  # not eaten by Rich as markup
    assert all(fp.endswith(":t0.25:k5") for r in _results(index).values() for fp in r.values())


@pytest.mark.slow  # the real models (its fixture scans)
def test_the_config_scan_table_is_what_a_plain_scan_runs(
    scanned: Path, index: Path, tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[scan]\nrecognizers = ["animal", "food"]\nthreshold = 0.5\ntop_k = 2\n'
                      'exclude = ["private/"]\n')  # fmt: skip
    make_photo("Pictures/private/secret.jpg", "astronaut")
    make_photo("Pictures/new.jpg", "chelsea", size=(300, 200))
    code, _, err = invoke("scan", scanned, "--index", index, "--write", "none", "--config", config)
    assert code == 0, err
    results = _results(index)
    assert "secret.jpg" not in results  # excluded
    assert set(results["new.jpg"]) == {"animal", "food"}
    assert results["new.jpg"]["animal"].endswith(":t0.5:k2")
    assert results["cat.jpg"]["animal"].endswith(":t0.5:k2")  # rescored, not decoded

    # A trained recognizer named in [scan] runs on new photos of the nightly scan.
    for tag, which in (("cups", "coffee"), ("cats", "chelsea")):
        for i, side in enumerate((200, 240, 280)):
            make_photo(f"train/{tag}/{i}.jpg", which, size=(side, side))
    assert invoke("train", tmp_path / "train", "--name", "mine", "--no-augment")[0] == 0
    config.write_text('[scan]\nrecognizers = ["animal", "mine"]\n')
    make_photo("Pictures/newer.jpg", "coffee", size=(320, 200))
    code, _, err = invoke("scan", scanned, "--index", index, "--write", "none", "--config", config)
    assert code == 0, err
    results = _results(index)
    assert {"animal", "mine"} <= set(results["newer.jpg"]) and "mine" in results["cat.jpg"]
    from phototag.index import Index

    with Index.open(index, create=False) as idx:
        assert "mine/cups" in idx.tags_of(idx.photo_id(scanned / "newer.jpg") or 0, "mine")

    config.write_text("[scan]\nthreshold = 2\n")
    code, _, err = invoke("scan", scanned, "--index", index, "--config", config)
    assert code == 2 and "scan.threshold" in err
    config.write_text("[scan]\nrecognisers = []\n")
    code, _, err = invoke("scan", scanned, "--index", index, "--config", config)
    assert code == 2 and "unknown setting scan.recognisers" in err


@pytest.mark.slow  # the real models (its fixture scans)
def test_phototagignore_and_exclude_leave_paths_out_and_keep_what_the_index_had(
    scanned: Path, index: Path, make_photo: Callable[..., Path]
) -> None:
    make_photo("Pictures/Screenshots/s1.jpg", "coffee", size=(200, 150))
    make_photo("Pictures/trip/a.jpg", "chelsea", size=(210, 150))
    make_photo("Pictures/trip/b.tmp.jpg", "chelsea", size=(220, 150))
    (scanned / ".phototagignore").write_text("# screenshots are not photos\nScreenshots/\n")
    code, _, err = invoke("scan", scanned, "--index", index, "--write", "none",
                          "--exclude", "*.tmp.jpg")  # fmt: skip
    assert code == 0, err
    names = set(_results(index))
    assert names == {"cat.jpg", "coffee.jpg", "a.jpg"}

    # Excluding an indexed folder later leaves its photos in the index (forget drops them).
    code, _, err = invoke(
        "scan", scanned, "--index", index, "--write", "none", "--exclude", "trip/"
    )
    assert code == 0 and "0 removed" in err
    assert "a.jpg" in _results(index)

    (scanned / ".phototagignore").unlink()
    (scanned / ".phototagignore").mkdir()  # hostile: a folder where the file is expected
    code, out, err = invoke("scan", scanned, "--index", index, "--write", "none")
    assert code == 2 and ".phototagignore is a folder" in err and "Traceback" not in out + err


# -- no command ends in a traceback -------------------------------------------------------


BAD_NUMBERS = ("-1", "nan", "abc", "1e999")
BAD_TEXT = ("nosuch", "", "../../etc/passwd", "a|b")
#: Values that get a command past its first check, so the bad input is reached.
GOOD = {"action": "remove", "tag": "espresso"}
EXTRA = {"album": ["--tag", "espresso"]}


def _kind(p: Any) -> str:
    d = p.type_descriptor
    text = str(d.annotation)
    if d.annotation is bool:
        return "flag"
    if d.is_choice:
        return "choice"
    if "Path" in text:
        return "path"
    if text in ("<class 'int'>", "<class 'float'>") or d.is_ranged:
        return "number"
    return "text"


@pytest.fixture
def bad_places(tmp_path: Path, make_photo: Callable[..., Path]) -> dict[str, Path]:
    """A photo (scanned into the default index, so that commands get past opening it), a
    missing path, a folder, and a corrupt file (as an index, a config file, a photo...)."""
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + os.urandom(3000))
    (tmp_path / "folder").mkdir()
    photo = make_photo("photo.jpg", "coffee")
    assert invoke("scan", photo, "--write", "none")[0] == 0
    return {
        "photo": photo,
        "missing": tmp_path / "no" / "such.jpg",
        "folder": tmp_path / "folder",
        "corrupt": corrupt,
    }


def _variants(command: Any, places: dict[str, Path]) -> list[list[str]]:
    """Argument lists with one bad input each: the required arguments first, then every option."""
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [
        p for p in command.params if p.param_type_name == "option" and p.name not in ("help",)
    ]

    def filled(bad: dict[str, str] | None = None) -> list[str]:
        out = []
        for a in arguments:
            if bad and a.name in bad:
                out.append(bad[a.name])
            elif a.required:
                out.append(
                    str(places["photo"]) if _kind(a) == "path" else GOOD.get(str(a.name), "nosuch")
                )
        return [*out, *EXTRA.get(command.name, [])]

    variants = [filled()]
    for a in arguments:
        values = (
            [str(places[k]) for k in ("missing", "folder", "corrupt")]
            if _kind(a) == "path"
            else list(BAD_TEXT)
        )
        variants += [filled({str(a.name): v}) for v in values]
    for o in options:
        kind = _kind(o)
        if kind == "flag":
            continue
        values = {
            "path": [str(places[k]) for k in ("missing", "folder", "corrupt")],
            "number": list(BAD_NUMBERS),
            "choice": ["nosuch"],
            "text": list(BAD_TEXT),
        }[kind]
        variants += [[*filled(), o.opts[0], v] for v in values]
    return variants


@pytest.mark.parametrize("argv", [c for c, _ in _every_command()], ids=" ".join)
@pytest.mark.slow  # the real models (its fixture scans)
def test_no_command_ends_in_a_traceback_on_bad_input(
    argv: list[str], bad_places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command (enumerated from the app) with missing paths, folders where files are
    expected, a corrupt index, bad numbers and bad names: one line and an exit code."""
    import uvicorn
    from typer.testing import CliRunner

    # serve: everything up to listening runs (options, token, the app); a variant that gets
    # that far must not then serve forever. tests/test_serve.py runs the real server.
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)

    from phototag.cli.app import app

    command = dict((" ".join(c), cmd) for c, cmd in _every_command())[" ".join(argv)]
    runner = CliRunner()
    for variant in _variants(command, bad_places):
        r = runner.invoke(app, [*argv, *variant])
        where = " ".join([*argv, *variant])
        assert r.exception is None or isinstance(r.exception, SystemExit), (
            where,
            repr(r.exception),
        )
        assert "Traceback" not in r.output, (where, r.output)
        assert r.exit_code in (0, 1, 2, 3), (where, r.exit_code, r.output)
        if r.exit_code:
            assert r.stderr.strip(), where  # a failure always says why


@pytest.mark.slow  # the real models (its fixture scans)
def test_an_unforeseen_exception_is_one_line_and_exit_3(
    bad_places: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The last resort for bugs: the console script prints one line, no traceback."""
    import sys

    from phototag.cli.app import main
    from phototag.index.store import Index

    def broken(self: object, recognizer: str | None = None) -> list[object]:
        raise RuntimeError("simulated bug\nsecond line")

    monkeypatch.setattr(Index, "tag_counts", broken)
    monkeypatch.setattr(sys, "argv", ["phototag", "tags"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "internal error (RuntimeError: simulated bug)" in err
    monkeypatch.setenv("PHOTOTAG_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main()


# -- the fresh tester's report ---------------------------------------------------------------


@pytest.mark.slow  # runs the real models
def test_forget_a_path_that_is_nowhere_is_a_usage_error(scanned: Path, index: Path) -> None:
    code, _, err = invoke("forget", scanned.parent / "nonexist", "--index", index)
    assert code == 2 and "no such file or folder" in err and "nonexist" in err
    # An offline photo (gone from disk, still indexed) is still dropped on purpose.
    (scanned / "cat.jpg").unlink()
    code, _, err = invoke("forget", scanned / "cat.jpg", "--index", index)
    assert code == 0 and "dropped 1" in err, err
    from phototag.index import Index

    with Index.open(index, create=False) as idx:
        assert idx.count_photos() == 1


@pytest.mark.slow  # runs the real models
def test_similar_to_a_folder_or_a_file_that_is_no_image(scanned: Path, index: Path) -> None:
    code, _, err = invoke("similar", scanned, "--index", index)
    assert code == 2 and "is a folder" in err and "duplicates" in err
    (scanned / "notimage.jpg").write_bytes(b"this is not an image\n")
    code, out, err = invoke("similar", scanned / "notimage.jpg", "--index", index)
    assert code == 1 and "notimage.jpg" in err and out == ""
    assert "Traceback" not in err


@pytest.mark.slow  # runs the real models
def test_train_on_two_photos_a_tag(
    tmp_path: Path, make_photo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docs refuse only tags of fewer than 2 photos: 2 each trains (and says how it measured)."""
    for tag, which in (("kitty", "chelsea"), ("cup", "coffee")):
        for i, side in enumerate((200, 240)):
            make_photo(f"two/{tag}/{i}.jpg", which, size=(side, side))
    monkeypatch.chdir(tmp_path / "two")
    code, out, err = invoke("train", ".", "--name", "pets", "--no-augment", "--device", "cpu")
    assert code == 0, err
    assert "internal error" not in err and "Traceback" not in out + err
    assert "cross-validation" in out + err
    manifest = (user_weights_dir() / "recognizers" / "pets.toml").read_text()
    assert "kitty" in manifest and "cup" in manifest


@pytest.mark.slow  # runs the real models
def test_embed_with_nothing_to_write_fails_nothing(
    tmp_path: Path, make_photo: Callable[..., Path], index: Path
) -> None:
    """A name exiftool cannot carry is refused only when there is something to embed."""
    odd = make_photo("lib/rocket\n.jpg", "coffee")
    args = ("scan", tmp_path / "lib", "--index", index, "--write", "embed", "--json")
    code, out, err = invoke(*args, "--threshold", "1.0", "--no-faces")
    assert code == 0, err
    assert ndjson(out)[-1]["summary"]["failed"] == 0  # type: ignore[index]
    code, out, err = invoke(*args, "--no-faces")  # now it has tags: refused, with the reason
    assert code == 1 and "line break" in out + err
    assert odd.is_file()


@pytest.mark.slow  # runs the real models
def test_a_copy_found_by_content_has_its_originals_size_and_date(
    scanned: Path, index: Path
) -> None:
    import shutil

    shutil.copy2(scanned / "coffee.jpg", scanned / "copy.jpg")
    code, out, err = invoke("scan", scanned, "--index", index, "--write", "none", "--json")
    assert code == 0 and ndjson(out)[-1]["summary"]["reused"] == 1, err  # type: ignore[index]
    code, out, _ = invoke("show", scanned / "copy.jpg", "--index", index, "--json")
    (copy,) = ndjson(out)
    code, out, _ = invoke("show", scanned / "coffee.jpg", "--index", index, "--json")
    (orig,) = ndjson(out)
    assert copy["width"] and copy["height"] and copy["taken_at"]
    assert (copy["width"], copy["height"], copy["taken_at"]) == (
        orig["width"], orig["height"], orig["taken_at"],
    )  # fmt: skip
    code, out, _ = invoke("show", scanned / "copy.jpg", "--index", index)
    assert "NonexNone" not in out and f"{orig['width']}x{orig['height']}" in out
    code, out, _ = invoke("duplicates", "--index", index)
    assert code == 0 and "?x?" not in out


@pytest.mark.slow  # runs the real models
def test_show_and_tag_a_hard_link_or_a_file_that_failed(scanned: Path, index: Path) -> None:
    (scanned / "other").mkdir()
    link = scanned / "other" / "coffee_link.jpg"
    os.link(scanned / "coffee.jpg", link)
    good = (scanned / "coffee.jpg").read_bytes()
    (scanned / "truncated.jpg").write_bytes(good[: len(good) // 3])
    code, _, err = invoke("scan", scanned, "--index", index, "--write", "none")
    assert code == 1 and "truncated.jpg" in err
    code, out, err = invoke("show", link, "--index", index, "--json")
    assert code == 0, err
    (view,) = ndjson(out)
    assert view["path"] == str(scanned / "coffee.jpg")
    code, _, err = invoke("tag", "add", link, "mug", "--index", index)
    assert code == 0, err
    code, out, _ = invoke("show", scanned / "coffee.jpg", "--index", index, "--json")
    assert "mug" in out
    code, _, err = invoke("tag", "add", scanned / "truncated.jpg", "x", "--index", index)
    assert code == 2 and "could not read" in err and "scan it first" not in err


@pytest.mark.slow  # runs the real models
def test_a_plain_retag_runs_what_a_plain_scan_runs_and_writes_no_new_files(
    scanned: Path, index: Path
) -> None:
    code, out, err = invoke("retag", "--index", index, "--threshold", "0.02")
    assert code == 0, err
    assert "scene, food, flower, animal" in out + err
    assert "imagenet" not in out + err and "object" not in out + err
    assert "changed" in err and not list(scanned.rglob("*.xmp"))  # never written: no file
    assert {rec for r in _results(index).values() for rec in r} == {
        "scene", "food", "flower", "animal",
    }  # fmt: skip


@pytest.mark.slow  # runs the real models
def test_excluding_indexed_photos_reports_them_as_excluded_not_offline(
    tmp_path: Path, index: Path, make_photo: Callable[..., Path]
) -> None:
    """Tester report item 4: '--exclude keep/' over a library whose photos are all under
    keep/ warned of an unmounted disk and counted them offline."""
    make_photo("x/keep/a.jpg", "chelsea", size=(210, 150))
    make_photo("x/keep/b.jpg", "coffee", size=(200, 150))
    lib = tmp_path / "x"
    code, _, err = invoke("scan", lib, "--index", index, "--write", "none")
    assert code == 0, err
    code, _, err = invoke("scan", lib, "--index", index, "--write", "none", "--exclude", "keep/")
    text = " ".join(err.split())
    assert code == 0, err
    assert "unmounted" not in text and "offline" not in text, text
    assert "2 excluded (kept)" in text, text
    assert {"a.jpg", "b.jpg"} <= set(_results(index))
    code, _, err = invoke("scan", lib, "--index", index, "--write", "none")  # back in the scan
    assert code == 0 and "excluded" not in err and "offline" not in err, err


@pytest.mark.slow  # the real models (its fixture scans)
def test_similar_refuses_a_score_out_of_range_and_an_album_that_would_be_empty(
    scanned: Path, index: Path
) -> None:
    code, _, err = invoke("similar", scanned / "cat.jpg", "--min-score", "5", "--index", index)
    assert code == 2 and "--min-score" in err, err
    code, _, err = invoke("similar", scanned / "cat.jpg", "--min-score", "0.9999", "--album", "none",
                          "--index", index)  # fmt: skip
    assert code == 2 and "would be empty" in err, err
    assert albums(index) == []
