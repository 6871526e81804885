"""Issue 13, items 2, 4, 5 and 6: values phototag wrote stay known as its own wherever the
photo goes, writes change only what phototag owns, tag text survives, corrections are seen
everywhere. Every file result is read back with exiftool AND exiv2."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import invoke, ndjson
from metadata_readers import both, by_exiftool

from phototag.cli.console import ExitCode
from phototag.config import Device, WriteMode, WriteSettings, default_albums_dir
from phototag.index import Index
from phototag.index.schema import MIGRATIONS, ensure_schema
from phototag.library.albums import build_album
from phototag.library.corrections import corrected_photos
from phototag.library.query import TagQuery
from phototag.library.search import by_tags
from phototag.metadata.bookkeeping import is_bookkeeping
from phototag.metadata.keywords import Field, KeywordStyle, desired, fit_iptc
from phototag.metadata.write import Unchanged, WriteFailed, Wrote, clean, write_tags
from phototag.metadata.xmp import Sidecar, write_atomic
from phototag.tagging.scan import Finished, ScanOptions, ScanReport, scan
from phototag.tagpath import join, leaf, split, term_matches
from phototag.training.train import TrainOptions, keyword_tags, train_from_keywords

EMBED = WriteSettings(mode=WriteMode.EMBED)
#: 30 characters, 90 bytes of UTF-8: longer than IPTC's 64-byte keyword limit.
JAPANESE = "夏祭りの夜に浴衣を着て友達と一緒に川辺で花火を見上げた思い出"


@pytest.fixture
def ix(tmp_path: Path) -> Path:
    return tmp_path / "index.sqlite"


def rescan(index: Path, *roots: Path) -> ScanReport:
    with Index.open(index) as idx:
        events = list(scan(list(roots), idx, ScanOptions(device=Device.CPU)))
    last = events[-1]
    assert isinstance(last, Finished)
    return last.report


def ok(*args: str | Path) -> str:
    code, out, err = invoke(*args)
    assert code == 0, (args, out, err)
    return out


def exiftool(*args: str | Path) -> None:
    subprocess.run(["exiftool", "-q", "-q", "-overwrite_original", *map(str, args)], check=True)


def iptc_city(path: Path) -> tuple[str, str]:
    """IPTC City as exiftool and as exiv2 read it."""
    out = subprocess.run(
        ["exiftool", "-json", "-IPTC:City", str(path)], capture_output=True, text=True, check=True
    ).stdout
    record = json.loads(out)[0]
    lines = subprocess.run(["exiv2", "-PIkv", str(path)], capture_output=True).stdout
    city = [
        line.split(None, 1)[1].decode("utf-8", "replace").strip()
        for line in lines.splitlines()
        if line.startswith(b"Iptc.Application2.City")
    ]
    return str(record.get("City")), city[0] if city else ""


# -- tag paths and other programs' bookkeeping ------------------------------------------


def test_tag_paths_keep_a_slash_inside_a_level() -> None:
    path = join(["mine", "Music", "AC/DC"])
    assert path == "mine/Music/AC\\/DC" and split(path) == ["mine", "Music", "AC/DC"]
    assert leaf(path) == "AC/DC" and split("animal/dog") == [
        "animal",
        "dog",
    ]  # old paths read as before
    assert term_matches("AC/DC", path) and term_matches("music/ac/dc", path)
    assert term_matches("AC/DC", "band/AC/DC") and not term_matches("AC\\/DC", "band/AC/DC")
    assert not term_matches("DC", path) and not term_matches("C/D", "x/AB\\/C/D")
    # Each field gets the levels verbatim, or nothing where its separator would split one.
    assert desired([path], KeywordStyle(), iptc=True) == {
        Field.SUBJECT: ["AC/DC"], Field.HIERARCHICAL: ["phototag|mine|Music|AC/DC"],
        Field.IPTC: ["AC/DC"],
    }  # fmt: skip


def test_other_programs_bookkeeping_is_not_a_subject() -> None:
    for levels in (["darktable", "format", "jpg"], ["darktable", "changed"],
                   ["_Digikam_Internal_Tags_", "Color Label Red"], ["Pick Label Accepted"],
                   ["People", "Unknown"], ["Current Version"]):  # fmt: skip
        assert is_bookkeeping(levels), levels
    for levels in (["Music", "AC/DC"], ["People", "Anna"], ["Color"], ["jpg"]):
        assert not is_bookkeeping(levels), levels
    pairs = [("lr:hierarchicalSubject", "darktable|format|jpg"), ("dc:subject", "jpg"),
             ("lr:hierarchicalSubject", "Music|AC/DC"), ("digiKam:TagsList", "Music/AC/DC"),
             ("dc:subject", "AC/DC"), ("digiKam:TagsList", "_Digikam_Internal_Tags_/Color Label Red"),
             ("dc:subject", "Holiday")]  # fmt: skip
    assert keyword_tags(pairs, "mine") == {"mine/Music/AC\\/DC", "mine/Holiday"}
    assert keyword_tags([("dc:subject", "AC/DC")], "mine") == {"mine/AC\\/DC"}


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_train_from_keywords_keeps_ac_dc_and_never_learns_darktable_bookkeeping(
    tmp_path: Path, make_photo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten cats keyworded AC/DC (with darktable's and digiKam's bookkeeping beside it), ten
    coffees 'Breakfast': the tag is AC/DC, 'album --tag AC/DC' finds it, nothing near-
    duplicate or 'jpg' is written back."""
    lib = tmp_path / "lib"
    for i in range(12):
        make_photo(f"lib/cat{i:02d}.jpg", "chelsea", size=(300 + 7 * i, 200 + 3 * i))
        make_photo(f"lib/coffee{i:02d}.jpg", "coffee", size=(330 + 5 * i, 220 + 4 * i))
    for i in range(10):
        s = Sidecar.new()
        s.set_fields({
            Field.SUBJECT: ["AC/DC", "jpg"],
            Field.HIERARCHICAL: ["Music|AC/DC", "darktable|format|jpg", "darktable|changed"],
            Field.TAGSLIST: ["Music/AC/DC", "_Digikam_Internal_Tags_/Color Label Red"],
        })  # fmt: skip
        write_atomic(lib / f"cat{i:02d}.jpg.xmp", s.to_bytes())
        s = Sidecar.new()
        s.set_fields({Field.SUBJECT: ["Breakfast"]})
        write_atomic(lib / f"coffee{i:02d}.jpg.xmp", s.to_bytes())
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tmp_path / "w"))
    with Index.open(tmp_path / "i.sqlite") as idx:
        list(scan([lib], idx, ScanOptions(device=Device.CPU)))
        report = train_from_keywords(
            idx, TrainOptions(name="mine", out_dir=tmp_path / "w"), min_examples=5
        )
        assert sorted(m.path for m in report.tags) == ["mine/Breakfast", "mine/Music/AC\\/DC"]
        from phototag.tagging.retag import retag

        retag(idx, ["mine"], threshold=0.5)
        found = {m.path.name for m in TagQuery(tags=("AC/DC",)).matches(idx)}
        from phototag.models.catalog import Catalog
        from phototag.namecheck import check_tags

        check_tags(["AC/DC"], idx, Catalog.discover())  # 'album --tag AC/DC' is not refused
        assert {f"cat{i:02d}.jpg" for i in range(12)} <= found
        assert not any(n.startswith("coffee") for n in found)
        list(write_tags(idx, [lib], WriteSettings()))
    for name in ("cat03.jpg.xmp", "cat11.jpg.xmp"):  # keyworded by the user; not keyworded
        fields = both(lib / name)
        assert fields["dc:subject"].count("AC/DC") == 1, fields
        assert "phototag|mine|Music|AC/DC" in fields["lr:hierarchicalSubject"]
        assert not [
            v for vs in fields.values() for v in vs if "AC-DC" in v or "phototag|mine|jpg" in v
        ]
    assert both(lib / "cat03.jpg.xmp")["dc:subject"].count("jpg") == 1  # the user's own, once
    assert "jpg" not in both(lib / "cat11.jpg.xmp")["dc:subject"]


# -- item 2: what phototag stored is what it owns ----------------------------------------


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_a_long_keyword_is_shortened_by_phototag_stored_once_and_cleaned(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    assert len(JAPANESE) == 30 and len(JAPANESE.encode()) == 90
    photo = make_photo("lib/iptc.jpg", "coffee")
    exiftool("-IPTC:Keywords=mine", photo)
    lib = tmp_path / "lib"
    ok("scan", lib, "--index", ix, "--device", "cpu", "--write", "embed", "-q")
    ok("tag", "add", photo, JAPANESE, "--index", ix)  # written at once, embedded like before
    assert both(photo)["dc:subject"].count(JAPANESE) == 1
    for _ in range(3):
        ok("write", lib, "--write", "embed", "--index", ix, "-q")
    fields = both(photo)
    stored = fit_iptc(JAPANESE)
    assert len(stored.encode()) <= 64 and JAPANESE.startswith(stored)
    assert [v for v in fields["IPTC:Keywords"] if v[:3] == JAPANESE[:3]] == [stored], fields
    assert fields["IPTC:Keywords"][0] == "mine" and fields["dc:subject"].count(JAPANESE) == 1
    ok("clean", lib, "--index", ix, "-q")
    fields = both(photo)
    assert fields["IPTC:Keywords"] == ["mine"]
    assert not [v for vs in fields.values() for v in vs if JAPANESE[:3] in v]


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_cut_copies_left_by_an_older_phototag_are_recognised_and_taken_back(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    """Before phototag shortened keywords itself, exiftool cut them and every write added a
    copy; the index recorded the long value. The next write keeps one, clean takes it."""
    photo = make_photo("lib/old.jpg", "coffee")
    exiftool(
        "-IPTC:CodedCharacterSet=UTF8",
        "-IPTC:Keywords=mine",
        *[f"-IPTC:Keywords+={JAPANESE}"] * 3,
        photo,
    )
    cut = by_exiftool(photo)["IPTC:Keywords"][1:]
    assert len(cut) == 3 and all(c != JAPANESE for c in cut)
    rescan(ix, tmp_path / "lib")
    with Index.open(ix) as idx:
        from phototag.library.corrections import add

        add(idx, photo, JAPANESE)
        pid = idx.photo_id(photo)
        with idx.transaction():
            idx.record_target(photo, photo_id=pid, mode="embed", created=False, size=None,
                              mtime_ns=None, wanted="old", ours={"IPTC:Keywords": [JAPANESE]})  # fmt: skip
        list(write_tags(idx, [photo], EMBED))
        keywords = both(photo)["IPTC:Keywords"]
        assert keywords[0] == "mine" and len([k for k in keywords if k[:3] == JAPANESE[:3]]) == 1
        list(clean(idx, [photo]))
    assert both(photo)["IPTC:Keywords"] == ["mine"]


def offline_library(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    make_photo("lib/home/cup.jpg", "coffee", size=(320, 213))
    make_photo("lib/home/cat.jpg", "chelsea")
    make_photo("lib/nas/2023/cup.jpg", "coffee", size=(300, 200))
    make_photo("lib/nas/kitty.jpg", "chelsea", size=(300, 200))
    return tmp_path / "lib"


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_a_share_offline_for_a_night_keeps_its_photos_albums_and_ownership(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    lib = offline_library(tmp_path, make_photo)
    nas_cup = lib / "nas" / "2023" / "cup.jpg"
    ok("scan", lib, "--index", ix, "--device", "cpu", "-q")  # sidecars, created by phototag
    ok("tag", "add", nas_cup, "Grandma", "--index", ix)
    album = tmp_path / "albums" / "coffee"
    with Index.open(ix) as idx:
        build_album(idx, "coffee", album, TagQuery(tags=("espresso",)))
    entries = sorted(p.name for p in album.iterdir())
    assert len([e for e in entries if e.endswith(".jpg")]) == 2

    shutil.move(lib / "nas", tmp_path / "stash")  # the share is unmounted...
    (lib / "nas").mkdir()  # ...its mount point is an empty folder
    report = rescan(ix, lib)
    assert report.removed == 0 and report.offline == 2 and report.found == 2
    assert any("nas is missing or empty" in w for w in report.warnings), report.warnings
    with Index.open(ix) as idx:
        assert idx.count_photos() == 4 and len(idx.offline_ids()) == 2
    shown = json.loads(ok("show", nas_cup, "--index", ix, "--json").splitlines()[0])
    assert shown["offline"] is True and "Grandma" in json.dumps(shown["tags"])
    with Index.open(ix) as idx:
        again = build_album(idx, "coffee", album, TagQuery(tags=("espresso",)))
        assert again.removed == [] and sorted(p.name for p in album.iterdir()) == entries
        events = list(write_tags(idx, [lib], WriteSettings()))
        assert events and not [e for e in events if isinstance(e, WriteFailed)]  # offline: skipped
        cleaned = list(clean(idx, [lib / "nas"]))  # nothing to take back now, and nothing forgotten
        assert cleaned == [] and idx.targets_of(idx.photo_id(nas_cup) or -1)

    (lib / "nas").rmdir()
    shutil.move(tmp_path / "stash", lib / "nas")  # back the next night
    report = rescan(ix, lib)
    assert (report.decoded, report.unchanged, report.offline, report.removed) == (0, 4, 0, 0)
    with Index.open(ix) as idx:
        assert not idx.offline_ids()
        assert [m.path for m in TagQuery(tags=("Grandma",)).matches(idx)] == [nas_cup]
        list(clean(idx, [lib]))  # ownership kept: everything phototag wrote is taken back
    assert not list(lib.rglob("*.xmp"))

    (lib / "home" / "cat.jpg").unlink()  # gone from a folder whose other photos are there
    report = rescan(ix, lib)
    assert report.removed == 1 and report.offline == 0


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
@pytest.mark.parametrize("mode", ["embed", "sidecar"])
def test_ownership_follows_the_photo_when_its_folder_moves(
    mode: str, tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    make_photo("lib/a/cup.jpg", "coffee")
    make_photo("lib/keep.jpg", "chelsea")
    lib = tmp_path / "lib"
    ok("scan", lib, "--index", ix, "--device", "cpu", "--write", mode, "-q")
    if mode == "sidecar":  # the user's own keyword beside phototag's, in phototag's sidecar
        exiftool("-XMP-dc:Subject+=Holiday", lib / "a" / "cup.jpg.xmp")
    shutil.move(lib / "a", lib / "b")  # the photo and its sidecar move together
    report = rescan(ix, lib)
    assert report.decoded == 0 and report.reused == 1 and report.offline == 0
    moved = lib / "b" / "cup.jpg"
    target = moved if mode == "embed" else Path(f"{moved}.xmp")
    assert "espresso" in both(target)["dc:subject"]
    ok("clean", lib, "--index", ix, "-q")
    if mode == "embed":
        assert "dc:subject" not in both(moved) and "dc:subject" not in both(lib / "keep.jpg")
    else:
        assert both(target) == {"dc:subject": ["Holiday"]}  # phototag's taken back, the user's kept
        assert not (lib / "keep.jpg.xmp").exists()


# -- item 4: a legacy IPTC charset keeps its meaning -------------------------------------


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_latin1_iptc_keeps_its_meaning_through_write_and_clean(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    photo = make_photo("lib/old camera.jpg", "coffee")
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-charset", "iptc=Latin",
                    "-IPTC:City=München", "-IPTC:Keywords=Frühstück", str(photo)], check=True)  # fmt: skip
    raw = photo.read_bytes()
    assert "München".encode("latin-1") in raw and b"\x1b%G" not in raw  # Latin-1, undeclared
    ok("scan", tmp_path / "lib", "--index", ix, "--device", "cpu", "--write", "embed", "-q")
    assert iptc_city(photo) == ("München", "München")
    fields = both(photo)
    assert fields["IPTC:Keywords"][0] == "Frühstück" and "espresso" in fields["IPTC:Keywords"]
    ok("clean", tmp_path / "lib", "--index", ix, "-q")
    assert iptc_city(photo) == ("München", "München")
    assert both(photo)["IPTC:Keywords"] == ["Frühstück"]


# -- item 6: corrections ------------------------------------------------------------------


@pytest.fixture
def corrected(tmp_path: Path, make_photo: Callable[..., Path], ix: Path) -> Iterator[Path]:
    """Two coffees and a cat, scanned with sidecars; the first coffee corrected by hand."""
    make_photo("lib/a/cup.jpg", "coffee")
    make_photo("lib/a/cup2.jpg", "coffee", size=(300, 200))
    make_photo("lib/a/cat.jpg", "chelsea")
    lib = tmp_path / "lib"
    ok("scan", lib, "--index", ix, "--device", "cpu", "-q")
    cup = lib / "a" / "cup.jpg"
    assert "espresso" in both(Path(f"{cup}.xmp"))["dc:subject"]
    ok("tag", "add", cup, "Grandma", "--index", ix)
    ok("tag", "remove", cup, "espresso", "--index", ix)
    yield lib


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_a_correction_is_written_at_once_and_seen_by_every_query(
    corrected: Path, ix: Path, tmp_path: Path
) -> None:
    cup, cup2 = corrected / "a" / "cup.jpg", corrected / "a" / "cup2.jpg"
    subject = both(Path(f"{cup}.xmp"))["dc:subject"]  # no 'write' was run
    assert "Grandma" in subject and "espresso" not in subject
    with Index.open(ix) as idx:
        assert [m.path for m in TagQuery(tags=("Grandma",)).matches(idx)] == [cup]
        assert [m.path for m in TagQuery(tags=("espresso",)).matches(idx)] == [cup2]
        assert [s.path for s in by_tags(idx, {"user/Grandma": 1.0})] == [cup]
        album = tmp_path / "albums" / "g"
        build_album(idx, "g", album, TagQuery(tags=("Grandma",)), html=True)
        assert "Grandma" in (album / "index.html").read_text()
    ok("album", "--tag", "Grandma", "--index", ix)  # the command's own check knows the tag
    made = [p for p in (default_albums_dir() / "Grandma").iterdir() if p.suffix == ".jpg"]
    assert [p.resolve() for p in made] == [cup]
    with Index.open(ix) as idx:
        tags = {p: t for p, t in ((ph.path, ph.tags) for ph in corrected_photos(idx))}
        assert not [p for _, p, _ in tags[cup] if "espresso" in p]
    rows = ndjson(ok("tags", "--index", ix, "--json"))
    count = {r["path"]: r["photos"] for r in rows}
    assert count["user/Grandma"] == 1 and count["food/drink/espresso"] == 1
    shown = json.loads(ok("show", cup, "--index", ix, "--json").splitlines()[0])
    assert [c["tag"] for c in shown["tags"]["user"]] == ["Grandma"]
    assert "espresso" not in json.dumps(shown["tags"])
    assert shown["corrections"] == [
        {"path": "user/Grandma", "action": "add", "source": "user"},
        {"path": "espresso", "action": "remove", "source": "user"},
    ]
    text = ok("show", cup, "--index", ix)
    assert "corrections: + user/Grandma; - espresso" in text


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_corrections_survive_moves_and_reindexing(corrected: Path, ix: Path) -> None:
    shutil.move(corrected / "a", corrected / "b")
    rescan(ix, corrected)
    cup = corrected / "b" / "cup.jpg"
    with Index.open(ix) as idx:
        assert [m.path for m in TagQuery(tags=("Grandma",)).matches(idx)] == [cup]
        assert cup not in [m.path for m in TagQuery(tags=("espresso",)).matches(idx)]
    ok("forget", corrected, "--index", ix)
    rescan(ix, corrected)
    with Index.open(ix) as idx:
        assert [m.path for m in TagQuery(tags=("Grandma",)).matches(idx)] == [cup]
        assert cup not in [m.path for m in TagQuery(tags=("espresso",)).matches(idx)]
        list(write_tags(idx, [corrected], WriteSettings()))
    subject = both(Path(f"{cup}.xmp"))["dc:subject"]
    assert "Grandma" in subject and "espresso" not in subject


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_removing_a_tag_the_photo_never_had_says_so(corrected: Path, ix: Path) -> None:
    cup = corrected / "a" / "cup.jpg"
    before = sqlite3.connect(ix).execute("SELECT COUNT(*) FROM corrections").fetchone()
    code, out, err = invoke("tag", "remove", cup, "missile", "--index", ix)
    assert code == ExitCode.USAGE and "has no tag 'missile'" in err and "removed" not in out
    code, _, err = invoke("tag", "remove", cup, "espresso", "--index", ix)  # removed already
    assert code == ExitCode.USAGE and "has no tag" in err
    after = sqlite3.connect(ix).execute("SELECT COUNT(*) FROM corrections").fetchone()
    assert before == after
    for bad in ("", "a|b", "line\nbreak", "nul\x00", "a//b"):
        code, _, err = invoke("tag", "add", cup, bad, "--index", ix)
        assert code == ExitCode.USAGE and "tag may not" in err, (bad, err)
    ok("tag", "add", cup, "food/drink/espresso", "--index", ix)  # and it can come back
    assert "espresso" in both(Path(f"{cup}.xmp"))["dc:subject"]


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
@pytest.mark.parametrize("mode", ["sidecar", "embed"])
def test_a_keyword_the_user_deleted_elsewhere_is_not_written_back(
    mode: str, tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    cup = make_photo("lib/cup.jpg", "coffee")
    make_photo("lib/cat.jpg", "chelsea")
    lib = tmp_path / "lib"
    ok("scan", lib, "--index", ix, "--device", "cpu", "--write", mode, "-q")
    target = Path(f"{cup}.xmp") if mode == "sidecar" else cup
    assert "espresso" in both(target)["dc:subject"]
    # As Lightroom does: the keyword leaves dc:subject and lr:hierarchicalSubject.
    exiftool("-XMP-dc:Subject-=espresso", "-XMP-lr:HierarchicalSubject-=phototag|food|drink|espresso",
             target)  # fmt: skip
    ok("scan", lib, "--index", ix, "--device", "cpu", "--write", mode, "-q")
    ok("write", lib, "--index", ix, "--write", mode, "-q")
    fields = both(target)
    assert "espresso" not in fields["dc:subject"]
    assert not [
        v for vs in fields.values() for v in vs if v.endswith("espresso")
    ]  # all fields agree
    with Index.open(ix) as idx:
        assert cup not in [m.path for m in TagQuery(tags=("espresso",)).matches(idx)]
        rows = idx.conn.execute("SELECT path, action, source FROM corrections").fetchall()
        assert ("food/drink/espresso", "remove", "file") in rows
        assert {leaf(p) for p, _, _ in rows} == {"espresso"}
        assert {(a, s) for _, a, s in rows} == {("remove", "file")}
        events = list(write_tags(idx, [lib], WriteSettings(mode=WriteMode(mode))))
        assert all(isinstance(e, Unchanged) for e in events)


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_a_deleted_keyword_in_the_users_language_is_recorded_in_english(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    """--lang ja wrote エスプレッソ; the user deleted it: the index (English) learns food/drink/espresso."""
    cup = make_photo("lib/cup.jpg", "coffee")
    lib = tmp_path / "lib"
    ok("--lang", "ja", "scan", lib, "--index", ix, "-m", "food", "--write", "sidecar", "-q")
    sidecar = Path(f"{cup}.xmp")
    assert "エスプレッソ" in both(sidecar)["dc:subject"]
    exiftool("-XMP-dc:Subject-=エスプレッソ", "-XMP-lr:HierarchicalSubject-=phototag|食べ物|飲み物|エスプレッソ",
             sidecar)  # fmt: skip
    ok("--lang", "ja", "write", lib, "--index", ix, "-q")
    fields = both(sidecar)
    assert not [v for vs in fields.values() for v in vs if v.endswith("エスプレッソ")], fields
    with Index.open(ix) as idx:
        rows = idx.conn.execute("SELECT path, action, source FROM corrections").fetchall()
        assert rows == [("food/drink/espresso", "remove", "file")]
        assert cup not in [m.path for m in TagQuery(tags=("espresso",)).matches(idx)]


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_a_field_dropped_as_a_whole_is_not_taken_for_deleted_tags(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    """A program that does not know digiKam:TagsList drops it: the user deleted no tag."""
    cup = make_photo("lib/cup.jpg", "coffee")
    ok("scan", tmp_path / "lib", "--index", ix, "--device", "cpu", "-q")
    sidecar = Path(f"{cup}.xmp")
    before = both(sidecar)
    exiftool("-XMP-digiKam:TagsList=", sidecar)
    assert "digiKam:TagsList" not in both(sidecar)
    ok("write", tmp_path / "lib", "--index", ix, "-q")
    assert both(sidecar) == before  # written back whole
    with Index.open(ix) as idx:
        assert idx.stored_corrections() == {}


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_retag_keeps_each_photos_write_mode(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    make_photo("lib/cup.jpg", "coffee")
    make_photo("lib/cat.jpg", "chelsea")
    lib = tmp_path / "lib"
    ok("scan", lib, "--index", ix, "--device", "cpu", "--write", "embed", "-q")
    before = both(lib / "cup.jpg")["dc:subject"]
    ok("retag", "--threshold", "0.02", "--top-k", "10", "--index", ix, "-q")
    assert not list(lib.glob("*.xmp"))  # no second, diverging set of keywords
    after = both(lib / "cup.jpg")["dc:subject"]
    assert set(before) < set(after)  # the new tags went into the file itself


@pytest.mark.slow  # scans with the real models in-process (fast-tier guard)
def test_a_tag_correction_on_an_embedded_photo_is_embedded(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    cup = make_photo("lib/cup.jpg", "coffee")
    ok("scan", tmp_path / "lib", "--index", ix, "--device", "cpu", "--write", "embed", "-q")
    ok("tag", "add", cup, "Grandma", "--index", ix)
    assert "Grandma" in both(cup)["dc:subject"] and not list((tmp_path / "lib").glob("*.xmp"))
    with Index.open(ix) as idx:
        (event,) = list(write_tags(idx, [cup], EMBED))
        assert isinstance(event, Unchanged | Wrote)
        assert [m.path for m in TagQuery(tags=("Grandma",)).matches(idx)] == [cup]


def test_tag_counts_after_corrections_equal_counting_every_photo(tmp_path: Path) -> None:
    """``tags`` counts only the corrected photos again; it must agree with counting all."""
    import random

    from phototag.index.store import PhotoRecord
    from phototag.library.corrections import corrected_counts
    from phototag.models.recognizers import Candidate

    rng = random.Random(0)
    paths = ["animal/cat", "animal/dog", "food/drink/espresso", "scene/beach", "weapon/missile"]
    with Index.open(tmp_path / "i.sqlite") as idx:
        with idx.transaction():
            for i in range(60):
                pid = idx.upsert_photo(PhotoRecord(tmp_path / f"{i}.jpg", 1, 1, f"h{i % 50}",
                                                   1, 1, None))  # fmt: skip
                for rec in ("a", "b"):
                    chosen = rng.sample(paths, rng.randint(0, 3))
                    idx.set_results(pid, rec, "fp", [Candidate(leaf(p), 0.5, p) for p in chosen])
            for i in range(0, 50, 3):
                idx.correct(f"h{i}", rng.choice(["missile", "animal", "beach", "dog"]), "remove")
                idx.correct(f"h{i}", rng.choice(["user/Grandma", "animal/cat"]), "add")
        for recognizer in (None, "a", "user"):
            brute: dict[tuple[str, str], int] = {}
            for photo in corrected_photos(idx, recognizer):
                for r, p in {(r, p) for r, p, _ in photo.tags}:
                    brute[r, p] = brute.get((r, p), 0) + 1
            got = {(c.recognizer, c.path): c.photos for c in corrected_counts(idx, recognizer)}
            assert got == brute and got


# -- the index keeps users' corrections through the migration -----------------------------


def test_the_migration_keeps_corrections_by_content(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.sqlite", isolation_level=None)
    ensure_schema(conn, MIGRATIONS[:5])  # an index written before issue 13
    conn.execute("INSERT INTO photos (id, path, size, mtime_ns, hash, scanned_at)"
                 " VALUES (1, ?, 1, 1, 'h1', 0)", (b"/p/a.jpg",))  # fmt: skip
    conn.execute("INSERT INTO corrections VALUES (1, 'user/Grandma', 'add', 5.0)")
    conn.execute("INSERT INTO corrections VALUES (1, 'missile', 'remove', 6.0)")
    conn.execute("INSERT INTO targets (target, photo_id, mode, created) VALUES (?, 1, 'embed', 0)",
                 (b"/p/a.jpg",))  # fmt: skip
    conn.close()
    with Index.open(tmp_path / "old.sqlite") as idx:
        rows = idx.conn.execute("SELECT hash, path, action, source FROM corrections ORDER BY path")
        assert rows.fetchall() == [("h1", "missile", "remove", "user"),
                                   ("h1", "user/Grandma", "add", "user")]  # fmt: skip
        assert idx.corrections(action="add") == {1: ["user/Grandma"]}
        rec = idx.target(Path("/p/a.jpg"))
        assert rec is not None and rec.hash == "h1"


def test_a_hand_added_tag_replaces_phototags_own_keyword_in_another_case() -> None:
    """Tester report item 5: a hand-added 'Kaffee/Espresso' did not put 'Espresso' into
    dc:subject: the 'espresso' phototag had written earlier stood in for it, apart from case,
    and stayed there even once phototag no longer wanted it. A user's own value is kept."""
    from phototag.metadata.keywords import merge

    wanted = desired(["Kaffee/Espresso"], KeywordStyle(), iptc=True)
    assert wanted[Field.SUBJECT] == ["Espresso"] and wanted[Field.IPTC] == ["Espresso"]
    ours = {Field.SUBJECT: ["espresso"], Field.IPTC: ["espresso"]}
    change = merge({Field.SUBJECT: ["espresso"], Field.IPTC: ["espresso"]}, ours, wanted)
    assert change.values[Field.SUBJECT] == ["Espresso"] == change.ours[Field.SUBJECT]
    assert change.values[Field.IPTC] == ["Espresso"]
    users = merge({Field.SUBJECT: ["espresso"]}, {}, wanted)  # the user's spelling stays
    assert users.values[Field.SUBJECT] == ["espresso"] and Field.SUBJECT not in users.ours


@pytest.mark.slow  # runs the real models
def test_switching_the_write_mode_moves_phototags_values(
    tmp_path: Path, make_photo: Callable[..., Path], ix: Path
) -> None:
    """Tester report item 6: embed, then sidecar, left phototag's keywords embedded (never
    updated again) next to the new sidecar. They move, and the user's own stay."""
    cup = make_photo("lib/cup.jpg", "coffee")
    lib = tmp_path / "lib"
    exiftool("-XMP-dc:Subject=Mine", "-IPTC:Keywords=Mine", cup)
    ok("scan", lib, "--index", ix, "--device", "cpu", "--write", "embed", "-q")
    assert "espresso" in both(cup)["dc:subject"]
    ok("write", lib, "--index", ix, "--write", "sidecar", "-q")
    embedded, side = both(cup), both(Path(f"{cup}.xmp"))
    assert embedded["dc:subject"] == ["Mine"] and embedded["IPTC:Keywords"] == ["Mine"], embedded
    assert "espresso" in side["dc:subject"], side
    ok("write", lib, "--index", ix, "--write", "embed", "-q")  # and back
    assert "espresso" in both(cup)["dc:subject"] and "Mine" in both(cup)["dc:subject"]
    assert not Path(f"{cup}.xmp").exists()  # phototag made it, and it is empty now
