"""One file under several names (issue 13, item 3): hard links and symlinks.

Embedded writes keep the inode (hard links stay linked, a symlink stays a symlink and its
target is written), and one physical file is one photo in scan counts, albums and
duplicates. Keywords are read back with exiftool AND exiv2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from metadata_readers import both
from PIL import Image

from phototag.config import Device, LinkMode, WriteMode, WriteSettings
from phototag.index import Index
from phototag.library.albums import build_album
from phototag.library.query import TagQuery
from phototag.library.search import duplicate_groups
from phototag.metadata.embed import embed_file, restore_interrupted, undo_path
from phototag.metadata.exiftool import ExifTool
from phototag.metadata.keywords import Field
from phototag.metadata.write import Unchanged, WriteFailed, Wrote, write_tags
from phototag.tagging.scan import Finished, ScanOptions, ScanReport, scan

# End to end: the real models tag the photos whose links are written.
pytestmark = pytest.mark.slow

EMBED = WriteSettings(mode=WriteMode.EMBED)


@pytest.fixture
def idx(tmp_path: Path) -> Iterator[Index]:
    index = Index.open(tmp_path / "i.sqlite")
    yield index
    index.close()


def scanned(idx: Index, *roots: Path, follow: bool = False) -> ScanReport:
    events = list(scan(list(roots), idx, ScanOptions(device=Device.CPU, follow_symlinks=follow)))
    last = events[-1]
    assert isinstance(last, Finished)
    return last.report


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def written_ok(events: list[object]) -> None:
    assert not [e for e in events if isinstance(e, WriteFailed)], events


@pytest.fixture
def linked(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    """lib/2024/{a,b}.jpg; lib/best/a.jpg is a hard link of a, lib/best/b.jpg a symlink to b."""
    lib = tmp_path / "lib"
    a = make_photo("lib/2024/a.jpg", "coffee")
    make_photo("lib/2024/b.jpg", "chelsea")
    (lib / "best").mkdir()
    os.link(a, lib / "best" / "a.jpg")
    os.symlink("../2024/b.jpg", lib / "best" / "b.jpg")
    return lib


def test_one_file_under_several_names_is_one_photo(linked: Path, idx: Index) -> None:
    report = scanned(idx, linked)
    assert (report.found, report.same_file) == (2, 2)
    assert sorted(p.path.relative_to(linked).as_posix() for p in idx.photos_under([linked])) == [
        "2024/a.jpg", "2024/b.jpg",
    ]  # fmt: skip
    # duplicates never offers two names of one file (the classic way to lose the only copy)
    groups = duplicate_groups(idx, "efficientnet-lite0")
    for g in groups:
        names = [p for p, _ in g]
        for i, p in enumerate(names):
            assert not any(os.path.samefile(p, q) for q in names[:i]), g
    # a rescan changes nothing, and scanning the other folder alone adds no second photo
    again = scanned(idx, linked)
    assert (again.found, again.unchanged, again.same_file, again.removed) == (2, 2, 2, 0)
    alone = scanned(idx, linked / "best")
    assert (alone.found, alone.same_file, alone.tagged) == (
        0,
        1,
        0,
    )  # the symlink leads outside best/
    assert len(idx.photos_under([linked])) == 2


def test_embedded_writes_keep_hard_links_and_symlinks(linked: Path, idx: Index) -> None:
    a, a2 = linked / "2024" / "a.jpg", linked / "best" / "a.jpg"
    b, b_link = linked / "2024" / "b.jpg", linked / "best" / "b.jpg"
    before_a, before_b = pixels(a), pixels(b)
    ino_a, ino_b = a.stat().st_ino, b.stat().st_ino
    scanned(idx, linked)
    written_ok(list(write_tags(idx, [linked], EMBED)))
    assert a.stat().st_ino == a2.stat().st_ino == ino_a and a.stat().st_nlink == 2
    assert b_link.is_symlink() and os.readlink(b_link) == "../2024/b.jpg"
    del ino_b  # b has one name (the symlink is a path, not a link): replaced atomically
    for name in (a, a2):
        assert "espresso" in both(name)["dc:subject"]
    assert both(b_link)["dc:subject"] == both(b)["dc:subject"] != []
    assert (pixels(a2) == before_a).all() and (pixels(b) == before_b).all()
    assert not list(linked.rglob("*.phototag-undo"))
    # nothing new: nothing changes
    assert all(isinstance(e, Unchanged) for e in write_tags(idx, [linked], EMBED))


def test_a_symlink_leading_outside_stays_a_symlink_and_its_target_is_written(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    target = make_photo("elsewhere/c.jpg", "coffee")
    (tmp_path / "lib").mkdir()
    link = tmp_path / "lib" / "c.jpg"
    os.symlink(target, link)
    scanned(idx, tmp_path / "lib", follow=True)
    events = list(write_tags(idx, [tmp_path / "lib"], EMBED))
    written_ok(events)
    assert [type(e) for e in events] == [Wrote]
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "espresso" in both(target)["dc:subject"]


def test_a_hardlink_album_is_not_doubled_by_an_embedded_write(linked: Path, idx: Index) -> None:
    scanned(idx, linked)
    albums = linked.parent / "albums" / "coffee"
    query = TagQuery(tags=("espresso",))
    first = build_album(idx, "coffee", albums, query, LinkMode.HARDLINK)
    assert first.added and not first.failed
    written_ok(list(write_tags(idx, [linked], EMBED)))
    again = build_album(idx, "coffee", albums, query, LinkMode.HARDLINK)
    assert (again.added, again.removed, again.left_alone) == ([], [], [])
    entries = [p for p in albums.iterdir() if not p.name.startswith(".")]
    assert (
        len(entries) == 1 and entries[0].stat().st_ino == (linked / "2024" / "a.jpg").stat().st_ino
    )
    assert "espresso" in both(entries[0])["dc:subject"]


def test_an_in_place_write_killed_mid_copy_is_undone_by_the_next_run(
    linked: Path, idx: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, a2 = linked / "2024" / "a.jpg", linked / "best" / "a.jpg"
    original = a.read_bytes()
    scanned(idx, linked)

    real_write = ExifTool.write

    def killed_mid_copy(self: ExifTool, path: Path, *args: object, **kw: object) -> list[str]:
        assert kw.get("in_place") is True  # a hard-linked file is written in place
        with open(path, "r+b") as f:  # exiftool's copy-back, cut short
            f.write(b"\0" * 100)
            f.truncate(len(original) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(ExifTool, "write", killed_mid_copy)
    with pytest.raises(KeyboardInterrupt):
        list(write_tags(idx, [linked], EMBED))
    assert undo_path(a).exists() and a2.read_bytes() != original  # the damage is real
    monkeypatch.setattr(ExifTool, "write", real_write)
    assert restore_interrupted(a)
    assert a2.read_bytes() == original and not undo_path(a).exists()
    # and a plain next run does the same before writing
    monkeypatch.setattr(ExifTool, "write", killed_mid_copy)
    with pytest.raises(KeyboardInterrupt):
        list(write_tags(idx, [linked], EMBED))
    monkeypatch.setattr(ExifTool, "write", real_write)
    written_ok(list(write_tags(idx, [linked], EMBED)))
    assert a.stat().st_ino == a2.stat().st_ino
    assert "espresso" in both(a2)["dc:subject"]
    assert (pixels(a2) == pixels(a)).all()
    assert not undo_path(a).exists()


def test_a_file_with_one_name_is_still_replaced_atomically(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    photo = make_photo("one.jpg", "coffee")
    ino = photo.stat().st_ino
    with ExifTool() as et:
        embed_file(et, photo, {Field.SUBJECT: ["x"]}, backup=False)
    # exiftool's default: a new file renamed over the old (kill-safe); nothing else has it
    assert photo.stat().st_ino != ino


def test_duplicates_marks_two_names_of_one_file_in_an_older_index(
    linked: Path, tmp_path: Path
) -> None:
    """An index written before one file became one photo holds both names: they are marked."""
    from conftest import invoke, ndjson

    from phototag.index.store import PhotoRecord

    index = tmp_path / "old.sqlite"
    with Index.open(index) as idx:
        scanned(idx, linked / "2024")
        (src,) = [p for p in idx.photos_under([linked]) if p.path.name == "a.jpg"]
        other = linked / "best" / "a.jpg"
        st = other.stat()
        with idx.transaction():
            pid = idx.upsert_photo(PhotoRecord(other, st.st_size, st.st_mtime_ns,
                                               idx.hash_of(src.id) or "", 1, 1, None))  # fmt: skip
            idx.copy_results(src.id, pid)
    code, out, _ = invoke("duplicates", "--index", index, "--json")
    assert code == 0
    (group,) = [g for g in ndjson(out) if "photos" in g]
    photos = group["photos"]
    assert isinstance(photos, list) and len(photos) == 2
    assert sum("same_file_as" in p for p in photos) == 1


def test_hard_linked_photos_killed_with_sigkill_mid_write_come_back_whole(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    """Real kills, at the moment an undo copy exists (an in-place write is under way)."""
    import signal
    import subprocess
    import sys
    import time

    lib, links = tmp_path / "lib", tmp_path / "links"
    links.mkdir()
    n = 24
    for i in range(n):
        p = make_photo(f"lib/p{i:02d}.jpg", "coffee" if i % 2 else "chelsea", size=(600 + i, 400))
        os.link(p, links / p.name)  # a second name outside the library: st_nlink == 2
    before = {p.name: pixels(p).tobytes() for p in lib.glob("*.jpg")}
    env = {**os.environ, "PHOTOTAG_INDEX": str(tmp_path / "i.sqlite")}
    py = [sys.executable, "-m", "phototag"]
    subprocess.run([*py, "scan", str(lib), "--device", "cpu", "-q", "--write", "none"],
                   env=env, check=True)  # fmt: skip
    write = [*py, "write", str(lib), "--write", "embed", "-q"]
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(write, env=env)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if any(lib.glob(".*.phototag-undo")):  # observable: an in-place write under way
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.002)  # a poll interval, not a wait for time to pass
        proc.wait()
        for p in lib.glob("*.jpg"):  # every photo is whole, or has its whole undo copy
            undo = undo_path(p)
            whole = undo.read_bytes() if undo.exists() else None
            if whole is None:
                assert pixels(p).tobytes() == before[p.name], p
            else:
                from io import BytesIO

                with Image.open(BytesIO(whole)) as im:
                    assert np.asarray(im.convert("RGB")).tobytes() == before[p.name], p
    assert kills >= 1
    for _ in range(20):  # an orphaned exiftool may still be finishing its last copy
        r = subprocess.run(write, env=env, capture_output=True, text=True)
        if r.returncode == 0:
            break
        assert "still finishing" in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    for p in lib.glob("*.jpg"):
        assert p.stat().st_ino == (links / p.name).stat().st_ino and p.stat().st_nlink == 2
        assert pixels(p).tobytes() == before[p.name]
        assert not undo_path(p).exists()
    assert all(
        "phototag|food|drink|espresso" in both(lib / f"p{i:02d}.jpg")["lr:hierarchicalSubject"]
        for i in range(1, n, 2)
    )
