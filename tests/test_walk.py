"""The walk lists photos and reports what it cannot follow, without ever stopping."""

from __future__ import annotations

import os
import random
from pathlib import Path

from phototag.tagging.walk import (
    RECORD,
    FileEntry,
    Listing,
    SettledRecords,
    WalkProblem,
    decode_path,
    record_paths,
    walk,
    walk_stats,
)


def touch(p: Path, data: bytes = b"x") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_walk_finds_photos_recursively_and_skips_hidden_and_nas_litter(tmp_path: Path) -> None:
    touch(tmp_path / "a.JPG")
    touch(tmp_path / "sub" / "deeper" / "b.heic")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".thumbnails" / "c.jpg")
    touch(tmp_path / "._d.jpg")
    touch(tmp_path / "@eaDir" / "e.jpg")
    found = [
        x.path.relative_to(tmp_path).as_posix()
        for x in walk([tmp_path])
        if isinstance(x, FileEntry)
    ]
    assert found == ["a.JPG", "sub/deeper/b.heic"]


def test_symlink_loops_and_broken_links_are_reported_and_the_walk_goes_on(tmp_path: Path) -> None:
    touch(tmp_path / "z.jpg")
    os.symlink(tmp_path, tmp_path / "loop")
    os.symlink("missing.jpg", tmp_path / "broken.jpg")
    os.symlink("self.jpg", tmp_path / "self.jpg")
    items = list(walk([tmp_path]))
    problems = {p.path.name: p.reason for p in items if isinstance(p, WalkProblem)}
    assert problems == {
        "broken.jpg": "broken symlink (its target does not exist)",
        "loop": "symlink loop: this folder contains itself",
        "self.jpg": "symlink loop",
    }
    assert [x.path.name for x in items if isinstance(x, FileEntry)] == ["z.jpg"]


def test_a_folder_reached_twice_is_walked_once(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "a.jpg")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    entries = [x for x in walk([tmp_path]) if isinstance(x, FileEntry)]
    assert len(entries) == 1
    assert (
        next(
            x for x in walk([tmp_path], follow_symlinks=False) if isinstance(x, FileEntry)
        ).path.name
        == "a.jpg"
    )


def test_odd_names_survive(tmp_path: Path) -> None:
    names = [
        "new\nline.jpg",
        "sp ace.jpg",
        "-dash.jpg",
        "\u65e5\u672c.jpg",
        os.fsdecode(b"bad\xff.jpg"),
    ]
    for n in names:
        touch(tmp_path / n)
    found = sorted(x.path.name for x in walk([tmp_path]) if isinstance(x, FileEntry))
    assert found == sorted(names)


def test_a_missing_root_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (item,) = list(walk([tmp_path / "nope"]))
    assert isinstance(item, WalkProblem) and item.reason.startswith("no such file or folder")


def test_symlinks_leading_outside_the_library_are_followed_only_when_asked(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    touch(outside / "secret.jpg")
    touch(outside / "dir" / "more.jpg")
    lib = tmp_path / "lib"
    touch(lib / "mine.jpg")
    os.symlink(outside / "secret.jpg", lib / "link.jpg")
    os.symlink(outside / "dir", lib / "linked-dir")
    os.symlink(lib / "mine.jpg", lib / "inside-link.jpg")  # inside: always followed
    names = lambda **kw: sorted(x.path.name for x in walk([lib], **kw) if isinstance(x, FileEntry))  # noqa: E731
    assert names() == ["inside-link.jpg", "mine.jpg"]
    assert names(follow_symlinks=True) == ["inside-link.jpg", "link.jpg", "mine.jpg", "more.jpg"]


def _runs(root: Path) -> tuple[list[bytes], list[Path]]:
    """The paths of the plain photos (their runs, concatenated) and the other files, in walk order."""
    runs: list[bytes] = []
    files: list[Path] = []
    for item in walk_stats([root], plain=True):
        if isinstance(item, Listing):
            runs += record_paths(item.records)
            assert item.plain == len(record_paths(item.records))
            files += [decode_path(f.raw) for f in item.files]
    return runs, files


def test_plain_photos_come_as_runs_of_records_in_the_path_order_of_the_whole_walk(
    tmp_path: Path,
) -> None:
    # Folders whose names sort around their files' and each other's: "a b/" and "a-c.jpg"
    # come before "a/" in path order, "a.jpg" too ("/" sorts after " ", "-" and ".").
    for name in ["a/x.jpg", "a/y/z.jpg", "a b/x.jpg", "a.jpg", "a-c.jpg", "b.jpg", "a/ab.jpg"]:
        touch(tmp_path / name)
    touch(tmp_path / "pair" / "IMG_1.JPG")  # with a RAW: every file listed in full
    touch(tmp_path / "pair" / "IMG_1.NEF")
    os.symlink(tmp_path / "b.jpg", tmp_path / "link.jpg")  # a symlink: in full
    os.link(tmp_path / "a.jpg", tmp_path / "hard.jpg")  # two hard links: in full
    runs, files = _runs(tmp_path)
    plain = ["a b/x.jpg", "a-c.jpg", "a/ab.jpg", "a/x.jpg", "a/y/z.jpg", "b.jpg"]
    assert runs == [os.fsencode(tmp_path / p) for p in plain]
    assert runs == sorted(runs)  # what the index's records are compared with: path order
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == [
        "a.jpg", "hard.jpg", "link.jpg", "pair/IMG_1.JPG", "pair/IMG_1.NEF",
    ]  # fmt: skip
    # Without plain runs (every other caller) each file is listed in full, as before.
    every = sorted(x.path for x in walk([tmp_path]) if isinstance(x, FileEntry))
    assert every == sorted([*(tmp_path / p for p in plain), *files])


def test_an_album_folder_is_not_walked(tmp_path: Path) -> None:
    touch(tmp_path / "album" / "a.jpg")
    touch(tmp_path / "album" / ".phototag-album", b"")
    touch(tmp_path / "photo.jpg")
    assert [x.path.name for x in walk([tmp_path]) if isinstance(x, FileEntry)] == ["photo.jpg"]


def _records(rows: list[tuple[bytes, int, int]]) -> bytes:
    return b"".join(RECORD % row for row in rows)


def test_settled_records_take_runs_that_are_exactly_as_held_and_give_back_the_rest() -> None:
    held = [
        (b"/p/a.jpg", 17, 5),
        (b"/p/b.jpg", 170, -35),
        (b"/p/c d.jpg", 1, 2),
        (b"/p/e.jpg", 4, 4),
    ]
    records = SettledRecords(_records(held))
    assert records.take(_records(held[:1]))
    # An mtime that begins the one held ("-3" of "-35") is not the same record.
    assert not records.take(_records([(b"/p/b.jpg", 170, -3)]))
    assert records.take(_records(held[2:3]))  # after a photo that changed: found in place
    assert not records.take(_records([(b"/p/d.jpg", 1, 1)]))  # a new photo
    assert records.rest() == {b"/p/b.jpg": (170, -35), b"/p/e.jpg": (4, 4)}


def test_settled_records_hand_back_every_record_not_taken_whatever_the_runs() -> None:
    rng = random.Random(7)
    paths = sorted({b"/lib/%d/%d.jpg" % (rng.randrange(9), rng.randrange(400)) for _ in range(300)})
    stats = {p: (rng.randrange(1, 50), rng.randrange(-5, 10**12)) for p in paths}
    for _ in range(30):
        held = [p for p in paths if rng.random() < 0.8]  # in the index as settled
        walked = [p for p in paths if rng.random() < 0.8]  # found by the walk
        found = {p: stats[p] if rng.random() < 0.9 else (0, 0) for p in walked}  # some changed
        records = SettledRecords(_records([(p, *stats[p]) for p in held]))
        taken: list[bytes] = []
        start = 0
        while start < len(walked):  # runs of random lengths, in path order
            end = min(len(walked), start + rng.randrange(1, 12))
            run = walked[start:end]
            if records.take(_records([(p, *found[p]) for p in run])):
                taken += run
            start = end
        rest = records.rest()
        # What was taken is exactly as held; everything held is taken or handed back, once.
        assert all(p in held and found[p] == stats[p] for p in taken)
        assert sorted([*taken, *rest]) == held
        assert all(rest[p] == stats[p] for p in rest)
