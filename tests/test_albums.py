"""Albums: filters, link modes, refreshes that add and remove exactly, and the contact sheet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phototag.cli.app import app
from phototag.config import Device, LinkMode
from phototag.errors import ConfigError
from phototag.index import Index
from phototag.library.albums import album_folder, build_album, refresh_all
from phototag.library.query import TagQuery, run_query, term_matches
from phototag.tagging.scan import ScanOptions, scan
from phototag.tagging.walk import FileEntry, walk


@pytest.fixture
def lib(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    """Coffees and cats taken on known dates, two of them both named IMG_0001.jpg."""
    make_photo("lib/2023/IMG_0001.jpg", "coffee", taken="2023:05:01 08:00:00")
    make_photo("lib/2024/IMG_0001.jpg", "coffee", size=(540, 360), taken="2024:02:03 09:00:00")
    make_photo("lib/2024/cat.jpg", "chelsea", taken="2024:07:04 10:00:00")
    make_photo("lib/2024/trip/cat2.jpg", "chelsea", size=(400, 266), taken="2024:12:24 18:00:00")
    make_photo("lib/2024/rocket.jpg", "rocket", taken="2024:03:03 12:00:00")
    return tmp_path / "lib"


@pytest.fixture
def idx(tmp_path: Path, lib: Path) -> Index:
    index = Index.open(tmp_path / "i.sqlite")
    list(scan([lib], index, ScanOptions(device=Device.CPU)))
    yield index  # type: ignore[misc]
    index.close()


def names(matches: list) -> list[str]:  # type: ignore[type-arg]
    return [m.path.relative_to(m.path.parents[1]).as_posix() if m.path.parent.name == "trip" else
            f"{m.path.parent.name}/{m.path.name}" for m in matches]  # fmt: skip


def test_terms_match_case_insensitively_and_by_hierarchy() -> None:
    assert term_matches("animal", "animal/dog/Golden Retriever")
    assert term_matches("DOG", "animal/dog/Golden Retriever")
    assert term_matches("dog/golden retriever", "animal/dog/Golden Retriever")
    assert not term_matches("retriever", "animal/dog/Golden Retriever")
    assert not term_matches("dog/animal", "animal/dog")


@pytest.mark.slow  # tags from the real models
def test_each_filter(idx: Index, lib: Path) -> None:
    q = lambda **kw: names(run_query(idx, TagQuery(**kw)))  # noqa: E731
    assert q(tags=("cat",)) == ["2024/cat.jpg", "trip/cat2.jpg"]  # ordered by capture time
    assert q(tags=("ESPRESSO",)) == ["2023/IMG_0001.jpg", "2024/IMG_0001.jpg"]
    assert q(tags=("cat", "espresso")) == []  # --all
    assert len(q(tags=("cat", "espresso"), any=True)) == 4
    assert q(tags=("animal",), exclude=("trip",)) == [
        "2024/cat.jpg",
        "trip/cat2.jpg",
    ]  # 'trip' is no tag
    assert q(tags=("food",), exclude=("espresso",)) == []
    assert q(tags=("cat",), since="2024-08-01") == ["trip/cat2.jpg"]
    assert q(tags=("cat",), until="2024-07-04") == ["2024/cat.jpg"]  # a date means the whole day
    assert q(tags=("cat",), under=(str(lib / "2024" / "trip"),)) == ["trip/cat2.jpg"]
    assert q(tags=("espresso",), model="food") == ["2023/IMG_0001.jpg", "2024/IMG_0001.jpg"]
    assert q(tags=("espresso",), model="animal") == []
    scores = {
        m.path.name: max(s for _, _, s in m.tags) for m in run_query(idx, TagQuery(tags=("cat",)))
    }
    bar = (min(scores.values()) + max(scores.values())) / 2
    assert len(q(tags=("cat",), min_score=bar)) == 1
    with pytest.raises(ConfigError, match="not a date"):
        TagQuery(tags=("cat",), since="last tuesday")


@pytest.mark.parametrize("link", list(LinkMode))
@pytest.mark.slow  # tags from the real models
def test_albums_in_each_link_mode(idx: Index, tmp_path: Path, link: LinkMode) -> None:
    folder = tmp_path / "albums" / "coffee"
    report = build_album(idx, "coffee", folder, TagQuery(tags=("espresso",)), link)
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    # Both IMG_0001.jpg arrive, named in capture order, without colliding.
    assert len(entries) == 2 == len(report.added)
    assert entries[0].startswith("20230501-080000_IMG_0001") and entries[1].startswith(
        "20240203-090000_IMG_0001"
    )
    for entry in entries:
        p = folder / entry
        assert p.is_symlink() == (link is LinkMode.SYMLINK)
        source = idx.album_entries("coffee")[entry]
        assert p.read_bytes() == source.read_bytes()
        if link is LinkMode.HARDLINK:
            assert p.stat().st_ino == source.stat().st_ino
        if link is LinkMode.COPY:
            assert p.stat().st_mtime_ns == source.stat().st_mtime_ns and not p.is_symlink()


@pytest.mark.slow  # tags from the real models
def test_colliding_names_get_a_hash_and_both_arrive(
    idx: Index, tmp_path: Path, lib: Path, make_photo: Callable[..., Path]
) -> None:
    make_photo(
        "lib/other/IMG_0001.jpg", "coffee", size=(500, 333), taken="2023:05:01 08:00:00"
    )  # same second, same name
    list(scan([lib], idx, ScanOptions(device=Device.CPU)))
    folder = tmp_path / "albums" / "coffee"
    build_album(idx, "coffee", folder, TagQuery(tags=("espresso",)))
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert len(entries) == 3 and len({e.casefold() for e in entries}) == 3
    assert sum(e.startswith("20230501-080000_IMG_0001") for e in entries) == 2


@pytest.mark.slow  # tags from the real models
def test_a_rerun_adds_and_removes_exactly_and_never_touches_foreign_files(
    idx: Index, tmp_path: Path, lib: Path, make_photo: Callable[..., Path]
) -> None:
    folder = tmp_path / "albums" / "cats"
    query = TagQuery(tags=("cat",))
    build_album(idx, "cats", folder, query)
    (folder / "my notes.txt").write_text("mine")
    os.symlink(lib / "2024" / "rocket.jpg", folder / "my own link.jpg")
    first = {p.name for p in folder.iterdir()}
    again = build_album(idx, "cats", folder, query)
    assert again.added == [] and again.removed == []
    assert {p.name for p in folder.iterdir()} == first

    make_photo("lib/2024/new cat.jpg", "chelsea", size=(300, 200), taken="2025:01:01 00:00:00")
    os.remove(lib / "2024" / "cat.jpg")
    list(scan([lib], idx, ScanOptions(device=Device.CPU)))
    report = build_album(idx, "cats", folder, query)
    assert report.added == ["20250101-000000_new cat.jpg"]
    assert report.removed == ["20240704-100000_cat.jpg"]
    assert (folder / "my notes.txt").read_text() == "mine" and (
        folder / "my own link.jpg"
    ).is_symlink()

    # An entry the user replaced with a file of their own is theirs now: left alone.
    entry = folder / "20250101-000000_new cat.jpg"
    entry.unlink()
    entry.write_text("my file now")
    os.remove(lib / "2024" / "new cat.jpg")  # others stay in 2024: deleted, not offline
    list(scan([lib], idx, ScanOptions(device=Device.CPU)))
    report = build_album(idx, "cats", folder, query)
    assert (
        report.left_alone == ["20250101-000000_new cat.jpg"] and entry.read_text() == "my file now"
    )


@pytest.mark.slow  # tags from the real models
def test_a_folder_that_is_not_an_album_is_refused(idx: Index, tmp_path: Path) -> None:
    folder = tmp_path / "Documents"
    folder.mkdir()
    (folder / "thesis.pdf").write_text("precious")
    with pytest.raises(ConfigError, match="not a phototag album"):
        build_album(idx, "x", folder, TagQuery(tags=("cat",)))
    assert [p.name for p in folder.iterdir()] == ["thesis.pdf"]


@pytest.mark.parametrize("tag", ["../../etc", "a/b", "..", "/abs/path", "x\\..\\y", "\x00nul"])
def test_tags_cannot_put_an_album_outside_the_albums_folder(tmp_path: Path, tag: str) -> None:
    albums = tmp_path / "albums"
    albums.mkdir()
    folder = album_folder(albums, tag)
    assert folder.parent == albums.resolve()
    assert "/" not in folder.name and folder.name not in ("", ".", "..")


@pytest.mark.slow  # tags from the real models
def test_dry_run_changes_nothing(idx: Index, tmp_path: Path) -> None:
    folder = tmp_path / "albums" / "cats"
    report = build_album(idx, "cats", folder, TagQuery(tags=("cat",)), dry_run=True)
    assert len(report.added) == 2 and not folder.exists() and idx.albums() == []


@pytest.mark.slow  # tags from the real models
def test_refresh_all_and_album_folders_are_never_scanned(
    idx: Index, tmp_path: Path, lib: Path
) -> None:
    folder = lib / "albums-inside-library" / "cats"  # even inside the library
    build_album(idx, "cats", folder, TagQuery(tags=("cat",)))
    found = [x.path for x in walk([lib]) if isinstance(x, FileEntry)]
    assert not [p for p in found if "albums-inside-library" in str(p)]
    os.remove(lib / "2024" / "cat.jpg")
    list(scan([lib], idx, ScanOptions(device=Device.CPU)))
    (report,) = refresh_all(idx)
    assert len(report.removed) == 1


@pytest.mark.slow  # tags from the real models
def test_the_contact_sheet_loads_its_thumbnails_in_a_real_browser(
    idx: Index, tmp_path: Path
) -> None:
    folder = tmp_path / "albums" / "animals"
    build_album(idx, "animals", folder, TagQuery(tags=("animal", "food"), any=True), html=True)
    page = folder / "index.html"
    html = page.read_text()
    assert "http" not in html.replace("file://", "")  # no external resources
    chromium = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    assert chromium, "scripts/test.sh installs chromium"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert 'data-loaded="4"' in dom, dom[-2000:]
    assert dom.count('data-state="ok"') == 4 and 'data-state="broken"' not in dom
    assert "espresso" in dom and "cat" in dom


@pytest.mark.slow  # tags from the real models
def test_the_album_cli_json_list_and_refresh(
    idx: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOTAG_ALBUMS", str(tmp_path / "albums"))
    runner = CliRunner()
    index = ["--index", str(idx.path)]
    r = runner.invoke(app, ["album", "--tag", "cat", "--json", *index])
    assert r.exit_code == 0 and len([json.loads(x) for x in r.stdout.splitlines()]) == 2
    # A zero-shot tag without a zero-shot backbone makes no album (issue 14); a known tag
    # with no photo yet makes one only when asked.
    r = runner.invoke(app, ["album", "--tag", "wedding ceremony", *index])
    assert r.exit_code == 2 and not (tmp_path / "albums" / "wedding ceremony").exists()
    r = runner.invoke(app, ["album", "--tag", "dog", "--allow-empty", *index])
    assert r.exit_code == 0 and (tmp_path / "albums" / "dog").is_dir()
    r = runner.invoke(app, ["album", "--tag", "cat", *index])
    assert r.exit_code == 0 and "2 entries added" in r.stderr
    r = runner.invoke(app, ["album", "--list", *index])
    assert "cat" in r.stdout and "dog" in r.stdout
    r = runner.invoke(app, ["album", "--refresh", *index])
    assert r.exit_code == 0 and r.stderr.count("0 entries added") == 2
    r = runner.invoke(app, ["album", *index])
    assert r.exit_code == 2 and "at least one --tag" in r.stderr
