"""The walk lists photos and reports what it cannot follow, without ever stopping."""

from __future__ import annotations

import os
from pathlib import Path

from phototag.tagging.walk import FileEntry, WalkProblem, walk


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
