"""End-to-end scans of generated libraries with the real shipped model."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from phototag.config import Device
from phototag.index import Index
from phototag.tagging import loader
from phototag.tagging.scan import Failed, Finished, ScanOptions, ScanReport, Tagged, scan

CPU = ScanOptions(device=Device.CPU, batch_size=4, workers=2)


def run(
    roots: list[Path], idx: Index, options: ScanOptions = CPU
) -> tuple[ScanReport, list[object]]:
    events = list(scan(roots, idx, options))
    last = events[-1]
    assert isinstance(last, Finished)
    return last.report, events


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every image decode the pipeline does."""
    calls: list[int] = []
    real = loader.decode

    def counting(*a: object, **kw: object) -> object:
        calls.append(1)
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "decode", counting)
    return calls


def tags(idx: Index, path: Path, model: str) -> list[str]:
    view = idx.photo(path)
    assert view is not None, path
    return [c.tag for c in view.tags[model]]


@pytest.mark.slow
def test_a_mixed_library_is_tagged_and_every_bad_file_is_reported(
    library: Path, tmp_path: Path
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        report, _ = run([library], idx)
        assert report.tagged == 6 and report.decoded == 6
        assert "espresso" in tags(idx, library / "2024" / "coffee.jpg", "food")
        assert "drink" in tags(idx, library / "2024" / "coffee.jpg", "food")
        for cat in ("2024/cat.png", "phone/cat.heic", "2024/cat alpha.png"):
            assert tags(idx, library / cat, "animal")[:2] == ["animal", "cat"], cat
        assert "espresso" in tags(idx, library / "2024" / "caf\u00e9 \u2615 & co.jpg", "food")
        assert "espresso" in tags(idx, library / "odd" / "new\nline.jpg", "food")
        reasons = {f.path.name: f.reason for f in report.failures}
        assert reasons == {
            "empty.jpg": "empty file (0 bytes)",
            "text.jpg": "not an image, or a format phototag cannot read",
            "truncated.jpg": reasons["truncated.jpg"],
            "bomb.png": reasons["bomb.png"],
            "broken.jpg": "broken symlink (its target does not exist)",
            "loop": "symlink loop: this folder contains itself",
        }
        assert reasons["truncated.jpg"].startswith("corrupt or truncated image")
        assert "decompression bomb" in reasons["bomb.png"]
        assert idx.photo(library / ".hidden" / "ignored.jpg") is None
        view = idx.photo(library / "2024" / "coffee.jpg")
        assert view is not None and view.embeddings == {"efficientnet-lite0": 1280}
        assert (view.width, view.height) == (600, 400) and len(view.hash) == 32


@pytest.mark.usefixtures("fake_onnx")
def test_a_rescan_of_an_unchanged_library_decodes_nothing(
    library: Path, tmp_path: Path, decodes: list[int]
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([library], idx)
        n = len(decodes)
        report, events = run([library], idx)
    assert len(decodes) == n  # not one image decoded again
    assert report.decoded == 0 and report.tagged == 0 and report.unchanged == 6
    assert not [e for e in events if isinstance(e, Tagged)]
    # Known bad files are reported again, without being read again; a broken link and a
    # loop are known too (by their own lstat), so a nightly scan can say "unchanged".
    assert {f.path.name for f in report.failures if f.known} == {
        "empty.jpg",
        "text.jpg",
        "truncated.jpg",
        "bomb.png",
        "broken.jpg",
        "loop",
    }


@pytest.mark.slow
def test_changed_new_moved_copied_and_vanished_files(
    library: Path, tmp_path: Path, make_photo: Callable[..., Path], decodes: list[int]
) -> None:
    lib = library / "2024"
    # A photo stays in odd/: a file that vanishes from a folder where others are still found
    # was deleted (a folder left empty is kept as offline: test_offline_folders below).
    make_photo("Pictures/odd/stays.jpg", "chelsea")
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([library], idx)
        before = idx.photo(lib / "coffee.jpg")
        assert before is not None
        decodes.clear()

        (lib / "coffee.jpg").rename(lib / "renamed.jpg")  # moved: keeps its results
        shutil.copy(lib / "cat.png", lib / "cat copy.png")  # copied: reuses results
        os.utime(lib / "cat alpha.png", ns=(1, 1))  # touched only: same content
        make_photo("Pictures/2024/cat.png", "astronaut")  # changed: new content, same name
        make_photo("Pictures/2024/new.jpg", "coffee", size=(300, 200))  # new
        os.remove(library / "odd" / "new\nline.jpg")  # vanished

        report, _ = run([library], idx)
        assert report.decoded == 2 == len(decodes)  # cat.png (new content) and new.jpg
        assert report.reused == 3 and report.removed == 1
        moved = idx.photo(lib / "renamed.jpg")
        assert moved is not None and moved.hash == before.hash and moved.tags == before.tags
        assert idx.photo(lib / "coffee.jpg") is None
        assert idx.photo(library / "odd" / "new\nline.jpg") is None
        assert tags(idx, lib / "cat copy.png", "animal")[:2] == ["animal", "cat"]
        assert tags(idx, lib / "cat.png", "animal") == []  # the astronaut is no animal
        assert "espresso" in tags(idx, lib / "new.jpg", "food")


@pytest.mark.usefixtures("fake_onnx")
def test_an_empty_root_never_drops_its_photos(library: Path, tmp_path: Path) -> None:
    """An unmounted disk looks like a library whose photos all vanished: keep them."""
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([library / "2024"], idx)
        stash = tmp_path / "stash"
        shutil.move(library / "2024", stash)
        (library / "2024").mkdir()
        report, _ = run([library / "2024"], idx)
        assert report.removed == 0 and "not dropping" in report.warnings[0]
        assert idx.count_photos() == 4


@pytest.mark.usefixtures("fake_onnx")
def test_scanning_one_folder_leaves_the_others_alone(library: Path, tmp_path: Path) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([library], idx)
        report, _ = run([library / "phone"], idx)
        assert report.removed == 0 and idx.count_photos() == 6


@pytest.mark.usefixtures("fake_onnx")
def test_a_scan_stopped_midway_keeps_the_batches_it_committed(
    library: Path, tmp_path: Path, decodes: list[int]
) -> None:
    options = ScanOptions(device=Device.CPU, batch_size=2, workers=2)
    with Index.open(tmp_path / "i.sqlite") as idx:
        gen = scan([library], idx, options)
        tagged = 0
        for ev in gen:
            tagged += isinstance(ev, Tagged)
            if tagged == 2:
                break
        gen.close()  # as if killed: the generator never finishes
        assert idx.count_photos() == 2
        decodes.clear()
        report, _ = run([library], idx, options)
        assert report.tagged == 4 and report.unchanged == 2


@pytest.mark.usefixtures("fake_onnx")
def test_other_settings_tag_again_without_losing_other_recognizers(
    library: Path, tmp_path: Path
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([library / "2024"], idx)
        report, _ = run(
            [library / "2024"],
            idx,
            ScanOptions(device=Device.CPU, recognizers=["food"], threshold=0.5),
        )
        # From the stored embeddings, nothing decoded (issue 14).
        assert report.rescored == 4 and report.tagged == 0 and report.decoded == 0
        view = idx.photo(library / "2024" / "coffee.jpg")
        assert view is not None and set(view.tags) == {
            "scene",
            "food",
            "flower",
            "animal",
            "faces",  # the people tags of a default scan (none for a cup: an empty result)
        }
        assert all(c.score >= 0.5 for c in view.tags["food"])
        report, _ = run(
            [library / "2024"],
            idx,
            ScanOptions(device=Device.CPU, recognizers=["food"], threshold=0.5),
        )
        assert report.tagged == 0 and report.unchanged == 4


@pytest.mark.usefixtures("fake_onnx")
def test_unreadable_and_vanishing_files_are_reported(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root in CI, where chmod cannot make a file unreadable: fail the open instead.
    real_open = os.open
    victim = os.fsencode(library / "2024" / "cat.png")

    def guarded_open(path: object, flags: int, *a: object) -> int:
        if os.fsencode(path) == victim:  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(loader.os, "open", guarded_open)
    with Index.open(tmp_path / "i.sqlite") as idx:
        report, events = run([library / "2024"], idx)
    assert {f.path.name: f.reason for f in report.failures} == {"cat.png": "permission denied"}
    assert sum(isinstance(e, Failed) for e in events) == 1 and report.tagged == 3


@pytest.mark.slow
def test_a_copy_whose_original_changes_in_the_same_scan_still_gets_its_own_tags(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    lib = tmp_path / "lib"
    make_photo("lib/a.png", "chelsea")
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([lib], idx)
        shutil.copy(lib / "a.png", lib / "b.png")  # b: same content as a was
        make_photo("lib/a.png", "coffee")  # a: new content, processed before b
        # batch_size=1: a's new results are committed before b is looked at.
        report, _ = run([lib], idx, ScanOptions(device=Device.CPU, batch_size=1, workers=2))
        assert "cat" in tags(idx, lib / "b.png", "animal")
        assert "espresso" in tags(idx, lib / "a.png", "food")
        assert report.tagged + report.reused == 2
