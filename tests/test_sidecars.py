"""Which file is a photo's sidecar (issue 13, item 1), moves (item 6) and ``phototag check``.

Every result is read back with exiftool AND exiv2 (``metadata_readers.both``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import invoke, ndjson
from metadata_readers import both

from phototag.config import SidecarNaming, WriteSettings
from phototag.index import Index
from phototag.index.store import PhotoRecord
from phototag.metadata.read import keywords_in_files, user_keywords
from phototag.metadata.sidecars import ProblemKind, SidecarResolver, check_sidecars
from phototag.metadata.write import Unchanged, WriteFailed, Wrote, clean, write_tags
from phototag.models.recognizers import Candidate

BASENAME = WriteSettings(sidecar_name=SidecarNaming.BASENAME)
FULL = WriteSettings()

USER_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000 79.217bca6, 2021/06/14-18:28:11">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmp:Rating="3">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>{keyword}</rdf:li>
    </rdf:Bag>
   </dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def user_xmp(path: Path, keyword: str) -> Path:
    path.write_text(USER_XMP.format(keyword=keyword), encoding="utf-8")
    return path


@pytest.fixture
def idx(tmp_path: Path) -> Iterator[Index]:
    index = Index.open(tmp_path / "i.sqlite")
    yield index
    index.close()


def indexed(idx: Index, photo: Path, *tag_paths: str) -> int:
    """Put ``photo`` in the index with these tags, as a scan would (no model is run)."""
    st = photo.stat()
    with idx.transaction():
        pid = idx.upsert_photo(
            PhotoRecord(photo, st.st_size, st.st_mtime_ns, photo.name, 64, 48, None)
        )
        idx.set_results(pid, "test", "fp", [Candidate(p.split("/")[-1], 0.9, p) for p in tag_paths])
    return pid


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def written(events: list[object]) -> list[Wrote]:
    assert not [e for e in events if isinstance(e, WriteFailed)], events
    return [e for e in events if isinstance(e, Wrote)]


def test_two_photos_with_one_stem_never_share_a_basename_sidecar(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    coffee = make_photo("lib/IMG_0001.jpg", "coffee")
    cat = make_photo("lib/IMG_0001.png", "chelsea")
    indexed(idx, coffee, "food/drink/espresso")
    indexed(idx, cat, "animal/cat")
    events = written(list(write_tags(idx, [tmp_path / "lib"], BASENAME)))
    assert len(events) == 2
    assert not (tmp_path / "lib" / "IMG_0001.xmp").exists()
    assert both(tmp_path / "lib" / "IMG_0001.jpg.xmp")["dc:subject"] == ["espresso"]
    assert both(tmp_path / "lib" / "IMG_0001.png.xmp")["dc:subject"] == ["cat"]
    # ... and says so.
    assert all(any("shares the sidecar name IMG_0001.xmp" in w for w in e.warnings) for e in events)
    # A second write with nothing new changes no byte and no timestamp.
    before = snapshot(tmp_path / "lib")
    again = list(write_tags(idx, [tmp_path / "lib"], BASENAME))
    assert all(isinstance(e, Unchanged) for e in again)
    assert snapshot(tmp_path / "lib") == before


@pytest.mark.parametrize("other", ["IMG_0001.HEIC", "IMG_0001.jpeg", "img_0001.png"])
def test_any_two_stills_with_one_stem_get_their_own_sidecars(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path], other: str
) -> None:
    a = make_photo("lib/IMG_0001.jpg", "coffee")
    b = make_photo(f"lib/{other}", "chelsea")
    indexed(idx, a, "food/espresso")
    indexed(idx, b, "animal/cat")
    written(list(write_tags(idx, [tmp_path / "lib"], BASENAME)))
    names = sorted(p.name for p in (tmp_path / "lib").glob("*.xmp"))
    assert names == sorted(["IMG_0001.jpg.xmp", f"{other}.xmp"])
    if not other.lower().endswith(".heic"):  # exiv2 0.27 reads HEIC sidecars fine, files not
        assert both(tmp_path / "lib" / f"{other}.xmp")["dc:subject"] == ["cat"]


def test_upper_case_lightroom_sidecar_is_used_not_doubled(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    photo = make_photo("lib/IMG_0002.JPG", "coffee")
    theirs = user_xmp(tmp_path / "lib" / "IMG_0002.XMP", "Grandma")
    pid = indexed(idx, photo, "food/espresso")
    for settings in (BASENAME, FULL):  # whichever naming: the existing file is the sidecar
        written(list(write_tags(idx, [tmp_path / "lib"], settings)))
        assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == [
            "IMG_0002.JPG",
            "IMG_0002.XMP",
        ]
        assert both(theirs)["dc:subject"] == ["Grandma", "espresso"]
    # show and train --from-keywords read the user's file.
    sources = [k.source for k in keywords_in_files(photo)]
    assert theirs in sources
    assert user_keywords(idx)[pid] == [("dc:subject", "Grandma")]


def test_an_existing_lightroom_sidecar_is_used_under_default_naming(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    photo = make_photo("lib/IMG_0001.jpg", "coffee")
    theirs = user_xmp(tmp_path / "lib" / "IMG_0001.xmp", "Holiday")
    indexed(idx, photo, "food/espresso")
    written(list(write_tags(idx, [tmp_path / "lib"], FULL)))
    assert not (tmp_path / "lib" / "IMG_0001.jpg.xmp").exists()
    assert both(theirs)["dc:subject"] == ["Holiday", "espresso"]
    # clean takes back only phototag's values and keeps the user's file.
    list(clean(idx, [tmp_path / "lib"]))
    assert both(theirs)["dc:subject"] == ["Holiday"]


@pytest.mark.parametrize("naming", [SidecarNaming.FULL, SidecarNaming.BASENAME])
def test_when_both_conventions_exist_the_asked_naming_wins_and_the_other_is_untouched(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path], naming: SidecarNaming
) -> None:
    photo = make_photo("lib/IMG_0003.jpg", "coffee")
    full = user_xmp(tmp_path / "lib" / "IMG_0003.jpg.xmp", "darktable")
    base = user_xmp(tmp_path / "lib" / "IMG_0003.xmp", "lightroom")
    indexed(idx, photo, "food/espresso")
    used, other = (full, base) if naming is SidecarNaming.FULL else (base, full)
    untouched = other.read_bytes()
    (ev,) = written(list(write_tags(idx, [tmp_path / "lib"], WriteSettings(sidecar_name=naming))))
    assert ev.target == used
    assert "espresso" in both(used)["dc:subject"]
    assert other.read_bytes() == untouched
    assert any("left alone" in w for w in ev.warnings)
    kinds = [p.kind for p in check_sidecars([tmp_path / "lib"])]
    assert kinds == [ProblemKind.TWO_CONVENTIONS]


def test_raw_jpeg_pair_the_basename_sidecar_is_the_raws(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    jpeg = make_photo("lib/DSC_0001.JPG", "coffee")
    (tmp_path / "lib" / "DSC_0001.NEF").write_bytes(b"raw bytes phototag does not read")
    raws = user_xmp(tmp_path / "lib" / "DSC_0001.xmp", "Lightroom keyword of the RAW")
    untouched = raws.read_bytes()
    pid = indexed(idx, jpeg, "food/espresso")
    written(list(write_tags(idx, [tmp_path / "lib"], BASENAME)))
    assert raws.read_bytes() == untouched
    assert both(tmp_path / "lib" / "DSC_0001.JPG.xmp")["dc:subject"] == ["espresso"]
    assert raws not in SidecarResolver().belonging(jpeg)
    assert pid not in user_keywords(idx)  # the RAW's keywords are not the JPEG's examples
    assert check_sidecars([tmp_path / "lib"]) == []


def test_live_photo_the_basename_sidecar_is_the_stills(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    still = make_photo("lib/IMG_0004.HEIC", "chelsea")
    (tmp_path / "lib" / "IMG_0004.MOV").write_bytes(b"\0\0\0\x14ftypqt  ")
    indexed(idx, still, "animal/cat")
    written(list(write_tags(idx, [tmp_path / "lib"], BASENAME)))
    assert both(tmp_path / "lib" / "IMG_0004.xmp")["dc:subject"] == ["cat"]
    assert not (tmp_path / "lib" / "IMG_0004.HEIC.xmp").exists()


def test_a_sidecar_two_photos_shared_before_is_emptied_of_phototags_values(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    """The aftermath of the old bug: IMG_0001.xmp written for both photos is taken back."""
    coffee = make_photo("lib/IMG_0001.jpg", "coffee")
    cat = make_photo("lib/IMG_0001.png", "chelsea")
    indexed(idx, coffee, "food/espresso")
    pid = indexed(idx, cat, "animal/cat")
    shared = tmp_path / "lib" / "IMG_0001.xmp"
    shared.write_text(USER_XMP.format(keyword="cat"), encoding="utf-8")
    with idx.transaction():
        idx.record_target(shared, photo_id=pid, mode="sidecar", created=True, size=None,
                          mtime_ns=None, wanted="x", ours={"dc:subject": ["cat"]})  # fmt: skip
    written(list(write_tags(idx, [tmp_path / "lib"], BASENAME)))
    # Not deleted (the rating in it is no longer only phototag's), but the keyword is gone.
    assert "dc:subject" not in both(shared)
    assert idx.target(shared) is None
    assert both(tmp_path / "lib" / "IMG_0001.png.xmp")["dc:subject"] == ["cat"]


def test_a_sidecar_phototag_created_moves_with_its_photo(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    photo = make_photo("lib/a/IMG_0005.jpg", "coffee")
    pid = indexed(idx, photo, "food/espresso")
    written(list(write_tags(idx, [tmp_path / "lib"], FULL)))
    old = tmp_path / "lib" / "a" / "IMG_0005.jpg.xmp"
    # Another program adds to phototag's sidecar (darktable's history, a rating): it moves too.
    old.write_text(
        old.read_text().replace(
            'rdf:about=""', 'rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="5"'
        )
    )
    (tmp_path / "lib" / "b").mkdir()
    moved = tmp_path / "lib" / "b" / "holiday.jpg"
    os.rename(photo, moved)
    st = moved.stat()
    with idx.transaction():  # what a scan does when it recognises the content
        idx.move_photo(
            pid, PhotoRecord(moved, st.st_size, st.st_mtime_ns, photo.name, 64, 48, None)
        )
    (ev,) = list(write_tags(idx, [tmp_path / "lib"], FULL))
    new = tmp_path / "lib" / "b" / "holiday.jpg.xmp"
    assert not old.exists()
    assert both(new)["dc:subject"] == ["espresso"]
    assert 'Rating="5"' in new.read_text()
    assert idx.targets_of(pid) == [new]
    assert any("moved" in w for w in getattr(ev, "warnings", []))
    # ... and clean still takes it all back.
    list(clean(idx, [tmp_path / "lib"]))
    assert "dc:subject" not in both(new)


def test_a_users_sidecar_stays_where_it_is_when_the_photo_moves(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    photo = make_photo("lib/a/IMG_0006.jpg", "coffee")
    theirs = user_xmp(tmp_path / "lib" / "a" / "IMG_0006.jpg.xmp", "Grandma")
    pid = indexed(idx, photo, "food/espresso")
    written(list(write_tags(idx, [tmp_path / "lib"], FULL)))
    assert both(theirs)["dc:subject"] == ["Grandma", "espresso"]
    moved = tmp_path / "lib" / "IMG_0006.jpg"
    os.rename(photo, moved)
    st = moved.stat()
    with idx.transaction():
        idx.move_photo(
            pid, PhotoRecord(moved, st.st_size, st.st_mtime_ns, photo.name, 64, 48, None)
        )
    written(list(write_tags(idx, [tmp_path / "lib"], FULL)))
    assert both(theirs)["dc:subject"] == ["Grandma"]  # the user's, as it was before phototag
    assert both(tmp_path / "lib" / "IMG_0006.jpg.xmp")["dc:subject"] == ["espresso"]
    orphans = [p for p in check_sidecars([tmp_path / "lib"]) if p.kind is ProblemKind.ORPHAN]
    assert [p.sidecars for p in orphans] == [(theirs,)]


def test_check_lists_conflicts_and_orphans_with_json_and_exit_code(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    lib = tmp_path / "lib"
    make_photo("lib/ok/IMG_1.jpg", "coffee")
    user_xmp(lib / "ok" / "IMG_1.jpg.xmp", "x")
    code, out, _ = invoke("check", lib / "ok")
    assert code == 0, out
    make_photo("lib/IMG_0001.jpg", "coffee")
    make_photo("lib/IMG_0001.png", "chelsea")
    user_xmp(lib / "IMG_0001.xmp", "shared")  # two photos claim it
    make_photo("lib/IMG_0002.jpg", "coffee")
    user_xmp(lib / "IMG_0002.xmp", "a")  # two conventions
    user_xmp(lib / "IMG_0002.jpg.xmp", "b")
    user_xmp(lib / "gone.jpg.xmp", "orphan")  # its photo is gone
    user_xmp(lib / "IMG_0003.xmp", "twin")  # case twins (and orphans)
    user_xmp(lib / "IMG_0003.XMP", "twin")
    code, out, _ = invoke("check", lib, "--json")
    assert code == 1
    found = [json.loads(line) for line in out.splitlines() if line.strip()]
    problems = {
        (d["kind"], tuple(Path(s).name for s in d["sidecars"])) for d in found if "kind" in d
    }
    assert problems == {
        ("shared", ("IMG_0001.xmp",)),
        ("two-conventions", ("IMG_0002.jpg.xmp", "IMG_0002.xmp")),
        ("orphan", ("gone.jpg.xmp",)),
        ("case-twins", ("IMG_0003.XMP", "IMG_0003.xmp")),
        ("orphan", ("IMG_0003.XMP",)),
        ("orphan", ("IMG_0003.xmp",)),
    }
    code, out, err = invoke("check", lib)
    assert code == 1 and "IMG_0001.xmp" in out + err
    # one photo named: only what concerns it
    code, out, _ = invoke("check", lib / "IMG_0001.png", "--json")
    assert code == 1 and [d["kind"] for d in ndjson(out)] == ["shared"]
    code, out, _ = invoke("check", lib / "ok" / "IMG_1.jpg", "--json")
    assert code == 0 and ndjson(out) == []
    code, out, err = invoke("check", tmp_path / "nowhere")
    assert code == 2 and "Traceback" not in out + err


@pytest.mark.slow  # the real models, through the CLI
def test_the_issues_example_through_the_command_line(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    """scan --sidecar-name basename, then write: the coffee JPEG is never labelled "cat"."""
    lib = tmp_path / "lib"
    make_photo("lib/IMG_0001.jpg", "coffee")
    make_photo("lib/IMG_0001.png", "chelsea")
    code, _, err = invoke("scan", lib, "--device", "cpu", "--sidecar-name", "basename")
    assert code == 0, err
    assert "shares the sidecar name IMG_0001.xmp" in err
    assert not (lib / "IMG_0001.xmp").exists()
    coffee, cat = both(lib / "IMG_0001.jpg.xmp"), both(lib / "IMG_0001.png.xmp")
    assert "espresso" in coffee["dc:subject"] and "espresso" not in cat["dc:subject"]
    before = snapshot(lib)
    code, _, err = invoke("write", lib, "--sidecar-name", "basename")
    assert code == 0 and "0 written, 2 unchanged" in err
    assert snapshot(lib) == before


def test_a_move_killed_between_link_and_unlink_is_finished_by_the_next_write(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    photo = make_photo("lib/a/IMG_0007.jpg", "coffee")
    pid = indexed(idx, photo, "food/espresso")
    written(list(write_tags(idx, [tmp_path / "lib"], FULL)))
    old = tmp_path / "lib" / "a" / "IMG_0007.jpg.xmp"
    moved = tmp_path / "lib" / "IMG_0007.jpg"
    os.rename(photo, moved)
    st = moved.stat()
    with idx.transaction():
        idx.move_photo(
            pid, PhotoRecord(moved, st.st_size, st.st_mtime_ns, photo.name, 64, 48, None)
        )
    new = tmp_path / "lib" / "IMG_0007.jpg.xmp"
    os.link(old, new)  # where a kill after the link and before the unlink leaves it
    list(write_tags(idx, [tmp_path / "lib"], FULL))
    assert not old.exists() and new.stat().st_nlink == 1
    assert both(new)["dc:subject"] == ["espresso"]
    assert idx.targets_of(pid) == [new]
    list(clean(idx, [tmp_path / "lib"]))
    assert not new.exists()  # still phototag's own: taken back and deleted
