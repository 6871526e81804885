"""One file, one photo, whatever path names it: a symlink to the library (or to a folder
in it) given on the command line leads to the rows of the real path (index.paths)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import invoke, ndjson

from phototag.cli.console import ExitCode
from phototag.config import Device
from phototag.index import Index
from phototag.index.paths import canonical_path, decode_path
from phototag.tagging import loader
from phototag.tagging import scan as scan_module
from phototag.tagging.scan import Finished, ScanOptions, ScanReport, scan

CPU = ScanOptions(device=Device.CPU, batch_size=4, workers=2)


def run(roots: list[Path], idx: Index) -> ScanReport:
    last = list(scan(roots, idx, CPU))[-1]
    assert isinstance(last, Finished)
    return last.report


def paths(idx: Index) -> set[Path]:
    return {decode_path(r[0]) for r in idx.conn.execute("SELECT path FROM photos")}


def test_canonical_path_resolves_folders_and_keeps_a_files_own_name(tmp_path: Path) -> None:
    (tmp_path / "lib" / "2024").mkdir(parents=True)
    (tmp_path / "lib" / "2024" / "a.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "lib", tmp_path / "liblink")
    os.symlink("a.jpg", tmp_path / "lib" / "2024" / "b.jpg")  # a photo's other name
    real = tmp_path.resolve()
    assert canonical_path(tmp_path / "liblink") == real / "lib"
    assert canonical_path(tmp_path / "liblink" / "2024" / "a.jpg") == real / "lib/2024/a.jpg"
    # A symlinked file keeps its name (the walk's rules for links inside the library)...
    assert canonical_path(tmp_path / "liblink/2024/b.jpg") == real / "lib/2024/b.jpg"
    # ...and a name that does not exist (an offline photo, a typo) has its folders resolved.
    assert canonical_path(tmp_path / "liblink/2024/gone.jpg") == real / "lib/2024/gone.jpg"
    assert canonical_path(tmp_path / "liblink/../lib/x") == real / "lib/x"


@pytest.fixture
def linked(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    """x/lib/{big10/a,big10/b,small/c}.jpg and x/liblink -> x/lib."""
    make_photo("x/lib/big10/a.jpg", "coffee")
    make_photo("x/lib/big10/b.jpg", "chelsea")
    make_photo("x/lib/small/c.jpg", "coffee", size=(300, 200))
    os.symlink(tmp_path / "x" / "lib", tmp_path / "x" / "liblink")
    return tmp_path / "x"


@pytest.mark.usefixtures("fake_onnx")
def test_commands_through_a_symlink_to_the_library_act_on_its_photos(
    linked: Path, tmp_path: Path
) -> None:
    index = tmp_path / "idx.sqlite"
    lib, link = linked / "lib", linked / "liblink"
    assert invoke("scan", lib, "--index", index, "--device", "cpu")[0] == ExitCode.OK
    with Index.open(index) as idx:
        before = paths(idx)
    assert len(before) == 3

    # A rescan by the other name finds the same photos: nothing new, nothing doubled.
    code, _, err = invoke("scan", link / "big10", "--index", index, "--device", "cpu")
    assert code == ExitCode.OK, err
    assert "0 tagged" in err and "2 unchanged" in err, err
    with Index.open(index) as idx:
        assert paths(idx) == before

    # similar --under by the link's name: the folder's other photo, never the photo itself.
    code, out, err = invoke(
        "similar", link / "big10" / "a.jpg", "--under", link / "big10", "--index", index, "--json"
    )
    assert code == ExitCode.OK, err
    found = [Path(str(r["path"])).name for r in ndjson(out)]
    assert found == ["b.jpg"]

    # album --under by the link's name selects the photos under the real folder.
    with Index.open(index) as idx:
        view = idx.photo(lib.resolve() / "big10" / "a.jpg")
        assert view is not None
        tag = next(c.tag for cs in view.tags.values() for c in cs)
    code, out, err = invoke(
        "album", "--tag", tag, "--under", link / "big10", "--index", index, "--json"
    )
    assert code == ExitCode.OK, err
    assert "big10/a.jpg" in out

    # forget by the link's name drops the photo.
    code, _, err = invoke("forget", link / "small" / "c.jpg", "--index", index)
    assert code == ExitCode.OK, err
    with Index.open(index) as idx:
        assert paths(idx) == before - {lib.resolve() / "small" / "c.jpg"}


@pytest.mark.usefixtures("fake_onnx")
def test_a_root_indexed_by_its_symlinked_name_moves_to_the_real_one_without_loss(
    tmp_path: Path, make_photo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """~/Pictures -> /mnt/disk/Pictures, scanned as ~/Pictures before names were canonical:
    the next scan keeps one row per file, under the real path, with its results, and decodes
    nothing (each moved row is found by its content hash)."""
    make_photo("disk/Pictures/2024/a.jpg", "coffee")
    make_photo("disk/Pictures/2024/b.jpg", "chelsea")
    (tmp_path / "home").mkdir()
    pictures = tmp_path / "home" / "Pictures"
    os.symlink(tmp_path / "disk" / "Pictures", pictures)
    real = (tmp_path / "disk" / "Pictures").resolve()
    decodes: list[int] = []
    real_decode = loader.decode

    def counting(*a: object, **kw: object) -> object:
        decodes.append(1)
        return real_decode(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "decode", counting)
    with Index.open(tmp_path / "i.sqlite") as idx:
        with monkeypatch.context() as m:  # as scans did before: the name as typed
            m.setattr(scan_module, "canonical_path", lambda p: Path(os.path.abspath(p)))
            run([pictures], idx)
        old = {p.name: idx.photo(p) for p in paths(idx)}
        assert {p.parent for p in paths(idx)} == {pictures / "2024"} and len(old) == 2
        n = len(decodes)

        report = run([pictures], idx)
        assert len(decodes) == n and report.tagged == 0 and report.reused == 2
        assert paths(idx) == {real / "2024" / "a.jpg", real / "2024" / "b.jpg"}
        for p in paths(idx):
            view, before = idx.photo(p), old[p.name]
            assert view is not None and before is not None
            assert (view.hash, view.tags) == (before.hash, before.tags)

        # From now on the rows are settled under either name.
        for root in (pictures, real):
            report = run([root], idx)
            assert report.unchanged == 2 and report.tagged == report.reused == 0
            assert report.removed == 0 and len(paths(idx)) == 2
