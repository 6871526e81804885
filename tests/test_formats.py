"""Photographers' formats (issue 18): RAW, HEIC thumbnails, videos, RAW+JPEG pairs, Live
Photos, and every walked file accounted for. Real photos (scikit-image's), real decoders
(LibRaw, libheif, FFmpeg) and the real shipped model; files made by tests/media_files.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, ndjson, sample
from media_files import make_dng, make_heic, make_video, pan_frames
from metadata_readers import both
from PIL import Image

from phototag.config import DEFAULT_THRESHOLD, DEFAULT_TOP_K, Device
from phototag.errors import ImageError
from phototag.index import Index
from phototag.media.imaging import decode, preprocess
from phototag.media.kinds import FileKind, classify
from phototag.media.pairs import Companion, CompanionRole, pair
from phototag.media.raw import decode_raw
from phototag.media.video import aggregate, choose_frames, decode_video, stack_inputs
from phototag.models.backbones import Backbone, BackboneOutput
from phototag.models.catalog import Catalog
from phototag.tagging.scan import Failed, Finished, ScanOptions, ScanReport, scan
from phototag.tagging.walk import FileEntry, OtherFile, walk

CPU = ScanOptions(device=Device.CPU, batch_size=4, workers=2)


def run_scan(roots: list[Path], idx: Index) -> ScanReport:
    events = list(scan(roots, idx, CPU))
    last = events[-1]
    assert isinstance(last, Finished)
    return last.report


def tags(idx: Index, path: Path, model: str | None = None) -> list[str]:
    """The tags of one recognizer, or (None) the tag paths of all, in order."""
    view = idx.photo(path)
    assert view is not None, path
    if model is None:
        return [c.path for _, cs in sorted(view.tags.items()) for c in cs]
    return [c.tag for c in view.tags[model]]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def jpeg(path: Path, a: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, "JPEG", quality=90)
    return path


@pytest.fixture
def idx(tmp_path: Path) -> Index:
    index = Index.open(tmp_path / "i.sqlite")
    yield index  # type: ignore[misc]
    index.close()


# -- what a file is ------------------------------------------------------------------------


def test_every_extension_has_one_kind() -> None:
    assert classify("IMG_0001.NEF") is FileKind.RAW
    assert classify("a.CR3") is FileKind.RAW and classify("a.3fr") is FileKind.RAW
    assert classify("a.dng") is FileKind.RAW and classify("a.IIQ") is FileKind.RAW
    assert classify("clip.MOV") is FileKind.VIDEO and classify("a.webm") is FileKind.VIDEO
    assert classify("a.HEIC") is FileKind.PHOTO and classify("a.avif") is FileKind.PHOTO
    assert classify("IMG_0001.NEF.xmp") is FileKind.SIDECAR
    assert classify("IMG_0002.AAE") is FileKind.SIDECAR
    assert classify(".DS_Store") is FileKind.IGNORED and classify("Thumbs.db") is FileKind.IGNORED
    assert classify("layers.psd") is FileKind.UNSUPPORTED
    assert classify("README") is FileKind.UNSUPPORTED


def test_pairs_raw_jpeg_and_live_photos_but_not_across_folders(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    files = [
        (a / "IMG_0001.NEF", FileKind.RAW),
        (a / "img_0001.jpg", FileKind.PHOTO),  # names match case-insensitively
        (a / "IMG_0002.HEIC", FileKind.PHOTO),
        (a / "IMG_0002.MOV", FileKind.VIDEO),
        (a / "IMG_0003.MOV", FileKind.VIDEO),  # a clip alone
        (a / "IMG_0004.CR3", FileKind.RAW),  # a RAW alone
        (b / "IMG_0004.JPG", FileKind.PHOTO),  # another folder: not its pair
        (a / "IMG_0005.PNG", FileKind.PHOTO),  # a PNG stands for no RAW
        (a / "IMG_0005.DNG", FileKind.RAW),
    ]
    assert pair(files) == {
        a / "img_0001.jpg": [Companion(a / "IMG_0001.NEF", CompanionRole.RAW)],
        a / "IMG_0002.HEIC": [Companion(a / "IMG_0002.MOV", CompanionRole.MOTION)],
    }


def test_the_walk_accounts_for_every_file(tmp_path: Path) -> None:
    names = ["a.jpg", "b.NEF", "c.mp4", "a.jpg.xmp", ".DS_Store", "x.psd", "y.psd", "z.xcf"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "inside.jpg").write_bytes(b"x")  # hidden folders are not entered
    items = list(walk([tmp_path], others=True))
    kinds = {i.path.name: i.kind for i in items if isinstance(i, FileEntry | OtherFile)}
    assert kinds == {
        "a.jpg": FileKind.PHOTO, "b.NEF": FileKind.RAW, "c.mp4": FileKind.VIDEO,
        "a.jpg.xmp": FileKind.SIDECAR, ".DS_Store": FileKind.IGNORED,
        "x.psd": FileKind.UNSUPPORTED, "y.psd": FileKind.UNSUPPORTED, "z.xcf": FileKind.UNSUPPORTED,
    }  # fmt: skip
    # Without ``others`` (every other caller) only what can be tagged comes out.
    assert {i.path.name for i in walk([tmp_path])} == {"a.jpg", "b.NEF", "c.mp4"}


# -- RAW -----------------------------------------------------------------------------------


def test_a_raw_is_decoded_from_its_preview_and_without_one_by_libraw(tmp_path: Path) -> None:
    coffee = sample("coffee")  # 600 x 400
    with_preview = make_dng(tmp_path / "with.dng", coffee, taken="2023:07:14 18:30:05")
    without = make_dng(tmp_path / "without.dng", coffee, preview=False)
    tiny = make_dng(tmp_path / "tiny.dng", coffee, preview_size=(120, 80))

    p = decode_raw(with_preview.read_bytes(), min_side=256, max_pixels=10**8)
    assert p.image.size == (600, 400) and (p.width, p.height) == (600, 400)  # the preview
    assert p.taken_at == "2023-07-14T18:30:05"
    for fallback in (without, tiny):  # none, or too small for the model: half-size LibRaw
        f = decode_raw(fallback.read_bytes(), min_side=256, max_pixels=10**8)
        assert f.image.size == (300, 200) and (f.width, f.height) == (600, 400)
        # The decode is the photo: its colours are the coffee photo's, within a few levels.
        small = np.asarray(Image.fromarray(coffee).resize((300, 200)), np.float32)
        assert np.abs(np.asarray(f.image, np.float32).mean((0, 1)) - small.mean((0, 1))).max() < 12


def test_the_preview_is_turned_as_the_raw_is(tmp_path: Path) -> None:
    coffee = sample("coffee")
    dng = make_dng(tmp_path / "turned.dng", coffee, orientation=6)  # 90 degrees clockwise
    via_preview = decode_raw(dng.read_bytes(), min_side=256, max_pixels=10**8)
    via_libraw = decode_raw(dng.read_bytes(), min_side=256, max_pixels=10**8, allow_preview=False)
    assert (via_preview.width, via_preview.height) == (400, 600)
    assert via_preview.image.size == (400, 600) and via_libraw.image.size == (200, 300)
    a = np.asarray(via_preview.image.resize((200, 300)).convert("L"), np.float32)
    b = np.asarray(via_libraw.image.convert("L"), np.float32)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    expected = np.asarray(
        Image.fromarray(coffee)
        .transpose(Image.Transpose.ROTATE_270)
        .resize((200, 300))
        .convert("L"),
        np.float32,
    )
    assert np.corrcoef(a.ravel(), expected.ravel())[0, 1] > 0.95


def test_broken_raw_files_fail_with_one_line(tmp_path: Path) -> None:
    good = make_dng(tmp_path / "good.dng", sample("coffee")).read_bytes()
    for data in (b"", b"not a raw file at all", good[:2000]):
        with pytest.raises(ImageError) as e:
            decode_raw(data, min_side=256, max_pixels=10**8)
        assert "\n" not in str(e.value)


@pytest.mark.slow  # the real models
def test_a_raw_gets_the_tags_of_the_jpeg_of_the_same_scene(tmp_path: Path, idx: Index) -> None:
    for name in ("coffee", "chelsea"):
        a = sample(name)
        jpeg(tmp_path / "jpeg" / f"{name}.jpg", a)
        make_dng(tmp_path / "raw" / f"{name}.dng", a)
        make_dng(tmp_path / "raw-no-preview" / f"{name}.dng", a, preview=False)
    report = run_scan([tmp_path], idx)
    assert report.tagged == 6 and not report.failures
    for name in ("coffee", "chelsea"):
        from_jpeg = tags(idx, tmp_path / "jpeg" / f"{name}.jpg")
        assert tags(idx, tmp_path / "raw" / f"{name}.dng") == from_jpeg
        # LibRaw's own rendering differs a little from the camera's JPEG (a cat's breed may
        # swap places): every tag the JPEG has with a score of 0.5 or more, it has too.
        jpeg_view = idx.photo(tmp_path / "jpeg" / f"{name}.jpg")
        libraw_view = idx.photo(tmp_path / "raw-no-preview" / f"{name}.dng")
        assert jpeg_view is not None and libraw_view is not None
        sure = {c.path for cs in jpeg_view.tags.values() for c in cs if c.score >= 0.5}
        assert sure and sure <= {c.path for cs in libraw_view.tags.values() for c in cs}
        view = idx.photo(tmp_path / "raw" / f"{name}.dng")
        assert view is not None and view.kind == "raw"


@pytest.mark.parametrize(
    ("naming", "sidecar"), [("full", "IMG_0001.NEF.xmp"), ("basename", "IMG_0001.xmp")]
)
@pytest.mark.slow  # the real models
def test_raw_files_get_sidecars_and_keep_every_byte_even_with_write_embed(
    tmp_path: Path, naming: str, sidecar: str
) -> None:
    lib = tmp_path / "lib"
    # LibRaw reads a RAW by its content, so a DNG named .NEF is a fine stand-in for one.
    raw = make_dng(lib / "IMG_0001.NEF", sample("chelsea"))
    dng = make_dng(lib / "coffee.dng", sample("coffee"))
    before = {p: sha(p) for p in (raw, dng)}
    code, _, err = invoke(
        "scan", lib, "--device", "cpu", "--write", "embed", "--sidecar-name", naming
    )
    assert code == 0, err
    assert {p: sha(p) for p in (raw, dng)} == before
    assert "cat" in both(lib / sidecar)["dc:subject"]  # exiftool and exiv2 read the same
    coffee_sidecar = "coffee.dng.xmp" if naming == "full" else "coffee.xmp"
    assert both(lib / coffee_sidecar)["dc:subject"]
    assert sorted(p.name for p in lib.iterdir()) == sorted(
        ["IMG_0001.NEF", "coffee.dng", sidecar, coffee_sidecar]
    )


# -- RAW+JPEG pairs and Live Photos ---------------------------------------------------------


@pytest.mark.slow  # the real models
def test_a_raw_jpeg_pair_is_one_photo_with_shared_tags(tmp_path: Path, idx: Index) -> None:
    lib = tmp_path / "lib"
    cat = sample("chelsea")
    raw = make_dng(lib / "IMG_0001.DNG", cat)
    jpg = jpeg(lib / "IMG_0001.JPG", cat)
    raw_hash = sha(raw)
    report = run_scan([lib], idx)
    assert (report.found, report.tagged) == (1, 1)
    assert report.files.companions == {"raw": 1}
    assert idx.photo(raw) is None  # not an item of its own
    view = idx.photo(jpg)
    assert view is not None and view.companions == [(raw, "raw")]
    code, out, err = invoke("show", raw, "--index", tmp_path / "i.sqlite")  # the pair's item
    assert code == 0 and str(jpg) in out and "goes with" in err

    from phototag.library.search import duplicate_groups

    assert (
        duplicate_groups(idx, "efficientnet-lite0", threshold=0.9) == []
    )  # never its own duplicate

    code, _, err = invoke("write", lib, "--index", tmp_path / "i.sqlite")
    assert code == 0, err
    assert (
        both(lib / "IMG_0001.DNG.xmp")["dc:subject"] == both(lib / "IMG_0001.JPG.xmp")["dc:subject"]
    )
    assert "cat" in both(lib / "IMG_0001.DNG.xmp")["dc:subject"]
    assert sha(raw) == raw_hash

    # The pair follows the photo into albums: the RAW is linked next to its JPEG.
    albums = tmp_path / "albums"
    code, _, err = invoke(
        "album", "--tag", "cat", "--out", albums / "cat", "--index", tmp_path / "i.sqlite"
    )
    assert code == 0, err
    entries = sorted(p.name for p in (albums / "cat").iterdir() if not p.name.startswith("."))
    assert [e.split("_", 1)[1] for e in entries] == ["IMG_0001.DNG", "IMG_0001.JPG"]

    # A second write finds nothing to do: the RAW's sidecar is not taken for a stale one.
    stamps = {p.name: p.stat().st_mtime_ns for p in lib.glob("*.xmp")}
    code, out, err = invoke("write", lib, "--index", tmp_path / "i.sqlite", "--json")
    assert code == 0, err
    assert {p.name: p.stat().st_mtime_ns for p in lib.glob("*.xmp")} == stamps
    assert all(not r.get("added") and not r.get("removed") for r in ndjson(out))

    # Clean takes back both sidecars it created.
    code, _, err = invoke("clean", lib, "--index", tmp_path / "i.sqlite")
    assert code == 0, err
    assert sorted(p.name for p in lib.iterdir()) == ["IMG_0001.DNG", "IMG_0001.JPG"]

    # Lightroom's naming: the basename sidecar is the RAW's (docs/metadata.md), and holds
    # the pair's tags; the JPEG keeps its own full-name one.
    code, _, err = invoke(
        "write", lib, "--sidecar-name", "basename", "--index", tmp_path / "i.sqlite"
    )
    assert code == 0, err
    assert "cat" in both(lib / "IMG_0001.xmp")["dc:subject"]
    assert sha(raw) == raw_hash


@pytest.mark.slow  # the real models
def test_a_raw_tagged_alone_joins_its_jpeg_when_that_appears(tmp_path: Path, idx: Index) -> None:
    lib = tmp_path / "lib"
    raw = make_dng(lib / "IMG_0001.DNG", sample("chelsea"))
    run_scan([lib], idx)
    assert idx.photo(raw) is not None
    jpg = jpeg(lib / "IMG_0001.JPG", sample("chelsea"))
    report = run_scan([lib], idx)
    assert report.tagged == 1 and idx.photo(raw) is None
    view = idx.photo(jpg)
    assert view is not None and view.companions == [(raw, "raw")]
    assert idx.count_photos() == 1


@pytest.mark.slow  # the real models
def test_a_live_photo_is_one_item_and_its_video_follows_it_into_albums(
    tmp_path: Path, idx: Index
) -> None:
    lib = tmp_path / "lib"
    still = make_heic(lib / "IMG_0002.HEIC", sample("chelsea"), size=(900, 600))
    motion = make_video(lib / "IMG_0002.MOV", pan_frames(sample("chelsea"), 12, (480, 320)))
    report = run_scan([lib], idx)
    assert (report.found, report.tagged, report.files.companions) == (1, 1, {"motion": 1})
    assert idx.photo(motion) is None
    view = idx.photo(still)
    assert view is not None and view.companions == [(motion, "motion")]
    assert "cat" in tags(idx, still, "animal")

    albums = tmp_path / "albums"
    code, _, err = invoke(
        "album", "--tag", "cat", "--out", albums / "cat", "--index", tmp_path / "i.sqlite"
    )
    assert code == 0, err
    # Tester report item 3: "1 photos, 2 added" counted the video as added, not as a photo.
    assert "1 photos (+1 RAW/Live Photo files), 2 entries added" in " ".join(err.split()), err
    folder = albums / "cat"
    linked = {p.name.split("_", 1)[1]: p for p in folder.iterdir() if not p.name.startswith(".")}
    assert set(linked) == {"IMG_0002.HEIC", "IMG_0002.MOV"}
    assert linked["IMG_0002.MOV"].resolve() == motion
    # Both entries share the photo's time prefix, so they sort (and pair) together.
    assert len({p.name.split("_", 1)[0] for p in linked.values()}) == 1


# -- HEIC ----------------------------------------------------------------------------------


def four_three(a: np.ndarray) -> np.ndarray:
    """The central 4:3 part of a photo, as a phone frames it."""
    h, w = a.shape[:2]
    if w * 3 >= h * 4:
        x = (w - h * 4 // 3) // 2
        return a[:, x : x + h * 4 // 3]
    y = (h - w * 3 // 4) // 2
    return a[y : y + w * 3 // 4]


@pytest.mark.slow  # four HEVC encodes: about 25 s on a shared 2-core machine
def test_heic_from_its_thumbnail_gives_the_same_tags_as_the_full_decode(tmp_path: Path) -> None:
    catalog = Catalog.discover()
    recognizers = catalog.resolve(None)
    backbone = Backbone(catalog.backbone("efficientnet-lite0"), device=Device.CPU)
    pre = backbone.manifest.preprocess
    thumbs, fulls = [], []
    for name in ("coffee", "chelsea", "astronaut", "rocket"):
        a = four_three(sample(name))
        # A 4:3 photo with a 320 x 240 thumbnail, as an iPhone stores (smaller, to keep the
        # test fast: the thumbnail and what the model sees are the same as for 12 MP).
        heic = make_heic(tmp_path / f"{name}.heic", a, size=(1024, 768), thumbnail=320)
        data = heic.read_bytes()
        thumb = decode(data, min_side=pre.resize, max_pixels=10**8, thumb_side=pre.crop)
        full = decode(data, min_side=pre.resize, max_pixels=10**8, thumb_side=10**6)
        assert thumb.image.size == (320, 240) and full.image.size == (1024, 768)
        assert (thumb.width, thumb.height) == (full.width, full.height) == (1024, 768)
        thumbs.append(preprocess(thumb.image, pre))
        fulls.append(preprocess(full.image, pre))
    out_t, out_f = backbone.predict(np.stack(thumbs)), backbone.predict(np.stack(fulls))
    for r in recognizers:
        thumb_tags = r.candidates(out_t, threshold=DEFAULT_THRESHOLD, top_k=DEFAULT_TOP_K)
        full_tags = r.candidates(out_f, threshold=DEFAULT_THRESHOLD, top_k=DEFAULT_TOP_K)
        for ct, cf in zip(thumb_tags, full_tags, strict=True):
            assert [c.tag for c in ct] == [c.tag for c in cf], r.name


# -- video ---------------------------------------------------------------------------------


def test_frames_that_are_black_or_blurred_are_not_tagged() -> None:
    coffee = Image.fromarray(sample("coffee"))
    from PIL import ImageFilter

    black = Image.new("RGB", coffee.size, (3, 3, 3))
    blurred = coffee.filter(ImageFilter.GaussianBlur(8))
    chosen = choose_frames(
        [black, coffee, blurred, coffee.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    )
    assert chosen == [coffee, chosen[1]] and len(chosen) == 2 and chosen[1] is not blurred
    assert choose_frames([black, black]) == [black]  # never nothing to tag
    many = [coffee] * 9
    assert len(choose_frames(many, keep=5)) == 5


def test_clip_scores_are_frame_means_and_photos_are_untouched() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [1.0, 0.0]], np.float32)
    emb = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 2.0], [5.0, 5.0]], np.float32)
    det = np.zeros((4, 1, 6), np.float32)
    det[:, 0, 4] = [0.1, 0.9, 0.5, 0.3]
    out = aggregate(BackboneOutput(probs, emb, det), [1, 2, 1])
    assert out.probs is not None and out.detections is not None
    np.testing.assert_allclose(out.probs, [[0.9, 0.1], [0.3, 0.7], [1.0, 0.0]])
    # The clip: its frames' mean direction at their mean length (1.5), for a classifier's head.
    np.testing.assert_allclose(out.embeddings, [[3.0, 0.0], [0.0, 1.5], [5.0, 5.0]])
    assert out.detections[1, 0, 4] == pytest.approx(0.9)  # the clip's most confident frame
    stacked, counts = stack_inputs(
        [np.zeros((3, 4, 4)), np.zeros((5, 3, 4, 4)), np.zeros((3, 4, 4))]
    )
    assert stacked.shape == (7, 3, 4, 4) and counts == [1, 5, 1]


@pytest.mark.slow  # the real models
def test_videos_are_tagged_from_their_frames_and_get_a_sidecar(tmp_path: Path, idx: Index) -> None:
    lib = tmp_path / "lib"
    clips = {
        "cat.mp4": make_video(
            lib / "cat.mp4",
            pan_frames(sample("chelsea"), 30, (640, 360)),
            creation_time="2024-05-01T10:00:00Z",
        ),
        "coffee.webm": make_video(
            lib / "coffee.webm", pan_frames(sample("coffee"), 20, (480, 320))
        ),
        "coffee.mov": make_video(lib / "coffee.mov", pan_frames(sample("coffee"), 20, (480, 320))),
    }
    cat_jpg = jpeg(tmp_path / "photos" / "cat.jpg", sample("chelsea"))
    before = {n: sha(p) for n, p in clips.items()}
    report = run_scan([lib, tmp_path / "photos"], idx)
    assert report.tagged == 4 and not report.failures
    assert report.files.kinds[FileKind.VIDEO] == 3
    view = idx.photo(clips["cat.mp4"])
    assert view is not None and view.kind == "video"
    assert view.duration == pytest.approx(3.0, abs=0.15)
    assert (view.width, view.height) == (640, 360)
    assert view.taken_at is not None and view.taken_at.startswith("2024-05-01")
    assert "cat" in tags(idx, clips["cat.mp4"], "animal")
    for n in ("coffee.webm", "coffee.mov"):
        assert "espresso" in tags(idx, clips[n], "food")

    # Search and similar include videos: the clip of the cat is the cat photo's nearest.
    from phototag.library.search import SimilarBy, similar_to

    found = similar_to(idx, cat_jpg, SimilarBy.EMBEDDING, n=1)
    assert [s.path for s in found] == [clips["cat.mp4"]]

    code, _, err = invoke("write", lib, "--write", "embed", "--index", tmp_path / "i.sqlite")
    assert code == 0, err
    assert "cat" in both(lib / "cat.mp4.xmp")["dc:subject"]
    assert {n: sha(p) for n, p in clips.items()} == before  # never written into


@pytest.mark.slow  # the real models
def test_broken_videos_fail_with_one_line_and_the_scan_goes_on(tmp_path: Path, idx: Index) -> None:
    lib = tmp_path / "lib"
    good = make_video(lib / "good.mp4", pan_frames(sample("coffee"), 10, (320, 240)))
    (lib / "text.mp4").write_text("not a video\n")
    (lib / "empty.mov").write_bytes(b"")
    (lib / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    report = run_scan([lib], idx)
    reasons = {f.path.name: f.reason for f in report.failures}
    assert idx.photo(good) is not None
    assert {"text.mp4", "empty.mov"} <= set(reasons)
    assert all("\n" not in r for r in reasons.values())
    for name in ("text.mp4", "empty.mov"):
        with pytest.raises(ImageError):
            decode_video(lib / name, min_side=256, max_pixels=10**8)
    # Known failures are not read again.
    again = list(scan([lib], idx, CPU))
    assert all(ev.known for ev in again if isinstance(ev, Failed))


# -- nothing skipped in silence -------------------------------------------------------------


@pytest.mark.slow  # the real models
def test_the_scan_summary_adds_up_on_a_folder_with_every_kind_of_file(tmp_path: Path) -> None:
    lib = tmp_path / "Pictures"
    coffee, cat = sample("coffee"), sample("chelsea")
    jpeg(lib / "coffee.jpg", coffee)
    make_heic(lib / "cat.heic", cat, size=(900, 600))
    make_dng(lib / "espresso.dng", coffee)
    make_dng(lib / "IMG_0001.DNG", cat)
    jpeg(lib / "IMG_0001.JPG", cat)
    make_heic(lib / "IMG_0002.HEIC", coffee, size=(900, 600))
    make_video(lib / "IMG_0002.MOV", pan_frames(coffee, 10, (320, 240)))
    make_video(lib / "cat.mp4", pan_frames(cat, 10, (320, 240)))
    for name in ("IMG_0002.AAE", "coffee.jpg.xmp", ".DS_Store", "a.psd", "b.PSD", "c.xcf"):
        (lib / name).write_bytes(b"x")
    index = tmp_path / "i.sqlite"
    code, out, err = invoke(
        "scan", lib, "--device", "cpu", "--json", "--write", "none", "--index", index
    )
    assert code == 0, err
    files = next(r["files"] for r in ndjson(out) if "files" in r)
    assert isinstance(files, dict)
    assert files["files"] == len(list(lib.iterdir())) == 14
    kinds = ("photo", "raw", "video", "sidecar", "ignored", "unsupported", "unreadable")
    assert sum(files[k] for k in kinds) == files["files"]
    assert (files["photo"], files["raw"], files["video"], files["sidecar"]) == (4, 2, 2, 2)
    assert (files["ignored"], files["unsupported"]) == (1, 3)
    assert files["unsupported_by_extension"] == {".PSD": 2, ".XCF": 1}
    assert files["companions"] == {"raw": 1, "motion": 1}
    listed = {Path(o["path"]).name: o["kind"] for o in files["others"]}
    assert listed == {"IMG_0002.AAE": "sidecar", "coffee.jpg.xmp": "sidecar", ".DS_Store": "ignored",
                      "a.psd": "unsupported", "b.PSD": "unsupported", "c.xcf": "unsupported"}  # fmt: skip
    # The same counts for a person (without --json, which keeps stderr for errors).
    code, out, err = invoke("scan", lib, "--device", "cpu", "--write", "none", "--index", index)
    assert (
        "14 files: 4 photos, 2 RAW, 2 videos, 2 sidecars, 1 ignored, 3 unsupported (2 .PSD, 1 .XCF)"
        in " ".join(err.split())
    )
    with Index.open(index) as idx:
        # 8 media files, 6 items: the pair and the Live Photo are one each.
        assert idx.count_photos() == 6
    # The index is the proof, not only the text: every item has tags.
    assert json.loads(json.dumps(files)) == files  # plain JSON


@pytest.mark.slow  # the real models
def test_a_photo_under_a_raw_name_is_still_read(tmp_path: Path, idx: Index) -> None:
    # LibRaw refuses it; Pillow reads it: a JPEG renamed .NEF loses nothing.
    jpeg(tmp_path / "renamed.NEF", sample("chelsea"))
    report = run_scan([tmp_path], idx)
    assert report.tagged == 1 and not report.failures
    assert "cat" in tags(idx, tmp_path / "renamed.NEF", "animal")


@pytest.mark.slow  # the real models
def test_avif_is_a_photo(tmp_path: Path, idx: Index) -> None:
    Image.fromarray(sample("coffee")).save(tmp_path / "coffee.avif", "AVIF", quality=80)
    jpeg(tmp_path / "coffee.jpg", sample("coffee"))
    report = run_scan([tmp_path], idx)
    assert report.tagged == 2 and report.files.kinds[FileKind.PHOTO] == 2
    assert "espresso" in tags(idx, tmp_path / "coffee.avif", "food")


def test_a_portrait_phone_video_is_turned_upright(tmp_path: Path) -> None:
    # Phones record landscape frames with a display matrix; exiftool reads this one as
    # "Rotation: 90" (clockwise), as it reads an iPhone's portrait clip.
    a = np.asarray(Image.fromarray(sample("coffee")).resize((480, 320)))
    clip = decode_video(
        make_video(tmp_path / "portrait.mov", [a] * 10, rotation=-90),
        min_side=200,
        max_pixels=10**8,
    )
    assert (clip.width, clip.height) == (320, 480)
    frame = np.asarray(clip.frames[0].convert("L").resize((320, 480)), np.float32)
    upright = np.asarray(
        Image.fromarray(a).transpose(Image.Transpose.ROTATE_270).convert("L"), np.float32
    )
    assert np.corrcoef(frame.ravel(), upright.ravel())[0, 1] > 0.95


def test_large_videos_are_hashed_from_samples_small_ones_whole(tmp_path: Path) -> None:
    from phototag.tagging.loader import FULL_HASH_BYTES, content_hash, hash_file

    small = make_video(tmp_path / "small.mp4", pan_frames(sample("coffee"), 10, (320, 240)))
    h, size, _ = hash_file(FileEntry(small, 0, 0, kind=FileKind.VIDEO))
    assert h == content_hash(small.read_bytes()) and size == small.stat().st_size

    # Over the limit (a sparse file: no disk used): size and samples, not every byte.
    big = tmp_path / "big.mp4"
    with big.open("wb") as f:
        f.truncate(FULL_HASH_BYTES * 4)
    first = hash_file(FileEntry(big, 0, 0, kind=FileKind.VIDEO))[0]
    with big.open("r+b") as f:
        f.seek(FULL_HASH_BYTES * 4 - 1)  # the last byte is in the last sample
        f.write(b"x")
    assert hash_file(FileEntry(big, 0, 0, kind=FileKind.VIDEO))[0] != first
    with big.open("r+b") as f:
        f.truncate(FULL_HASH_BYTES * 4 + 1)  # a different size
    assert len({first, hash_file(FileEntry(big, 0, 0, kind=FileKind.VIDEO))[0]}) == 2


@pytest.mark.slow  # runs the real models
def test_duplicates_compare_like_with_like_and_never_offer_a_pairs_own_half(tmp_path: Path) -> None:
    """Tester report item 2: a clip made from a photo's frames was grouped with the photo
    ('keeping the first frees ...'), and the JPEG half of a RAW+JPEG pair was offered for
    removal as a duplicate of its own photo."""
    lib = tmp_path / "lib"
    cat = sample("chelsea")
    Image.fromarray(cat).save(lib.mkdir(parents=True) or lib / "cat with space.png")
    make_video(lib / "clip.mp4", pan_frames(cat, 12, (480, 320)))
    make_dng(lib / "IMG_0001.NEF", sample("coffee"))
    Image.fromarray(sample("coffee")).save(lib / "IMG_0001.JPG", quality=92)
    # A bigger copy of the pair's JPEG elsewhere: the pair's JPEG is kept, never offered.
    Image.fromarray(sample("coffee")).resize((700, 467)).save(lib.parent / "IMG_0001 copy.jpg")
    (lib / "copies").mkdir()
    (lib.parent / "IMG_0001 copy.jpg").rename(lib / "copies" / "IMG_0001 copy.jpg")
    index = tmp_path / "i.sqlite"
    code, _, err = invoke("scan", lib, "--index", index, "--write", "none")
    assert code == 0, err
    code, out, err = invoke("duplicates", "--index", index, "--json")
    assert code == 0, err
    groups = [[Path(str(p["path"])).name for p in g["photos"]] for g in ndjson(out)]  # type: ignore[union-attr]
    assert groups == [["IMG_0001.JPG", "IMG_0001 copy.jpg"]], groups


@pytest.mark.slow  # runs the real models
def test_the_contact_sheet_has_thumbnails_of_videos_and_raws(tmp_path: Path) -> None:
    """Tester report item 1: index.html pointed to .thumbs/..._clip.mp4.jpg, never made."""
    import re
    from urllib.parse import unquote

    lib = tmp_path / "lib"
    cat = sample("chelsea")
    make_video(lib / "clip.mp4", pan_frames(cat, 12, (480, 320)))
    make_dng(lib / "IMG_0001.NEF", cat)  # a RAW alone: its own entry
    index = tmp_path / "i.sqlite"
    assert invoke("scan", lib, "--index", index, "--write", "none")[0] == 0
    folder = tmp_path / "albums" / "cat"
    code, _, err = invoke("album", "--tag", "cat", "--out", folder, "--html", "--index", index)
    assert code == 0, err
    page = (folder / "index.html").read_text()
    shown = [unquote(n) for n in re.findall(r'src="\.thumbs/([^"]+)"', page)]
    assert {n.split("_", 1)[1] for n in shown} >= {"clip.mp4.jpg", "IMG_0001.NEF.jpg"}, shown
    for name in shown:
        with Image.open(folder / ".thumbs" / name) as im:
            assert max(im.size) > 100 and im.getextrema() != ((0, 0), (0, 0), (0, 0)), name
