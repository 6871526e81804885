"""Tags written where photo managers read them, read back by exiftool AND exiv2, and taken back."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from metadata_readers import both
from PIL import Image
from waiting import wait_until

from phototag.config import Device, IptcPolicy, SidecarNaming, WriteMode, WriteSettings
from phototag.errors import MetadataError
from phototag.index import Index
from phototag.index.store import PhotoRecord
from phototag.metadata.keywords import Field, KeywordStyle, desired, merge
from phototag.metadata.write import Unchanged, WriteFailed, Wrote, clean, write_tags
from phototag.metadata.xmp import Sidecar
from phototag.models.recognizers import Candidate
from phototag.tagging.scan import ScanOptions, scan

SIDECAR = WriteSettings()
EMBED = WriteSettings(mode=WriteMode.EMBED)


@pytest.fixture
def idx(tmp_path: Path) -> Index:
    index = Index.open(tmp_path / "i.sqlite")
    yield index  # type: ignore[misc]
    index.close()


def scanned(idx: Index, root: Path, **kw: object) -> None:
    list(scan([root], idx, ScanOptions(device=Device.CPU, **kw)))  # type: ignore[arg-type]


def run(events: object) -> list[object]:
    return list(events)  # type: ignore[call-overload]


def pixels(path: Path) -> np.ndarray:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_the_policy_keeps_user_values_and_removes_only_its_own() -> None:
    current = {Field.SUBJECT: ["Holiday", "Espresso", "drink"]}
    ours_before = {Field.SUBJECT: ["drink", "pizza"]}
    wanted = {Field.SUBJECT: ["espresso", "food"]}
    change = merge(current, ours_before, wanted)
    # "drink" was ours and is no longer wanted: removed. "Espresso" is the user's: kept,
    # and "espresso" is not added again. "food" is new.
    assert change.values[Field.SUBJECT] == ["Holiday", "Espresso", "food"]
    assert change.ours == {Field.SUBJECT: ["food"]}
    assert desired(["food/drink/espresso"], KeywordStyle(), iptc=True) == {
        Field.SUBJECT: ["espresso"], Field.HIERARCHICAL: ["phototag|food|drink|espresso"],
        Field.TAGSLIST: ["phototag/food/drink/espresso"], Field.IPTC: ["espresso"],
    }  # fmt: skip
    styled = desired(["food/drink/espresso"], KeywordStyle(root="auto", flat=False), iptc=False)
    assert styled == {
        Field.HIERARCHICAL: ["auto|food|drink|espresso"],
        Field.TAGSLIST: ["auto/food/drink/espresso"],
    }


@pytest.mark.slow
def test_sidecars_are_written_in_every_field_and_read_the_same_by_exiftool_and_exiv2(
    library: Path, idx: Index
) -> None:
    scanned(idx, library / "2024")
    events = run(write_tags(idx, [library / "2024"], SIDECAR))
    assert sum(isinstance(e, Wrote) for e in events) == 4
    fields = both(library / "2024" / "coffee.jpg.xmp")
    assert {"espresso", "drink", "food"} <= set(fields["dc:subject"])
    assert "phototag|food|drink|espresso" in fields["lr:hierarchicalSubject"]
    assert "phototag/food/drink/espresso" in fields["digiKam:TagsList"]
    assert "IPTC:Keywords" not in fields  # sidecars are XMP only
    assert not (library / "2024" / "coffee.xmp").exists()


@pytest.mark.slow
def test_basename_sidecars_for_lightroom(library: Path, idx: Index) -> None:
    scanned(idx, library / "2024")
    run(write_tags(idx, [library / "2024"], WriteSettings(sidecar_name=SidecarNaming.BASENAME)))
    assert "espresso" in both(library / "2024" / "coffee.xmp")["dc:subject"]


USER_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <!-- written by darktable 4.6 -->
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="4"
    darktable:xmp_version="5"
    darktable:history_end="2">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>Holiday</rdf:li>
     <rdf:li>Espresso</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>People|Anna</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>People/Anna</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1" darktable:params="0000000000803f"/>
     <rdf:li darktable:num="1" darktable:operation="colorin" darktable:enabled="1" darktable:params="gz48eJzjYhgFo2AU0AsAAAmDAAE="/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def _darktable_parts(path: Path) -> tuple[bytes, dict[str, str]]:
    from lxml import etree

    root = etree.fromstring(path.read_bytes())
    desc = root.find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    history = desc.find("{http://darktable.sf.net/}history")
    return etree.tostring(history, method="c14n"), dict(desc.attrib)


@pytest.mark.slow
def test_an_existing_sidecar_keeps_the_users_keywords_and_everything_else(
    library: Path, idx: Index
) -> None:
    scanned(idx, library / "2024")
    sidecar = library / "2024" / "coffee.jpg.xmp"
    sidecar.write_text(USER_SIDECAR, encoding="utf-8")
    before = both(sidecar)
    history, attrs = _darktable_parts(sidecar)
    run(write_tags(idx, [library / "2024"], SIDECAR))
    after = both(sidecar)
    for field_name, values in before.items():
        assert after[field_name][: len(values)] == values, field_name  # the user's, first, in order
    assert [v for v in after["dc:subject"] if v.casefold() == "espresso"] == ["Espresso"]
    assert "drink" in after["dc:subject"]
    assert _darktable_parts(sidecar) == (history, attrs)  # darktable's history untouched
    text = sidecar.read_text(encoding="utf-8")
    assert "<!-- written by darktable 4.6 -->" in text and text.startswith("<?xpacket begin")
    # clean restores the keyword fields exactly, and keeps the sidecar (phototag did not create it)
    run(clean(idx, [library / "2024"]))
    assert both(sidecar) == before
    assert _darktable_parts(sidecar) == (history, attrs)


@pytest.mark.usefixtures("fake_onnx")
def test_writing_again_with_nothing_new_changes_no_byte(
    library: Path, idx: Index, make_photo: Callable[..., Path]
) -> None:
    scanned(idx, library / "2024")
    # Each mode written twice (switching modes moves phototag's values: docs/metadata.md).
    for mode in (SIDECAR, EMBED):
        run(write_tags(idx, [library / "2024"], mode))
        files = sorted(p for p in (library / "2024").iterdir())
        state = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
        events = run(write_tags(idx, [library / "2024"], mode))
        assert all(isinstance(e, Unchanged) for e in events)
        assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == state
        assert sorted((library / "2024").iterdir()) == files  # no _original, no temp files


@pytest.mark.slow
def test_a_rescan_that_drops_tags_removes_them_from_the_files(library: Path, idx: Index) -> None:
    lib = library / "2024"
    scanned(idx, lib, threshold=0.25)
    sidecar = lib / "coffee.jpg.xmp"
    sidecar.write_text(USER_SIDECAR, encoding="utf-8")
    run(write_tags(idx, [lib], SIDECAR))
    assert "phototag|food|drink" in both(sidecar)["lr:hierarchicalSubject"]
    scanned(idx, lib, threshold=0.98)  # only "food" (0.985; drink is 0.971) survives
    run(write_tags(idx, [lib], SIDECAR))
    fields = both(sidecar)
    assert fields["lr:hierarchicalSubject"] == ["People|Anna", "phototag|food"]
    assert fields["dc:subject"] == ["Holiday", "Espresso", "food"]


@pytest.mark.parametrize(
    "name", ["photo.jpg", "photo.png", "photo.tif", "photo.heic", "photo.webp"]
)
@pytest.mark.slow
def test_embedding_round_trips_keeps_pixels_and_mtime_and_clean_restores(
    name: str, tmp_path: Path, make_photo: Callable[..., Path], idx: Index
) -> None:
    photo = make_photo(
        f"lib/{name}",
        "coffee",
        **({"quality": 90} if name.endswith((".jpg", ".heic", ".webp")) else {}),
    )
    scanned(idx, tmp_path / "lib")
    pixels_before, mtime = pixels(photo), photo.stat().st_mtime_ns
    fields_before = both(photo)
    (event,) = run(write_tags(idx, [photo], EMBED))
    assert isinstance(event, Wrote), event
    fields = both(photo)
    assert (
        "espresso" in fields["dc:subject"]
        and "phototag|food|drink|espresso" in fields["lr:hierarchicalSubject"]
    )
    assert "IPTC:Keywords" not in fields  # the file had no IPTC: none added
    np.testing.assert_array_equal(pixels(photo), pixels_before)
    assert photo.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in photo.parent.iterdir()) == [name]
    # The index follows the file phototag changed, so a rescan does not take it for a new photo.
    report = [e for e in scan([tmp_path / "lib"], idx, ScanOptions(device=Device.CPU))][-1].report  # type: ignore[union-attr]
    assert report.decoded == 0 and report.unchanged == 1
    run(clean(idx, [photo]))
    assert both(photo) == fields_before
    np.testing.assert_array_equal(pixels(photo), pixels_before)


@pytest.mark.slow
def test_iptc_is_written_where_iptc_already_is_and_long_keywords_warn(
    tmp_path: Path, make_photo: Callable[..., Path], idx: Index
) -> None:
    photo = make_photo("lib/iptc.jpg", "coffee")
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-IPTC:Keywords=mine", str(photo)], check=True
    )
    scanned(idx, tmp_path / "lib")
    run(write_tags(idx, [photo], EMBED))
    assert both(photo)["IPTC:Keywords"][0] == "mine"
    assert "espresso" in both(photo)["IPTC:Keywords"]
    with idx.transaction():
        pid = idx.upsert_photo(PhotoRecord(photo, 1, 1, "x", 1, 1, None))
        idx.set_results(pid, "food", "fp", [Candidate("k" * 70, 0.9, "food/" + "k" * 70)])
    (event,) = run(write_tags(idx, [photo], EMBED))
    assert isinstance(event, Wrote) and any("over 64 bytes" in w for w in event.warnings)


@pytest.mark.slow
def test_iptc_never_and_always(tmp_path: Path, make_photo: Callable[..., Path], idx: Index) -> None:
    photo = make_photo("lib/a.jpg", "coffee")
    scanned(idx, tmp_path / "lib")
    run(write_tags(idx, [photo], WriteSettings(mode=WriteMode.EMBED, iptc=IptcPolicy.ALWAYS)))
    assert "espresso" in both(photo)["IPTC:Keywords"]


def test_a_dng_gets_a_sidecar_even_in_embed_mode_and_a_bmp_is_told_to_use_sidecars(
    tmp_path: Path, idx: Index
) -> None:
    # Issue 18: a RAW file (DNG included) is never written into, whatever --write says.
    lib = tmp_path / "lib"
    lib.mkdir()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(lib / "raw.dng", "TIFF")
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-DNGVersion=1.4.0.0", str(lib / "raw.dng")],
        check=True,
    )
    before = (lib / "raw.dng").read_bytes()
    Image.new("RGB", (64, 48)).save(lib / "old.bmp")
    with idx.transaction():
        for name in ("raw.dng", "old.bmp"):
            pid = idx.upsert_photo(PhotoRecord(lib / name, 1, 1, name, 64, 48, None))
            idx.set_results(
                pid, "scene", "fp", [Candidate("seashore", 0.9, "scene/nature/seashore")]
            )
    events = {Path(e.photo).name: e for e in run(write_tags(idx, [lib], EMBED))}  # type: ignore[attr-defined]
    wrote = events["raw.dng"]
    assert isinstance(wrote, Wrote) and wrote.target == lib / "raw.dng.xmp"
    assert both(lib / "raw.dng.xmp")["dc:subject"] == ["seashore"]
    assert (lib / "raw.dng").read_bytes() == before
    failed = events["old.bmp"]
    assert isinstance(failed, WriteFailed) and "not supported; write a sidecar" in failed.reason


@pytest.mark.slow
def test_hostile_names_cannot_inject_exiftool_options(
    tmp_path: Path, make_photo: Callable[..., Path], idx: Index
) -> None:
    dash = make_photo("lib/-overwrite_original_in_place.jpg", "coffee")
    newline = make_photo("lib/evil\n-delete_original.jpg", "coffee")
    scanned(idx, tmp_path / "lib")
    events = {Path(e.photo).name: e for e in run(write_tags(idx, [tmp_path / "lib"], EMBED))}  # type: ignore[attr-defined]
    assert isinstance(events[dash.name], Wrote)
    assert "espresso" in both(dash)["dc:subject"]
    bad = events[newline.name]
    assert isinstance(bad, WriteFailed) and "line break" in bad.reason
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == sorted([dash.name, newline.name])
    # sidecar mode handles the newline name fine
    run(write_tags(idx, [tmp_path / "lib"], SIDECAR))
    assert "espresso" in both(Path(str(newline) + ".xmp"))["dc:subject"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"this is not xml", "not well-formed XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>',
            "declares a DTD or entities",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
            "declares a DTD or entities",
        ),
        (b"<html><body>hi</body></html>", "not XMP"),
    ],
)
@pytest.mark.slow  # needs the real models' tags
def test_hostile_or_broken_sidecars_are_reported_and_left_alone(
    library: Path, idx: Index, content: bytes, reason: str
) -> None:
    scanned(idx, library / "2024")
    sidecar = library / "2024" / "coffee.jpg.xmp"
    sidecar.write_bytes(content)
    events = run(write_tags(idx, [library / "2024"], SIDECAR))
    failed = [e for e in events if isinstance(e, WriteFailed)]
    assert len(failed) == 1 and reason in failed[0].reason
    assert sidecar.read_bytes() == content
    assert sum(isinstance(e, Wrote) for e in events) == 3


@pytest.mark.slow  # needs the real models' tags
def test_clean_deletes_the_sidecars_phototag_created_and_nothing_else(
    library: Path, idx: Index
) -> None:
    scanned(idx, library / "2024")
    before = sorted(p.name for p in (library / "2024").iterdir())
    run(write_tags(idx, [library / "2024"], SIDECAR))
    assert len(list((library / "2024").glob("*.xmp"))) == 4
    dry = run(clean(idx, [library / "2024"], dry_run=True))
    assert all(isinstance(e, Wrote) and e.deleted for e in dry)
    assert len(list((library / "2024").glob("*.xmp"))) == 4  # a dry run changes nothing
    run(clean(idx, [library / "2024"]))
    assert sorted(p.name for p in (library / "2024").iterdir()) == before


@pytest.mark.usefixtures("fake_onnx")
def test_embed_without_exiftool_says_how_to_get_it(
    library: Path, idx: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned(idx, library / "2024")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MetadataError, match="apt install libimage-exiftool-perl"):
        run(write_tags(idx, [library / "2024"], EMBED))


def test_sidecar_parser_refuses_gigabyte_sidecars_without_reading_them(tmp_path: Path) -> None:
    big = tmp_path / "big.xmp"
    with big.open("wb") as f:
        f.truncate(2**30)  # sparse: a gigabyte on paper
    with pytest.raises(MetadataError, match="too large"):
        Sidecar.read(big)


@pytest.mark.slow
def test_a_write_killed_at_random_moments_leaves_every_sidecar_valid(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    lib = tmp_path / "lib"
    n = 150
    for i in range(n):
        make_photo(f"lib/p{i:03d}.jpg", "coffee" if i % 2 else "chelsea", size=(64 + i % 40, 48))
    index = tmp_path / "i.sqlite"
    env = {**os.environ, "PHOTOTAG_INDEX": str(index)}
    subprocess.run([sys.executable, "-m", "phototag", "scan", str(lib), "--device", "cpu", "--write", "none", "-q"],
                   env=env, check=True)  # fmt: skip
    write = [sys.executable, "-m", "phototag", "write", str(lib), "-q"]
    partial = []
    for target in np.linspace(5, n - 10, 8).astype(int):
        # Kill once this many sidecars exist (observed on disk, never after a fixed time).
        proc = subprocess.Popen(write, env=env)
        wait_until(lambda t=target: len(list(lib.glob("*.xmp"))) >= t, f"{target} sidecars", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sidecars = list(lib.glob("*.xmp"))
        partial.append(len(sidecars))
        for sidecar in sidecars:
            Sidecar.read(sidecar)  # every sidecar there parses (raises otherwise)
        subprocess.run(write, env=env, check=True)  # the next run finishes the job
        assert len(list(lib.glob("*.xmp"))) == n
        assert not list(lib.glob(".*.tmp"))  # a killed run's temporary file is cleared up
        with Index.open(index) as idx:
            assert idx.integrity() == "ok"
            run(clean(idx, [lib]))
        assert not list(lib.glob("*.xmp"))
    assert any(0 < k < n for k in partial), partial  # at least one kill landed mid-write


@pytest.mark.slow
def test_a_crash_between_the_file_write_and_the_index_record_loses_no_ownership(
    library: Path, idx: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sidecar is renamed into place, then phototag dies before recording what it wrote."""
    from phototag.metadata import write as write_module

    scanned(idx, library / "2024")
    real_record = write_module.Writer.record

    def die(self: object, *a: object, **kw: object) -> None:
        raise KeyboardInterrupt  # as if killed right after the rename

    monkeypatch.setattr(write_module.Writer, "record", die)
    with pytest.raises(KeyboardInterrupt):
        run(write_tags(idx, [library / "2024"], SIDECAR))
    monkeypatch.setattr(write_module.Writer, "record", real_record)
    (sidecar,) = (library / "2024").glob("*.xmp")  # the first photo's sidecar was written
    assert "espresso" in both(sidecar)["dc:subject"]
    run(write_tags(idx, [library / "2024"], SIDECAR))
    run(clean(idx, [library / "2024"]))
    assert not sidecar.exists()  # still known as phototag's own: taken back, file deleted
