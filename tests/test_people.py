"""People end to end: scan finds faces, people group and get names, names go into files as
MWG face regions and person keywords (read back by exiftool AND exiv2), albums by person,
names from other programs' regions, and forgetting everything."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, ndjson, sample
from PIL import Image

from phototag.config import Device, WriteSettings
from phototag.index import Index
from phototag.index import faces as db
from phototag.metadata.write import clean, write_tags
from phototag.metadata.xmp import Sidecar
from phototag.tagging.scan import ScanOptions, scan

pytestmark = pytest.mark.slow  # real models over generated libraries


def save(path: Path, a: np.ndarray, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, **kw)  # type: ignore[arg-type]
    return path


def upscale(a: np.ndarray, f: float) -> np.ndarray:
    im = Image.fromarray(a)
    return np.asarray(
        im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.BICUBIC)
    )


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """Two people (two photos each, one a changed copy), a cup and a cat."""
    root = tmp_path / "Pictures"
    save(root / "astronaut.jpg", sample("astronaut"), quality=92)
    save(root / "trips" / "astronaut big.jpg", upscale(sample("astronaut"), 1.5), quality=85)
    save(root / "camera.jpg", sample("camera"), quality=92)
    darker = (sample("camera").astype(np.float32) * 0.7).astype(np.uint8)
    save(root / "trips" / "camera dark.png", darker)
    save(root / "coffee.jpg", sample("coffee"))
    save(root / "cat.jpg", sample("chelsea"))
    return root


def scanned(idx: Index, *roots: Path, **kw: object) -> None:
    list(scan(list(roots), idx, ScanOptions(device=Device.CPU, **kw)))  # type: ignore[arg-type]


def people_of(idx: Index) -> dict[int, set[str]]:
    """person id -> file names of their faces."""
    out: dict[int, set[str]] = {}
    for p in db.people(idx, include_ignored=True):
        out[p.id] = {db.path_of_face(idx, f.id).name for f in db.faces_of_person(idx, p.id)}  # type: ignore[union-attr]
    return out


def regions_by_exiftool(path: Path) -> list[dict[str, object]]:
    out = subprocess.run(["exiftool", "-json", "-struct", "-XMP-mwg-rs:RegionInfo", str(path)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    info = json.loads(out)[0].get("RegionInfo", {})
    return [
        {"name": r["Name"], "type": r.get("Type"), "area": [float(r["Area"][k]) for k in "XYWH"]}
        for r in info.get("RegionList", [])
    ]


def regions_by_exiv2(path: Path) -> list[dict[str, object]]:
    proc = subprocess.run(["exiv2", "-PXkv", str(path)], capture_output=True, text=True)
    items: dict[int, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if not key.startswith("Xmp.mwg-rs.Regions/mwg-rs:RegionList["):
            continue
        n = int(key.split("[", 1)[1].split("]", 1)[0])
        leaf = key.rsplit("/", 1)[-1].split(":")[-1]
        items.setdefault(n, {})[leaf] = value.strip()
    return [
        {"name": it["Name"], "type": it.get("Type"), "area": [float(it[k]) for k in "xywh"]}
        for _, it in sorted(items.items())
    ]


def keywords_by_exiftool(path: Path) -> dict[str, list[str]]:
    tags = [
        "XMP-dc:Subject",
        "XMP-lr:HierarchicalSubject",
        "XMP-digiKam:TagsList",
        "XMP-iptcExt:PersonInImage",
    ]
    out = subprocess.run(["exiftool", "-json", "-G1", "-struct", *(f"-{t}" for t in tags), str(path)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    rec = json.loads(out)[0]
    return {t: (rec[t] if isinstance(rec[t], list) else [rec[t]]) for t in tags if t in rec}


def person_in_image_by_exiv2(path: Path) -> list[str]:
    proc = subprocess.run(["exiv2", "-PXkv", str(path)], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "Xmp.iptcExt.PersonInImage":
            return value.strip().split(", ")
    return []


def test_scan_groups_faces_into_people_and_tags_photos(lib: Path, tmp_path: Path) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        scanned(idx, lib)
        groups = sorted(people_of(idx).values(), key=sorted)
        assert groups == [{"astronaut big.jpg", "astronaut.jpg"}, {"camera dark.png", "camera.jpg"}]
        tags = {p.path.name: p.tag_paths for p in idx.photos_under([lib])}
        assert "people/portrait" in tags["astronaut.jpg"]
        assert "people/person" in tags["camera.jpg"]
        assert not any(t.startswith("people/") for t in tags["coffee.jpg"] + tags["cat.jpg"])
        assert db.count_faces(idx) == 4
        # One face finds the other photo of her first, then (further than grouping's 0.30) him.
        from phototag.library.people import similar_faces

        (hers,) = [f for p in db.people(idx) for f in db.faces_of_person(idx, p.id)
                   if db.path_of_face(idx, f.id).name == "astronaut.jpg"]  # type: ignore[union-attr]  # fmt: skip
        found = similar_faces(idx, hers.id, max_distance=2.0)
        assert found[0].photo.name == "astronaut big.jpg" and found[0].distance < 0.3
        assert all(m.distance > 0.45 for m in found[1:]) and len(found) == 3
        assert [m.photo.name for m in similar_faces(idx, hers.id)] == ["astronaut big.jpg"]


def test_naming_writes_regions_and_keywords_that_exiftool_and_exiv2_read_back(
    lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "i.sqlite"
    code, _, _ = invoke("scan", lib, "--index", index, "--write", "none")
    assert code == 0
    code, out, _ = invoke("people", "--index", index, "--json")
    people = ndjson(out)
    assert len(people) == 2 and all(p["faces"] == 2 for p in people)
    eileen = next(p for p in people if "astronaut" in str(p["representative_photo"]))
    code, out, err = invoke("people", "name", str(eileen["id"]), "Eileen Collins", "--index", index)
    assert code == 0, err
    code, _, err = invoke("write", lib, "--index", index)
    assert code == 0, err
    with Index.open(index) as idx:
        faces = {
            db.path_of_face(idx, f.id).name: f.box for f in db.faces_of_person(idx, eileen["id"])
        }  # type: ignore[union-attr,arg-type]
    for name in ("astronaut.jpg", "trips/astronaut big.jpg"):
        side = lib / (name + ".xmp")
        x1, y1, x2, y2 = faces[Path(name).name]
        want = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        for regions in (regions_by_exiftool(side), regions_by_exiv2(side)):
            assert [r["name"] for r in regions] == ["Eileen Collins"]
            assert regions[0]["type"] == "Face"
            np.testing.assert_allclose(regions[0]["area"], want, atol=1e-4)
        kw = keywords_by_exiftool(side)
        assert "People|Eileen Collins" in kw["XMP-lr:HierarchicalSubject"]
        assert "People/Eileen Collins" in kw["XMP-digiKam:TagsList"]
        assert "Eileen Collins" in kw["XMP-dc:Subject"]
        assert kw["XMP-iptcExt:PersonInImage"] == ["Eileen Collins"]
        assert person_in_image_by_exiv2(side) == ["Eileen Collins"]
    # The unnamed person gets nothing but the people tag.
    assert "XMP-iptcExt:PersonInImage" not in keywords_by_exiftool(lib / "camera.jpg.xmp")
    assert regions_by_exiftool(lib / "camera.jpg.xmp") == []
    # album --person, and --all of two people.
    code, out, _ = invoke("album", "--person", "Eileen Collins", "--index", index, "--json")
    assert sorted(Path(m["path"]).name for m in ndjson(out)) == [
        "astronaut big.jpg",
        "astronaut.jpg",
    ]
    camera = next(p for p in people if p["id"] != eileen["id"])
    invoke("people", "name", str(camera["id"]), "Cameraman", "--index", index)
    code, out, _ = invoke(
        "album", "-p", "Eileen Collins", "-p", "Cameraman", "--all", "--index", index, "--json"
    )
    assert code == 0 and ndjson(out) == []
    code, out, _ = invoke(
        "album", "-p", "Eileen Collins", "-p", "Cameraman", "--any", "--index", index, "--json"
    )
    assert len(ndjson(out)) == 4
    code, _, err = invoke("album", "--person", "Nobody", "--index", index, "--json")
    assert code == 2 and "no person 'Nobody'" in err
    # The contact sheet draws her face box on the thumbnails.
    out_dir = tmp_path / "album"
    code, _, err = invoke(
        "album", "-p", "Eileen Collins", "--html", "--out", out_dir, "--index", index
    )
    assert code == 0, err
    thumbs = sorted((out_dir / ".thumbs").iterdir())
    assert len(thumbs) == 2
    with Image.open(thumbs[0]) as im:
        t = np.asarray(im.convert("RGB")).astype(int)
    h, w = t.shape[:2]
    x1, y1, x2, y2 = next(iter(faces.values()))
    x = round(x1 * w)
    edge = t[round(y1 * h) + 3 : round(y2 * h) - 3, x - 2 : x + 3]  # the box's left side
    yellow = (edge[..., 0] > 180) & (edge[..., 1] > 150) & (edge[..., 2] < 120)
    assert yellow.any(axis=1).mean() > 0.9
    inside = t[round(y1 * h) + 8 : round(y2 * h) - 8, x + 6]  # her face, not painted over
    assert ((inside[:, 0] > 180) & (inside[:, 1] > 150) & (inside[:, 2] < 120)).mean() < 0.2
    from urllib.parse import quote

    assert quote(thumbs[0].name) in (out_dir / "index.html").read_text()


def test_a_group_photo_is_an_album_of_both(tmp_path: Path) -> None:
    """Two people side by side in one photo: --all finds it, the region of each is written."""
    a = sample("astronaut")[0:300, 100:400]
    c = sample("camera")[50:350, 100:400]
    pair = np.concatenate([a, c], axis=1)
    root = tmp_path / "lib"
    save(root / "pair.jpg", pair, quality=92)
    save(root / "astronaut.jpg", sample("astronaut"), quality=92)
    save(root / "camera.jpg", sample("camera"), quality=92)
    index = tmp_path / "i.sqlite"
    invoke("scan", root, "--index", index, "--write", "none")
    with Index.open(index) as idx:
        assert {p.path.name: p.tag_paths for p in idx.photos_under([root])}["pair.jpg"][
            -1
        ] == "people/couple"
        for p in db.people(idx):
            names = {db.path_of_face(idx, f.id).name for f in db.faces_of_person(idx, p.id)}  # type: ignore[union-attr]
            assert len(names) == 2 and "pair.jpg" in names
            first = "Eileen" if "astronaut.jpg" in names else "Bob"
            invoke("people", "name", str(p.id), first, "--index", index)
    _code, out, _ = invoke(
        "album", "-p", "Eileen", "-p", "Bob", "--all", "--index", index, "--json"
    )
    assert [Path(m["path"]).name for m in ndjson(out)] == ["pair.jpg"]
    invoke("write", root, "--index", index)
    names = [r["name"] for r in regions_by_exiv2(root / "pair.jpg.xmp")]
    assert names == ["Eileen", "Bob"]  # left to right


def test_regions_are_in_displayed_coordinates_for_exif_orientation_6(tmp_path: Path) -> None:
    """The same photo stored upright, and stored sideways with EXIF orientation 6 (rotate 90
    clockwise to display): the region written for each is the same rectangle."""
    upright = sample("astronaut")
    root = tmp_path / "lib"
    save(root / "upright.jpg", upright, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = np.asarray(Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90))
    save(root / "sideways.jpg", sideways, quality=95, exif=exif)
    index = tmp_path / "i.sqlite"
    invoke("scan", root, "--index", index, "--write", "none")
    code, out, _ = invoke("people", "--index", index, "--json")
    (person,) = ndjson(out)
    assert person["faces"] == 2
    invoke("people", "name", str(person["id"]), "Eileen", "--index", index)
    code, _, err = invoke("write", root, "--index", index, "--write", "embed")
    assert code == 0, err
    areas = {}
    for name in ("upright.jpg", "sideways.jpg"):
        (by_tool,) = regions_by_exiftool(root / name)
        (by_exiv2,) = regions_by_exiv2(root / name)
        assert by_tool == by_exiv2
        areas[name] = by_tool["area"]
    np.testing.assert_allclose(areas["sideways.jpg"], areas["upright.jpg"], atol=0.01)
    x, y, _w, _h = areas["upright.jpg"]  # type: ignore[misc]
    assert 0.40 < x < 0.48 and 0.20 < y < 0.30  # her face: upper middle, not rotated away


def test_a_named_person_survives_an_incremental_scan_and_gains_new_faces(
    lib: Path, tmp_path: Path
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        scanned(idx, lib)
        (eileen,) = [p for p, names in people_of(idx).items() if "astronaut.jpg" in names]
        from phototag.library.people import name

        name(idx, str(eileen), "Eileen")
        before = people_of(idx)
        # New photos: her again (cropped, mirrored), a stranger-free cup, the cameraman again.
        a = sample("astronaut")
        save(lib / "new" / "eileen crop.jpg", np.ascontiguousarray(a[:350, 60:460]), quality=90)
        save(lib / "new" / "eileen mirrored.jpg", np.ascontiguousarray(a[:, ::-1]), quality=90)
        save(lib / "new" / "camera again.jpg", upscale(sample("camera"), 0.9), quality=90)
        scanned(idx, lib)
        after = people_of(idx)
        assert db.person(idx, eileen).name == "Eileen"  # type: ignore[union-attr]
        assert after[eileen] == before[eileen] | {"eileen crop.jpg", "eileen mirrored.jpg"}
        others = [names for p, names in after.items() if p != eileen]
        assert others == [next(n for p, n in before.items() if p != eileen) | {"camera again.jpg"}]
        # Unchanged photos were not read again, and no face moved.
        scanned(idx, lib)
        assert people_of(idx) == after


def test_names_from_another_programs_regions_name_the_matching_person(tmp_path: Path) -> None:
    """camera.jpg carries an MWG region named by 'digiKam' (written here with exiftool), over the
    face, plus one over nothing; a second photo of him has none. Both end up 'Cameraman'."""
    root = tmp_path / "lib"
    save(root / "camera.jpg", sample("camera"), quality=92)
    save(root / "camera big.jpg", upscale(sample("camera"), 2.0), quality=92)
    save(root / "astronaut.jpg", sample("astronaut"), quality=92)
    info = ("{AppliedToDimensions={W=512,H=512,Unit=pixel},RegionList=["
            "{Area={X=0.43,Y=0.32,W=0.2,H=0.22,Unit=normalized},Name=Cameraman,Type=Face},"
            "{Area={X=0.9,Y=0.9,W=0.05,H=0.05,Unit=normalized},Name=Nobody,Type=Face},"
            "{Area={X=0.5,Y=0.8,W=0.2,H=0.2,Unit=normalized},Name=Tripod,Type=Pet}]}")  # fmt: skip
    subprocess.run(["exiftool", "-q", "-overwrite_original", f"-XMP-mwg-rs:RegionInfo={info}",
                    str(root / "camera.jpg")], check=True)  # fmt: skip
    index = tmp_path / "i.sqlite"
    code, _, err = invoke("scan", root, "--index", index, "--write", "none")
    code, out, _ = invoke("people", "--index", index, "--json")
    named = {p["name"]: p for p in ndjson(out)}
    assert set(named) == {"Cameraman", None}
    # Tester report item 3: the person made from a region's name was not counted as new.
    assert "2 new people" in " ".join(err.split()), err
    assert named["Cameraman"]["faces"] == 2 and named["Cameraman"]["photos"] == 2
    code, out, _ = invoke("show", root / "camera big.jpg", "--index", index, "--json")
    (shown,) = ndjson(out)
    assert [(f["name"], f["person"]) for f in shown["faces"]] == [
        ("Cameraman", named["Cameraman"]["id"])
    ]  # type: ignore[index]
    # Writing embeds nothing new into camera.jpg's regions (its own region is kept as it was,
    # the pet region too) and gives the other photo of him a region.
    before = regions_by_exiftool(root / "camera.jpg")
    code, _, err = invoke("write", root, "--index", index, "--write", "embed")
    assert code == 0, err
    assert regions_by_exiftool(root / "camera.jpg") == before
    assert [r["name"] for r in regions_by_exiv2(root / "camera big.jpg")] == ["Cameraman"]


def test_writing_keeps_the_users_regions_and_clean_takes_back_only_phototags(
    lib: Path, tmp_path: Path
) -> None:
    side = lib / "astronaut.jpg.xmp"
    side.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
        ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<dc:subject><rdf:Bag><rdf:li>space</rdf:li></rdf:Bag></dc:subject>"
        '<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag>'
        '<rdf:li rdf:parseType="Resource"><mwg-rs:Name>Flag</mwg-rs:Name><mwg-rs:Type>Focus</mwg-rs:Type>'
        '<mwg-rs:Area stArea:x="0.1" stArea:y="0.1" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/></rdf:li>'
        '<rdf:li rdf:parseType="Resource"><mwg-rs:Name>Someone</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>'
        '<mwg-rs:Area stArea:x="0.8" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/></rdf:li>'
        "</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    with Index.open(tmp_path / "i.sqlite") as idx:
        scanned(idx, lib)
        (eileen,) = [p for p, names in people_of(idx).items() if "astronaut.jpg" in names]
        from phototag.library.people import name

        name(idx, str(eileen), "Eileen")
        list(write_tags(idx, [lib], WriteSettings()))
        names = [r["name"] for r in regions_by_exiftool(side)]
        assert names == ["Flag", "Someone", "Eileen"]
        assert [r["name"] for r in regions_by_exiv2(side)] == names
        assert "space" in keywords_by_exiftool(side)["XMP-dc:Subject"]
        # Renamed: the old region and keywords go, the new ones come; the user's stay.
        name(idx, str(eileen), "Eileen Collins")
        list(write_tags(idx, [lib], WriteSettings()))
        assert [r["name"] for r in regions_by_exiftool(side)] == [
            "Flag",
            "Someone",
            "Eileen Collins",
        ]
        assert "Eileen" not in keywords_by_exiftool(side)["XMP-dc:Subject"]
        list(clean(idx, [lib]))
        assert [r["name"] for r in regions_by_exiv2(side)] == ["Flag", "Someone"]
        kw = keywords_by_exiftool(side)
        assert kw["XMP-dc:Subject"] == ["space"] and "XMP-iptcExt:PersonInImage" not in kw
        assert Sidecar.read(side) is not None


def test_merge_remove_face_ignore_and_forget(lib: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.sqlite"
    invoke("scan", lib, "--index", index, "--write", "none")
    with Index.open(index) as idx:
        ids = sorted(people_of(idx))
        faces = [f.id for f in db.faces_of_person(idx, ids[0])]
    code, out, _ = invoke(
        "people", "merge", str(ids[1]), "--into", str(ids[0]), "--index", index, "--json"
    )
    assert code == 0 and ndjson(out)[0]["faces"] == 4
    code, out, _ = invoke(
        "people", "remove-face", str(faces[0]), "--to", "Stranger", "--index", index, "--json"
    )
    assert code == 0 and ndjson(out)[0]["name"] == "Stranger" and ndjson(out)[0]["faces"] == 1
    code, out, _ = invoke("people", "ignore", "Stranger", "--index", index)
    assert code == 0
    code, out, _ = invoke("people", "--index", index, "--json")
    assert [p["faces"] for p in ndjson(out)] == [3]
    code, out, _ = invoke("people", "--all", "--index", index, "--json")
    assert sorted(p["faces"] for p in ndjson(out)) == [1, 3]
    code, _, err = invoke("people", "remove-face", "99999", "--index", index)
    assert code == 2 and "no face 99999" in err
    code, _, err = invoke("people", "forget", "--index", index)
    assert code == 2 and "--yes" in err
    code, out, _ = invoke("people", "forget", "--yes", "--index", index, "--json")
    assert code == 0 and ndjson(out)[0]["faces"] == 4
    with Index.open(index) as idx:
        for table in ("faces", "people"):
            assert idx.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
        assert (
            idx.conn.execute("SELECT COUNT(*) FROM tags WHERE recognizer = 'faces'").fetchone()[0]
            == 0
        )
    # Faces stay off for later scans, even of new photos, until asked for.
    save(lib / "new.jpg", sample("astronaut")[:, ::-1].copy(), quality=90)
    invoke("scan", lib, "--index", index, "--write", "none")
    with Index.open(index) as idx:
        assert db.count_faces(idx) == 0
    invoke("scan", lib, "--index", index, "--write", "none", "--faces")
    with Index.open(index) as idx:
        assert db.count_faces(idx) == 5


def test_bad_names_and_unknown_people_are_one_line_errors(lib: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.sqlite"
    invoke("scan", lib, "--index", index, "--write", "none")
    for args, message in (
        (("people", "name", "12345", "X"), "no person '12345'"),
        (("people", "name", "1", "a/b"), "cannot contain"),
        (("people", "name", "1", "   "), "cannot be empty"),
        (("people", "merge", "1", "--into", "Nobody"), "no person 'Nobody'"),
    ):
        code, _out, err = invoke(*args, "--index", index)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    code, _, err = invoke("people", "--index", tmp_path / "none.sqlite")
    assert code != 0 and "no index" in err


def test_a_sidecar_with_broken_regions_does_not_stop_the_scan(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    save(root / "astronaut.jpg", sample("astronaut"), quality=92)
    (root / "astronaut.jpg.xmp").write_text(
        '<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>'
    )
    (root / "astronaut.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
        ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"><mwg-rs:Regions rdf:parseType="Resource">'
        '<mwg-rs:RegionList><rdf:Bag><rdf:li rdf:parseType="Resource"><mwg-rs:Name>Eve</mwg-rs:Name>'
        '<mwg-rs:Area stArea:x="nan" stArea:y="1e309" stArea:w="-1" stArea:h="x"/></rdf:li>'
        "</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    with Index.open(tmp_path / "i.sqlite") as idx:
        scanned(idx, root)
        assert db.count_faces(idx) == 1
        assert [p.name for p in db.people(idx)] == [None]


def test_no_faces_and_named_recognizers_leave_faces_alone(lib: Path, tmp_path: Path) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        scanned(idx, lib, faces=False)
        scanned(idx, lib, recognizers=["food"])
        assert db.count_faces(idx) == 0
        assert not any(
            t.startswith("people/") for p in idx.photos_under([lib]) for t in p.tag_paths
        )
        scanned(idx, lib)  # a default scan finds them
        assert db.count_faces(idx) == 4


def test_faces_a_killed_run_left_ungrouped_are_grouped_by_the_next_scan(
    lib: Path, tmp_path: Path
) -> None:
    """Faces are stored with their photos (one transaction per batch); grouping comes after the
    last batch. A run killed in between leaves faces without people: the next scan, with no
    photo to read, groups them."""
    with Index.open(tmp_path / "i.sqlite") as idx:
        scanned(idx, lib)
        expected = sorted(people_of(idx).values(), key=sorted)
        with idx.transaction():  # the state a kill before grouping leaves
            idx.conn.execute("UPDATE faces SET person_id = NULL")
            idx.conn.execute("DELETE FROM people")
        report = next(
            ev.report
            for ev in scan([lib], idx, ScanOptions(device=Device.CPU))
            if type(ev).__name__ == "Finished"
        )
        assert report.tagged == 0 and report.unchanged == 6
        assert sorted(people_of(idx).values(), key=sorted) == expected


CORPUS = Path(__file__).parent / "data" / "sidecars"


def test_a_real_digikam_style_sidecar_keeps_its_region_and_gains_ours(tmp_path: Path) -> None:
    """PhotoPrism's test sidecar with a digiKam-style MWG region (element form, 'Carl'): read
    as Carl; naming the astronaut (whose face is elsewhere) adds her region beside his, and
    everything else in the file stays; clean takes hers back."""
    from phototag.metadata import regions

    src = CORPUS / "photoprism-digikam-mwg.xmp"
    sc = Sidecar.read(src)
    assert sc is not None
    assert [(r.name, r.x, r.y, r.w, r.h) for r in regions.read(sc.root)] == [
        ("Carl", 0.6, 0.5, 0.1, 0.15)
    ]
    root = tmp_path / "lib"
    save(root / "astronaut.jpg", sample("astronaut"), quality=92)
    side = root / "astronaut.jpg.xmp"
    side.write_bytes(src.read_bytes())
    with Index.open(tmp_path / "i.sqlite") as idx:
        scanned(idx, root)
        (person,) = db.people(idx)
        assert person.name is None  # Carl's region is not over her face
        from phototag.library.people import name

        name(idx, str(person.id), "Eileen")
        events = list(write_tags(idx, [root], WriteSettings()))
        assert all(type(e).__name__ == "Wrote" for e in events), events
        assert [r["name"] for r in regions_by_exiftool(side)] == ["Carl", "Eileen"]
        assert [r["name"] for r in regions_by_exiv2(side)] == ["Carl", "Eileen"]
        text = side.read_text()
        for kept in ("<photoshop:DateCreated>2012-08-08T22:07:18.001</photoshop:DateCreated>",
                     "adobe:docid:photoshop:eb7a4192-7d4f-1179-93d3-8c7542d122ed"):  # fmt: skip
            assert kept in text
        list(clean(idx, [root]))
        assert [r["name"] for r in regions_by_exiftool(side)] == ["Carl"]
