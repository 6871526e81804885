"""Album refreshes without the models: the index is filled through its own API (tags as a
scan would record them) over small real files, so a refresh's comparisons of matches,
recorded entries and the folder run in the fast tier. The tag query's one-pass reading is
checked against reading every photo."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from phototag.config import LinkMode
from phototag.index import Index
from phototag.index.paths import is_under
from phototag.index.store import PhotoRecord
from phototag.library import corrections
from phototag.library.albums import build_album
from phototag.library.corrections import apply
from phototag.library.query import TagQuery, photo_when, run_query, term_matches
from phototag.models.recognizers import Candidate

BEACH = Candidate("beach", 0.9, "scene/outdoor/beach")
CITY = Candidate("city", 0.8, "scene/urban/city")


class Library:
    """Photos on disk and in the index, their tags set as a scan would set them."""

    def __init__(self, root: Path, idx: Index) -> None:
        self.root, self.idx = root, idx

    def add(
        self, rel: str, tags: list[Candidate], taken: str | None = "2024-06-01T10:00:00"
    ) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
        st = path.stat()
        with self.idx.transaction():
            pid = self.idx.upsert_photo(
                PhotoRecord(path, st.st_size, st.st_mtime_ns, rel.encode().hex(), 8, 8, taken)
            )
            self.idx.set_results(pid, "scene", "fp", tags)
        return path

    def tag(self, path: Path, tags: list[Candidate]) -> None:
        pid = self.idx.photo_id(path)
        assert pid is not None
        with self.idx.transaction():
            self.idx.set_results(pid, "scene", "fp", tags)


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    idx = Index.open(tmp_path / "i.sqlite")
    library = Library(tmp_path / "lib", idx)
    for i in range(30):
        library.add(f"2024/{i // 10}/IMG_{i:04d}.jpg", [BEACH] if i % 2 == 0 else [CITY],
                    f"2024-06-01T10:{i:02d}:00")  # fmt: skip
    yield library
    idx.close()


def _entries(folder: Path) -> dict[str, str]:
    return {p.name: os.readlink(p) if p.is_symlink() else "file" for p in folder.iterdir()}


def test_a_refresh_keeps_what_still_matches_without_reading_a_link(
    lib: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "albums" / "beach"
    first = build_album(lib.idx, "beach", folder, TagQuery(tags=("beach",)))
    assert first.matches == 15 and len(first.added) == 15
    before = _entries(folder)
    read: list[object] = []
    readlink = os.readlink
    monkeypatch.setattr(os, "readlink", lambda *a, **k: read.append(a) or readlink(*a, **k))
    again = build_album(lib.idx, "beach", folder, TagQuery(tags=("beach",)))
    assert (again.added, again.removed, again.left_alone, again.failed) == ([], [], [], [])
    assert read == []
    monkeypatch.undo()
    assert _entries(folder) == before


def test_only_links_that_are_still_ours_are_removed(lib: Library, tmp_path: Path) -> None:
    folder = tmp_path / "albums" / "beach"
    query = TagQuery(tags=("beach",))
    build_album(lib.idx, "beach", folder, query)
    entries = sorted(lib.idx.album_entries("beach").items())
    (mine, mine_src), (replaced, replaced_src), (theirs, theirs_src) = entries[:3]
    # The user put a link of their own, and a file, under two of our entries' names.
    os.unlink(folder / replaced)
    os.symlink(lib.root / "2024/0/IMG_0001.jpg", folder / replaced)
    os.unlink(folder / theirs)
    (folder / theirs).write_text("my file")
    (folder / "notes.txt").write_text("mine")
    for src in (mine_src, replaced_src, theirs_src):  # all three stop matching
        lib.tag(src, [CITY])
    report = build_album(lib.idx, "beach", folder, query)
    assert report.removed == [mine] and not os.path.lexists(folder / mine)
    assert sorted(report.left_alone) == sorted([replaced, theirs])
    assert os.readlink(folder / replaced) == os.fspath(lib.root / "2024/0/IMG_0001.jpg")
    assert (folder / theirs).read_text() == "my file"
    assert (folder / "notes.txt").read_text() == "mine"
    assert set(lib.idx.album_entries("beach")) == {e for e, _ in entries[3:]}
    # An entry the user replaced with a file while its photo still matches is theirs now,
    # and the photo comes back under another name.
    keep, keep_src = entries[3]
    os.unlink(folder / keep)
    (folder / keep).write_text("also mine")
    report = build_album(lib.idx, "beach", folder, query)
    assert report.left_alone == [keep] and (folder / keep).read_text() == "also mine"
    (new,) = report.added
    assert new != keep and os.readlink(folder / new) == os.fspath(keep_src)


def test_offline_photos_keep_their_entries_and_are_linked_when_back(
    lib: Library, tmp_path: Path
) -> None:
    folder = tmp_path / "albums" / "beach"
    query = TagQuery(tags=("beach",))
    build_album(lib.idx, "beach", folder, query)
    lib.add("2024/1/IMG_0100.jpg", [BEACH], "2024-06-02T00:00:00")
    away = lib.root / "2024" / "1"
    os.rename(away, lib.root / "away")  # an unplugged disk
    report = build_album(lib.idx, "beach", folder, query)
    assert (report.added, report.removed, report.left_alone) == ([], [], [])
    assert len(lib.idx.album_entries("beach")) == 15  # 5 of them offline, kept
    os.rename(lib.root / "away", away)
    report = build_album(lib.idx, "beach", folder, query)
    assert report.added == ["20240602-000000_IMG_0100.jpg"] and report.removed == []


def test_a_name_freed_by_a_removal_is_given_again_in_the_same_refresh(
    lib: Library, tmp_path: Path
) -> None:
    folder = tmp_path / "albums" / "beach"
    query = TagQuery(tags=("beach",))
    build_album(lib.idx, "beach", folder, query)
    old = lib.root / "2024/0/IMG_0000.jpg"
    lib.tag(old, [CITY])
    # Another photo of the same name and time, elsewhere, now matches.
    lib.add("2023/IMG_0000.jpg", [BEACH], "2024-06-01T10:00:00")
    report = build_album(lib.idx, "beach", folder, query)
    assert report.removed == ["20240601-100000_IMG_0000.jpg"]
    assert report.added == ["20240601-100000_IMG_0000.jpg"]
    assert os.readlink(folder / report.added[0]) == os.fspath(lib.root / "2023/IMG_0000.jpg")
    # A dry run names nothing it would not make.
    lib.tag(lib.root / "2023/IMG_0000.jpg", [CITY])
    lib.add("2022/IMG_0000.jpg", [BEACH], "2024-06-01T10:00:00")
    dry = build_album(lib.idx, "beach", folder, query, dry_run=True)
    assert dry.removed == ["20240601-100000_IMG_0000.jpg"] and len(dry.added) == 1
    assert dry.added[0] != "20240601-100000_IMG_0000.jpg"  # still taken: nothing was removed


@pytest.mark.parametrize("mode", [LinkMode.HARDLINK, LinkMode.COPY])
def test_hard_links_and_copies_are_kept_and_replaced_ones_left_alone(
    lib: Library, tmp_path: Path, mode: LinkMode
) -> None:
    folder = tmp_path / "albums" / "beach"
    query = TagQuery(tags=("beach",))
    build_album(lib.idx, "beach", folder, query, mode)
    again = build_album(lib.idx, "beach", folder, query, mode)
    assert (again.added, again.removed, again.left_alone) == ([], [], [])
    entry, source = sorted(lib.idx.album_entries("beach").items())[0]
    os.unlink(folder / entry)
    os.symlink(source, folder / entry)  # the user's own link in place of our file
    lib.tag(source, [CITY])
    report = build_album(lib.idx, "beach", folder, query, mode)
    assert report.left_alone == [entry] and (folder / entry).is_symlink()


def _reference(idx: Index, q: TagQuery) -> list[tuple[int, str, list[tuple[str, str, float]]]]:
    """What run_query must return, by reading every photo with all its tags."""
    every = idx.stored_corrections()
    roots = [Path(os.path.abspath(u)) for u in q.under]
    out = []
    for photo in idx.photos_with_tags(q.model):
        if not is_under(os.fsencode(photo.path), roots):
            continue
        tags = apply(photo.tags, every[photo.hash], q.model) if photo.hash in every else photo.tags
        if any(term_matches(t, p) for t in q.exclude for _, p, _ in tags):
            continue
        good = [(r, p, s) for r, p, s in tags if s >= q.min_score]
        hits = [any(term_matches(t, p) for _, p, _ in good) for t in q.tags]
        if not (any(hits) if q.any else all(hits)):
            continue
        shown = sorted(((r, p, s) for r, p, s in good if any(term_matches(t, p) for t in q.tags)),
                       key=lambda x: (-x[2], x[1]))  # fmt: skip
        out.append((photo.id, os.fsdecode(photo.path), shown))
    when = {m[0]: photo_when(*_times(idx, m[0])) for m in out}
    out.sort(key=lambda m: (when[m[0]], os.fsencode(m[1])))
    return out


def _times(idx: Index, pid: int) -> tuple[str | None, int]:
    taken, mtime = idx.conn.execute(
        "SELECT taken_at, mtime_ns FROM photos WHERE id = ?", (pid,)
    ).fetchone()
    return taken, mtime


def test_the_one_pass_tag_query_finds_what_reading_every_photo_finds(tmp_path: Path) -> None:
    idx = Index.open(tmp_path / "i.sqlite")
    lib = Library(tmp_path / "lib", idx)
    pool = [BEACH, CITY, Candidate("dog", 0.4, "animal/dog"), Candidate("cat", 0.95, "animal/cat"),
            Candidate("sunset", 0.3, "scene/sky/sunset"), Candidate("beach", 0.2, "scene/beach")]  # fmt: skip
    for i in range(60):
        tags = [c for k, c in enumerate(pool) if (i >> k) & 1]
        # the same second for some, no capture time for others: the path breaks ties
        lib.add(
            f"{'ab'[i % 2]}/{i % 7}/P{i:03d}.jpg",
            tags,
            None if i % 5 == 0 else "2024-01-01T00:00:00",
        )
    corrections.add(idx, lib.root / "a/0/P000.jpg", "scene/outdoor/beach")  # no stored tag
    corrections.add(idx, lib.root / "b/1/P001.jpg", "holiday")
    corrections.remove(idx, lib.root / "a/2/P002.jpg", "city")
    corrections.remove(idx, lib.root / "b/3/P003.jpg", "beach")
    queries = [
        TagQuery(tags=("beach",)), TagQuery(tags=("beach", "animal")), TagQuery(tags=("beach", "cat"), any=True),
        TagQuery(tags=("scene",), exclude=("dog",)), TagQuery(tags=("beach",), min_score=0.5),
        TagQuery(tags=("beach",), under=(str(lib.root / "a"),)), TagQuery(tags=("user",)),
        TagQuery(tags=("beach",), model="scene"), TagQuery(tags=("outdoor/beach",), exclude=("sky",)),
        TagQuery(tags=("nothing at all",)),
    ]  # fmt: skip
    for q in queries:
        got = [(m.photo_id, os.fsdecode(m.path), sorted(m.tags, key=lambda x: (-x[2], x[1])))
               for m in run_query(idx, q)]  # fmt: skip
        assert got == _reference(idx, q), q
    assert any(run_query(idx, q) for q in queries)
    assert list(itertools.chain.from_iterable(m.tags for m in run_query(idx, queries[0])))
    idx.close()


def test_an_album_of_the_same_name_from_another_query_is_not_replaced(
    lib: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'album --tag beach --under 2024/0' then 'album --tag beach': both are named 'beach'
    (the name comes from the tags); the second must not silently replace the first."""
    from typer.testing import CliRunner

    from phototag.cli.app import app

    monkeypatch.setenv("PHOTOTAG_ALBUMS", str(tmp_path / "albums"))
    index = ["--index", str(lib.idx.path)]
    under = str(lib.root / "2024" / "0")
    r = CliRunner().invoke(app, ["album", "--tag", "beach", "--under", under, *index])
    assert r.exit_code == 0, r.output
    saved = lib.idx.album("beach")
    assert saved is not None
    r = CliRunner().invoke(app, ["album", "--tag", "beach", *index])
    assert r.exit_code == 2 and "already exists" in r.output and "--out" in r.output, r.output
    assert lib.idx.album("beach") == saved  # the first album's query is kept
    r = CliRunner().invoke(app, ["album", "--tag", "beach", "--under", under, *index])
    assert r.exit_code == 0, r.output  # the same query again: brought up to date
