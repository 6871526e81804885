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


@pytest.fixture
def plain_library(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    """Photos in folders whose names sort around each other's: "a b/" and "a.jpg" come
    before "a/" in path order."""
    for i, name in enumerate(["a/x.jpg", "a/y/z.jpg", "a b/x.jpg", "a.jpg", "b.png", "c/d.jpg"]):
        make_photo(f"lib/{name}", "coffee" if i % 2 else "chelsea", quality=70 + i)
    return tmp_path / "lib"


@pytest.mark.usefixtures("fake_onnx")
def test_a_rescan_settles_unchanged_photos_by_their_records_without_a_path_each(
    plain_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import phototag.tagging.scan as scan_module
    import phototag.tagging.walk as walk_module

    (plain_library / "a" / "broken.jpg").write_bytes(b"not a photo")  # fails, every night
    with Index.open(tmp_path / "i.sqlite") as idx:
        first, _ = run([plain_library], idx)
        assert first.tagged == 6 and first.failed == 1
        looked_at: list[object] = []  # files that were listed in full or got a FileEntry
        real_restat, real_entry = scan_module._restat, walk_module.FileStat.entry
        monkeypatch.setattr(scan_module, "_restat", lambda p: looked_at.extend(p) or real_restat(p))
        monkeypatch.setattr(
            walk_module.FileStat, "entry", lambda s: looked_at.append(s) or real_entry(s)
        )
        report, _ = run([plain_library], idx)
    assert report.unchanged == 6 and report.tagged == 0
    assert [f.path.name for f in report.failures if f.known] == ["broken.jpg"]
    assert looked_at == []  # every run found in place among the index's records


@pytest.mark.usefixtures("fake_onnx")
def test_changed_new_moved_copied_and_vanished_photos_among_settled_ones(
    plain_library: Path, tmp_path: Path, make_photo: Callable[..., Path], decodes: list[int]
) -> None:
    lib = plain_library
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([lib], idx)
        before = idx.photo(lib / "a" / "x.jpg")
        assert before is not None
        decodes.clear()
        (lib / "a" / "x.jpg").rename(lib / "a" / "moved.jpg")  # moved: keeps its results
        shutil.copy(lib / "b.png", lib / "c" / "copy.png")  # copied: reuses its results
        make_photo("lib/a b/x.jpg", "astronaut")  # changed: new content, same name
        make_photo("lib/a/new.jpg", "astronaut", size=(300, 200))  # new
        os.remove(lib / "a" / "y" / "z.jpg")  # vanished (from a folder left empty: offline)
        os.remove(lib / "c" / "d.jpg")  # vanished from a folder where a photo is found
        report, _ = run([lib], idx)
        assert (report.unchanged, report.reused, report.tagged) == (2, 2, 2)
        assert report.decoded == 2 == len(decodes)  # the changed and the new photo only
        assert report.removed == 1 and report.offline == 1
        moved = idx.photo(lib / "a" / "moved.jpg")
        assert moved is not None and moved.hash == before.hash and moved.tags == before.tags
        assert idx.photo(lib / "a" / "x.jpg") is None and idx.photo(lib / "c" / "d.jpg") is None
        assert idx.photo(lib / "c" / "copy.png") is not None
        again, _ = run([lib], idx)
    assert again.unchanged == again.found == 6 and again.tagged == again.reused == 0


@pytest.mark.usefixtures("fake_onnx")
def test_a_symlink_to_a_settled_photo_found_on_a_rescan_is_the_same_photo(
    plain_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([plain_library], idx)
        os.symlink(plain_library / "c" / "d.jpg", plain_library / "a" / "link.jpg")
        reads: list[object] = []
        real = loader.read_file
        monkeypatch.setattr(loader, "read_file", lambda e, *a: reads.append(e) or real(e, *a))
        report, _ = run([plain_library], idx)
        assert idx.photo(plain_library / "a" / "link.jpg") is None
    assert (report.unchanged, report.same_file, report.tagged, report.reused) == (6, 1, 0, 0)
    assert reads == []  # known as the photo's other name by (st_dev, st_ino), not read


@pytest.mark.usefixtures("fake_onnx")
def test_a_rescan_of_a_folder_named_twice_or_inside_another_counts_each_photo_once(
    plain_library: Path, tmp_path: Path
) -> None:
    lib = plain_library
    with Index.open(tmp_path / "i.sqlite") as idx:
        run([lib], idx)
        for roots in ([lib, lib / "a"], [lib / "a", lib], [lib, lib], [lib / "a", lib / "c"]):
            report, _ = run(roots, idx)
            expected = 6 if lib in roots else 3
            assert report.unchanged == report.found == expected, roots
            assert report.tagged == report.removed == report.offline == 0, roots
        # A file named beside its folder is one photo under one name (an older phototag
        # counted it as two names of one file and dropped its row); alone, it is itself.
        report, _ = run([lib, lib / "a.jpg"], idx)
        assert (report.unchanged, report.found, report.same_file) == (6, 6, 0)
        report, _ = run([lib / "a.jpg"], idx)
        assert (report.unchanged, report.found, report.tagged) == (1, 1, 0)
        assert idx.count_photos() == 6
