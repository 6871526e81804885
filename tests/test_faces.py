"""Faces: the converted models against TensorFlow's outputs, detection on real faces and
non-faces, descriptors that tell people apart, and the pure functions around them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import sample
from PIL import Image, ImageEnhance

from phototag.errors import ModelError
from phototag.faces import describe, detect
from phototag.faces.analyzer import Face, FaceAnalyzer, people_tags
from phototag.faces.grouping import MATCH_DISTANCE, nearest
from phototag.faces.names import match
from phototag.metadata.regions import FaceRegion
from phototag.models.catalog import Catalog

REFERENCE = json.loads((Path(__file__).parent / "data" / "faces_reference.json").read_text())


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    a = FaceAnalyzer(Catalog.discover())
    a.load()
    return a


def biggest(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: f.area)


# -- the conversion -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "chelsea"])
def test_onnx_detector_gives_tensorflows_boxes(analyzer: FaceAnalyzer, name: str) -> None:
    """BlazeFace's boxes as TensorFlow ran the original graph (reference stored by
    scripts/export_faces.py), including the false boxes on the cup and the cat."""
    ref = REFERENCE[name]
    x, box = detect.letterbox(sample(name))
    raw = dict(zip(analyzer._sessions["blazeface"][1].output_names(),
                   analyzer._run("blazeface", x[None]), strict=True))  # fmt: skip
    boxes, _, scores = detect.decode(detect.merge_outputs(raw), box, min_score=0.5)
    assert len(boxes) == len(ref["boxes"])
    np.testing.assert_allclose(boxes, np.asarray(ref["boxes"]).reshape(-1, 4), atol=2e-3)
    np.testing.assert_allclose(scores, ref["scores"], atol=2e-3)


def test_onnx_descriptor_and_face_check_give_tensorflows_values(analyzer: FaceAnalyzer) -> None:
    for name in ("astronaut", "camera"):
        faces = analyzer.analyze([sample(name)])[0]
        assert len(faces) == 1
        got = faces[0].descriptor
        assert got is not None
        ref = np.asarray(REFERENCE[name]["descriptors"][0], np.float32)
        assert float(got @ ref) > 0.9999  # cosine similarity to TensorFlow's descriptor
    # The face flag TensorFlow gave: faces near 1, the cup and the cat near 0.
    assert REFERENCE["astronaut"]["face_flags"][0] > 0.95
    assert REFERENCE["camera"]["face_flags"][0] > 0.95
    assert REFERENCE["coffee"]["face_flags"][0] < 0.01
    assert REFERENCE["chelsea"]["face_flags"][0] < 0.01


# -- detection ----------------------------------------------------------------------------


def test_faces_are_found_in_real_photos_and_not_on_the_cup_the_cat_or_textures(
    analyzer: FaceAnalyzer,
) -> None:
    found = analyzer.analyze([sample(n) for n in ("astronaut", "camera")])
    assert [len(f) for f in found] == [1, 1]
    # The astronaut's face: upper middle of the photo (a box checked by eye).
    x1, y1, x2, y2 = found[0][0].box
    assert 0.30 < x1 < 0.40 and 0.10 < y1 < 0.20 and 0.50 < x2 < 0.60 and 0.30 < y2 < 0.40
    assert found[0][0].landmarks.shape == (6, 2)
    none = ("coffee", "chelsea", "brick", "grass", "gravel", "rocket", "hubble_deep_field")
    assert analyzer.analyze([sample(n) for n in none]) == [[] for _ in none]
    noise = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    blank = np.full((300, 300, 3), 200, np.uint8)
    assert analyzer.analyze([noise, blank]) == [[], []]


def lfw_canvas(i: int) -> np.ndarray:
    """LFW subset image ``i`` (25 x 25, tight crop) upscaled to 96 px on a grey 288 px canvas."""
    from skimage.data import lfw_subset

    a = (lfw_subset()[i] * 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(a).resize((96, 96), Image.Resampling.BICUBIC))
    canvas = np.full((288, 288), 128, np.uint8)
    canvas[96:192, 96:192] = big
    return np.stack([canvas] * 3, axis=-1)


def test_lfw_subset_faces_are_found_and_its_non_faces_are_not(analyzer: FaceAnalyzer) -> None:
    """scikit-image's LFW subset: 100 faces, then 100 non-face patches of the same photos."""
    faces = analyzer.analyze([lfw_canvas(i) for i in range(0, 100, 4)])
    assert [len(f) for f in faces] == [1] * 25
    others = analyzer.analyze([lfw_canvas(i) for i in range(100, 200, 4)])
    assert [len(f) for f in others] == [0] * 25


def test_a_face_in_a_rectangular_photo_keeps_its_place_through_the_letterbox(
    analyzer: FaceAnalyzer,
) -> None:
    """The astronaut pasted at a known place on a wide and on a tall canvas: boxes in
    fractions of the canvas land where the face was put."""
    face = sample("astronaut")[60:190, 160:290]  # her face, 130 px
    for w, h, (left, top) in ((1200, 500, (900, 300)), (500, 1200, (50, 900))):
        canvas = np.full((h, w, 3), 90, np.uint8)
        canvas[top : top + 130, left : left + 130] = face
        (f,) = analyzer.analyze([canvas])[0]
        cx, cy = (f.box[0] + f.box[2]) / 2 * w, (f.box[1] + f.box[3]) / 2 * h
        assert abs(cx - (left + 65)) < 20 and abs(cy - (top + 65)) < 25


# -- descriptors --------------------------------------------------------------------------


def variants(a: np.ndarray) -> dict[str, np.ndarray]:
    im = Image.fromarray(a)
    w, h = im.size
    return {
        "original": a,
        "cropped": np.asarray(im.crop((w // 10, 0, w - w // 10, h - h // 5))),
        "half size": np.asarray(im.resize((w // 2, h // 2), Image.Resampling.BICUBIC)),
        "rotated 10": np.asarray(im.rotate(10, expand=True)),
        "rotated -15": np.asarray(im.rotate(-15, expand=True)),
        "darker": np.asarray(ImageEnhance.Brightness(im).enhance(0.6)),
        "brighter": np.asarray(ImageEnhance.Brightness(im).enhance(1.4)),
        "flat": np.asarray(ImageEnhance.Contrast(im).enhance(0.6)),
        "mirrored": np.asarray(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    }


def test_one_person_stays_within_the_match_distance_and_two_people_do_not(
    analyzer: FaceAnalyzer,
) -> None:
    vecs: list[tuple[str, str, np.ndarray]] = []
    for who in ("astronaut", "camera"):
        for how, img in variants(sample(who)).items():
            f = biggest(analyzer.analyze([np.ascontiguousarray(img)])[0])
            assert f.descriptor is not None, (who, how)
            vecs.append((who, how, f.descriptor))
    same, different = [], []
    for (p, h1, a), (q, h2, b) in itertools.combinations(vecs, 2):
        (same if p == q else different).append((1 - float(a @ b), p, h1, h2))
    assert max(same)[0] < MATCH_DISTANCE, max(same)
    assert min(different)[0] > MATCH_DISTANCE + 0.15, min(different)


def test_crop_face_levels_a_tilted_face() -> None:
    """Eyes at a 20 degree slope: the crop is rotated so they are level (same row)."""
    img = np.zeros((200, 200, 3), np.uint8)
    angle = np.deg2rad(20)
    c = np.array([100.0, 100.0])
    d = 30 * np.array([np.cos(angle), np.sin(angle)])
    eyes = [c - d, c + d]
    for ex, ey in eyes:
        img[int(ey) - 3 : int(ey) + 4, int(ex) - 3 : int(ex) + 4] = 255
    kps = np.zeros((6, 2), np.float32)
    kps[0], kps[1] = eyes[0] / 200, eyes[1] / 200
    crop = describe.crop_face(img, np.array([0.25, 0.25, 0.75, 0.75]), kps, size=100, enlarge=1.0)
    bright = np.argwhere(crop[..., 0] > 128)
    left, right = bright[bright[:, 1] < 50], bright[bright[:, 1] >= 50]
    assert abs(left[:, 0].mean() - right[:, 0].mean()) < 2


def test_nearest_finds_the_closest_unit_vector_across_chunks() -> None:
    rng = np.random.default_rng(1)
    ref = describe.normalize(rng.normal(size=(50, 8)))
    q = ref[[3, 41]] + 0.01
    where, dist = nearest(describe.normalize(q), ref, chunk=7)
    assert list(where) == [3, 41] and (dist < 0.01).all()


# -- decoding and tags --------------------------------------------------------------------


def test_anchors_and_a_synthetic_box_decode_to_photo_fractions() -> None:
    a = detect.anchors()
    assert a.shape == (896, 2)
    raw = np.full((896, 17), 0.0, np.float32)
    raw[:, 0] = -50.0
    k = 100  # an anchor of the fine grid: row 3, column 2 (two per cell)
    raw[k, 0] = 5.0
    raw[k, 3:5] = 32.0  # a 32 x 32 box (input pixels) centred on the anchor
    photo = np.zeros((100, 200, 3), np.uint8)  # wide: letterboxed 256 x 128, 64 px pad on top
    _, box = detect.letterbox(photo)
    boxes, _kps, scores = detect.decode(raw, box, min_score=0.5)
    assert len(boxes) == 1 and scores[0] > 0.99
    ax, ay = a[k]
    want = [(ax - 16) / 256, (ay - 16 - 64) / 128, (ax + 16) / 256, (ay + 16 - 64) / 128]
    np.testing.assert_allclose(boxes[0], np.clip(want, 0, 1), atol=1e-5)


def test_overlapping_boxes_are_suppressed() -> None:
    raw = np.zeros((896, 17), np.float32)
    raw[:, 0] = -50
    raw[[100, 101], 0] = [4.0, 3.0]  # two anchors of one cell: the same box twice
    raw[[100, 101], 3:5] = 40.0
    boxes, _, _ = detect.decode(
        raw, detect.letterbox(np.zeros((64, 64, 3), np.uint8))[1], min_score=0.5
    )
    assert len(boxes) == 1


def face(area_side: float, score: float = 0.9) -> Face:
    return Face((0.1, 0.1, 0.1 + area_side, 0.1 + area_side), np.zeros((6, 2)), score, score)


def test_people_tags_count_faces() -> None:
    assert people_tags([]) == []
    assert [c.path for c in people_tags([face(0.3)])] == ["people/portrait"]
    assert [c.path for c in people_tags([face(0.05)])] == ["people/person"]
    assert [c.path for c in people_tags([face(0.05)] * 2)] == ["people/couple"]
    assert [c.path for c in people_tags([face(0.05)] * 3)] == ["people/group"]
    assert [c.path for c in people_tags([face(0.05)] * 9)] == ["people/group"]
    assert [c.path for c in people_tags([face(0.05)] * 10)] == ["people/crowd"]
    assert people_tags([face(0.3, 0.8), face(0.3, 0.6)])[0].score == pytest.approx(0.7)


def test_a_region_names_the_face_it_covers_and_only_that_one() -> None:
    boxes = [(0.10, 0.10, 0.20, 0.22), (0.50, 0.10, 0.60, 0.22)]
    hanako = FaceRegion("Hanako", 0.555, 0.17, 0.16, 0.2)  # larger and looser than the box
    far = FaceRegion("Taro", 0.9, 0.9, 0.05, 0.05)
    assert match(boxes, [hanako, far]) == {1: "Hanako"}
    assert match(boxes, []) == {}


@pytest.mark.parametrize(
    "value",
    ['{"name":"A","area":[NaN,0.5,0.1,0.1]}', '{"name":"A","area":[0.5,0.5,0,0.1]}',
     '{"name":"","area":[0.5,0.5,0.1,0.1]}', '{"name":"A","area":[2,0.5,0.1,0.1]}',
     '{"name":"A"}', "not json", '{"name":"A","area":["x",0.5,0.1,0.1]}'],
)  # fmt: skip
def test_bad_region_values_are_not_faces(value: str) -> None:
    assert FaceRegion.decode(value) is None


@pytest.mark.slow  # opens the real face models in-process (fast-tier guard)
def test_a_damaged_face_model_is_refused_before_any_photo(tmp_path: Path) -> None:
    import shutil

    weights = Path(__file__).parents[1] / "weights"
    for name in ("blazeface", "facemesh", "faceres"):
        shutil.copytree(weights / name, tmp_path / name)
    with open(tmp_path / "faceres" / "model.onnx", "r+b") as f:
        f.truncate(1000)
    a = FaceAnalyzer(Catalog.discover([tmp_path]))
    with pytest.raises(ModelError, match="faceres"):
        a.load()


def test_grouping_in_small_blocks_gives_the_same_people_and_never_moves_a_face(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Synthetic descriptors around three centres, grouped 3 new faces at a time against
    existing faces read 2 at a time: three people; a named person keeps their faces and
    gains the new ones near them; an ignored person too."""
    import phototag.faces.grouping as grouping
    from phototag.index import Index
    from phototag.index import faces as db
    from phototag.index.store import PhotoRecord

    monkeypatch.setattr(grouping, "BLOCK", 3)
    monkeypatch.setattr(grouping, "CHUNK", 2)
    rng = np.random.default_rng(3)
    centres = describe.normalize(rng.normal(size=(3, 1024)))

    def near(c: int) -> np.ndarray:
        return describe.normalize((centres[c] + rng.normal(size=1024) * 0.012)[None])[0]

    with Index.open(tmp_path / "i.sqlite") as idx:
        with idx.transaction():
            pid = idx.upsert_photo(PhotoRecord(tmp_path / "a.jpg", 1, 1, "h", 10, 10, None))
            box = (0.1, 0.1, 0.2, 0.2)
            db.set_faces(
                idx, pid, [db.NewFace(box, 0.9, 0.9, None, near(i % 3)) for i in range(10)]
            )
        grouping.group(idx)
        people = db.people(idx)
        assert sorted(p.faces for p in people) == [3, 3, 4]
        first = {f.id for f in db.faces_of_person(idx, people[0].id)}
        with idx.transaction():
            db.rename(idx, people[0].id, "Hanako")
            db.set_ignored(idx, people[1].id, True)
            more = [db.NewFace(box, 0.9, 0.9, None, near(i % 3)) for i in range(6)]
            pid2 = idx.upsert_photo(PhotoRecord(tmp_path / "b.jpg", 1, 1, "h2", 10, 10, None))
            db.set_faces(idx, pid2, more)
        result = grouping.group(idx)
        assert result.joined == 6 and result.new_people == 0
        after = {p.id: p for p in db.people(idx, include_ignored=True)}
        assert (
            after[people[0].id].name == "Hanako"
            and after[people[0].id].faces == people[0].faces + 2
        )
        assert after[people[1].id].ignored and after[people[1].id].faces == people[1].faces + 2
        assert first <= {f.id for f in db.faces_of_person(idx, people[0].id)}


# -- hostile regions ----------------------------------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

VALUES = st.one_of(
    st.sampled_from(["0.5", "0", "1", "-1", "nan", "inf", "1e309", "", "x", "0.5 ", "1e-9"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=8),
)
NAMES = st.text(max_size=12)


def _region_xml(
    name: str, kind: str | None, area: list[str], unit: str | None, as_attrs: bool
) -> str:
    from xml.sax.saxutils import quoteattr

    a = " ".join(f"stArea:{k}={quoteattr(v)}" for k, v in zip("xywh", area, strict=True))
    if unit is not None:
        a += f" stArea:unit={quoteattr(unit)}"
    t = f" mwg-rs:Type={quoteattr(kind)}" if kind is not None else ""
    if as_attrs:
        body = f"<rdf:Description mwg-rs:Name={quoteattr(name)}{t}><mwg-rs:Area {a}/></rdf:Description>"
    else:
        body = f"<mwg-rs:Name>{quoteattr(name)[1:-1]}</mwg-rs:Name><mwg-rs:Area {a}/>"
    return f"<rdf:li{'' if as_attrs else chr(32) + 'rdf:parseType=' + chr(34) + 'Resource' + chr(34)}>{body}</rdf:li>"


@given(
    st.lists(
        st.tuples(NAMES, st.none() | st.sampled_from(["Face", "face", "Pet", ""]),
                  st.lists(VALUES, min_size=4, max_size=4),
                  st.none() | st.sampled_from(["normalized", "pixel"]), st.booleans()),
        max_size=4,
    ),
    st.lists(st.tuples(NAMES, st.floats(0.01, 0.99), st.floats(0.01, 0.99)), max_size=3),
)  # fmt: skip
def test_hostile_regions_never_raise_and_only_sane_faces_come_out(
    items: list[tuple[str, str | None, list[str], str | None, bool]],
    ours: list[tuple[str, float, float]],
) -> None:
    """Any names, types and area values another program (or anyone) wrote: reading gives only
    finite, in-image, named faces; writing ours keeps every item it did not own."""
    import math

    from phototag.errors import MetadataError
    from phototag.metadata import regions
    from phototag.metadata.xmp import parse

    doc = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
        ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"><mwg-rs:Regions rdf:parseType="Resource">'
        "<mwg-rs:RegionList><rdf:Bag>"
        + "".join(_region_xml(*i) for i in items)
        + "</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    try:
        root = parse(doc.encode("utf-8"), "test")
    except MetadataError:
        return  # refused as a whole (say, a control character): fine, nothing read
    found = regions.read(root)
    for r in found:
        assert r.name.strip() and all(math.isfinite(v) for v in (r.x, r.y, r.w, r.h))
        assert 0 <= r.x <= 1 and 0 <= r.y <= 1 and 0 < r.w <= 1 and 0 < r.h <= 1
    before = sum(1 for _ in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"))
    mine = [FaceRegion.checked(n or "x", x, y, 0.1, 0.1) for n, x, y in ours]
    wanted = [r.encode() for r in found] + [m.encode() for m in mine if m is not None]
    desc = root.find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    regions.apply(root, desc, wanted, (100, 100))
    after = sum(1 for _ in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"))
    assert after >= before  # nothing of theirs removed
    assert {r.encode() for r in regions.read(root)} == set(wanted)
