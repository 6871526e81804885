"""A generated corpus of broken, hostile and merely unusual files: each is tagged or gets a
one-line reason, the rest of the scan is unaffected, nothing crashes, memory stays bounded."""

from __future__ import annotations

import io
import os
import resource
import struct
import unicodedata
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import sample
from PIL import Image

from phototag.config import Device, WriteSettings
from phototag.index import Index
from phototag.metadata.write import WriteFailed, write_tags
from phototag.tagging.scan import Failed, Finished, ScanOptions, Tagged, scan


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(w: int, h: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        _png_chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _png_chunk(b"IEND", b"")  # fmt: skip


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg_with_dims(w: int, h: int) -> bytes:
    """A real small JPEG whose frame header claims w x h."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (200, 10, 10)), "JPEG"))
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def gif_bomb() -> bytes:
    """A real small GIF whose logical screen claims 65535 x 65535."""
    data = bytearray(encode(Image.new("P", (8, 8)), "GIF"))
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def exif_jpeg(orientation: object = None, raw_app1: bytes | None = None) -> bytes:
    im = Image.fromarray(sample("coffee")).resize((120, 80))
    if raw_app1 is not None:
        data = encode(im, "JPEG")
        seg = b"\xff\xe1" + struct.pack(">H", len(raw_app1) + 2) + raw_app1
        return data[:2] + seg + data[2:]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, "JPEG", exif=exif)


def corpus() -> dict[str, bytes | Callable[[Path], None]]:
    coffee = Image.fromarray(sample("coffee")).resize((150, 100))
    good_jpeg, good_png = encode(coffee, "JPEG"), encode(coffee, "PNG")
    good_tiff = encode(coffee, "TIFF")
    from pillow_heif import register_heif_opener

    register_heif_opener()
    good_heic = encode(coffee, "HEIF", quality=80)
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    rgba = coffee.convert("RGBA")
    rgba.putalpha(128)

    def fifo(p: Path) -> None:
        os.mkfifo(p)

    def folder(p: Path) -> None:
        p.mkdir()

    return {
        "01 zero bytes.jpg": b"",
        "02 truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "03 truncated.png": good_png[: len(good_png) // 2],
        "04 truncated.heic": good_heic[: len(good_heic) // 2],
        "05 truncated.tif": good_tiff[:300],
        "06 png named.jpg": good_png,
        "07 jpeg named.png": good_jpeg,
        "08 text.jpg": b"Dear diary, today I took no photos.\n" * 10,
        "09 html.webp": b"<html><body>not a photo</body></html>",
        "10 png bomb.png": png_bomb(100_000, 100_000),
        "11 jpeg bomb.jpg": jpeg_with_dims(65_000, 65_000),
        "12 gif bomb.gif": gif_bomb(),
        "13 tiff header only.tif": b"II*\x00\x08\x00\x00\x00" + b"\x00" * 16,
        "14 sixteen bit.png": encode(
            Image.fromarray(np.asarray(coffee.convert("L"), np.uint16) * 257), "PNG"
        ),
        "15 cmyk.jpg": encode(coffee.convert("CMYK"), "JPEG"),
        "16 palette transparent.png": encode(coffee.convert("P"), "PNG", transparency=0),
        "17 grey alpha.png": encode(coffee.convert("LA"), "PNG"),
        "18 I16.tif": encode(
            Image.fromarray(np.asarray(coffee.convert("L"), np.uint16) * 257), "TIFF"
        ),
        "19 one pixel.png": encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
        "20 thirty thousand by ten.png": encode(
            Image.new("RGB", (30_000, 10), (90, 120, 200)), "PNG"
        ),
        "21 animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "22 animated.webp": encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "23 orientation zero.jpg": exif_jpeg(0),
        "24 orientation 99.jpg": exif_jpeg(99),
        "25 broken ifd.jpg": exif_jpeg(
            raw_app1=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\xde\xad" * 20
        ),
        "26 one bit.png": encode(coffee.convert("1"), "PNG"),
        "27 float.tif": encode(
            Image.fromarray(np.asarray(coffee.convert("L"), np.float32) / 255), "TIFF"
        ),
        "28 bitmap.bmp": encode(coffee, "BMP"),
        "29 rgba half transparent.png": encode(rgba, "PNG"),
        "30 a folder.jpg": folder,
        "31 a fifo.jpg": fifo,
        "32 random bytes.jpg": np.random.default_rng(0)
        .integers(0, 256, 5000, dtype=np.uint8)
        .tobytes(),
        "33 jpeg header then garbage.jpg": good_jpeg[:600] + b"\x00" * 4000,
        "34 " + "long" * 60 + ".jpg": good_jpeg,
        "-35 leading dash.jpg": good_jpeg,
        "36 new\nline.jpg": good_jpeg,
        unicodedata.normalize("NFC", "37 caf\u00e9.jpg"): good_jpeg,
        unicodedata.normalize("NFD", "37 caf\u00e9.jpg"): encode(coffee.rotate(90), "JPEG"),
        "38 Case.jpg": good_jpeg,
        "38 case.jpg": encode(coffee.rotate(180), "JPEG"),
        "39 heic ok.heic": good_heic,
    }


@pytest.mark.usefixtures("fake_onnx")
def test_the_hostile_corpus(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    items = corpus()
    assert len(items) >= 40
    for name, content in items.items():
        if callable(content):
            content(lib / name)
        else:
            (lib / name).write_bytes(content)
    os.symlink("39 heic ok.heic", lib / "40 symlink to a photo.heic")
    os.symlink("nowhere.jpg", lib / "41 broken link.jpg")
    os.symlink(".", lib / "42 loop")
    (lib / os.fsdecode(b"43 bad \xff utf8.jpg")).write_bytes(items["06 png named.jpg"])  # type: ignore[arg-type]
    # Hostile sidecars next to good photos: the scan tags the photos; writing reports them.
    (lib / "06 png named.jpg.xmp").write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                                              '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>')  # fmt: skip
    (lib / "07 jpeg named.png.xmp").write_text(
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    )
    (lib / "15 cmyk.jpg.xmp").write_bytes(b"\x00\x01 not xml at all")
    with (lib / "19 one pixel.png.xmp").open("wb") as f:
        f.truncate(2**30)  # a gigabyte sidecar (sparse)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Index.open(tmp_path / "i.sqlite") as idx:
        events = list(scan([lib], idx, ScanOptions(device=Device.CPU, batch_size=8)))
        writes = list(write_tags(idx, [lib], WriteSettings()))
    grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    report = events[-1].report  # type: ignore[union-attr]
    assert isinstance(events[-1], Finished)
    tagged = {e.path.name for e in events if isinstance(e, Tagged)}
    failed = {e.path.name: e.reason for e in events if isinstance(e, Failed)}
    for reason in failed.values():
        assert (
            reason
            and "\n" not in reason
            and "Traceback" not in reason
            and "unexpected error" not in reason
        )
    assert set(failed) == {
        "01 zero bytes.jpg", "02 truncated.jpg", "03 truncated.png", "04 truncated.heic", "05 truncated.tif",
        "08 text.jpg", "09 html.webp", "10 png bomb.png", "11 jpeg bomb.jpg", "12 gif bomb.gif",
        "13 tiff header only.tif", "31 a fifo.jpg", "32 random bytes.jpg", "33 jpeg header then garbage.jpg",
        "41 broken link.jpg", "42 loop",
    }, failed  # fmt: skip
    for bomb in ("10 png bomb.png", "11 jpeg bomb.jpg", "12 gif bomb.gif"):
        assert "decompression bomb" in failed[bomb]
    assert failed["31 a fifo.jpg"] == "not a regular file"
    # Everything else is a photo, however odd, and was tagged: the unusual modes, the tiny
    # and the long, animations, absurd EXIF, and every hostile name.
    expected_good = {n for n in items if n not in failed and n != "30 a folder.jpg"}
    expected_good |= {os.fsdecode(b"43 bad \xff utf8.jpg")}
    # A symlink to a photo in the library is another name of that photo: one file, one photo
    # (issue 13, item 3), counted once and not tagged twice.
    expected_good -= {"40 symlink to a photo.heic"}
    assert report.same_file == 1
    assert tagged == expected_good
    assert report.tagged + report.reused == len(expected_good)
    write_failed = {e.photo.name: e.reason for e in writes if isinstance(e, WriteFailed)}
    assert set(write_failed) == {
        "06 png named.jpg",
        "07 jpeg named.png",
        "15 cmyk.jpg",
        "19 one pixel.png",
    }
    assert (
        "DTD or entities" in write_failed["06 png named.jpg"]
        and "too large" in write_failed["19 one pixel.png"]
    )
    assert (lib / "07 jpeg named.png.xmp").read_text().startswith("<!DOCTYPE")  # left as it was
    assert grew_mib < 800, grew_mib  # the bombs were refused before decoding
    # Every odd name also makes it into an album, and nothing lands outside the album folder.
    from phototag.library.albums import build_album
    from phototag.library.query import TagQuery

    with Index.open(tmp_path / "i.sqlite") as idx:
        album = tmp_path / "albums" / "all"
        report = build_album(
            idx, "all", album, TagQuery(tags=("food", "animal", "imagenet"), any=True)
        )
    assert not report.failed and len(report.added) == report.matches
    assert sorted(p.parent for p in album.iterdir()) == [album] * len(list(album.iterdir()))


@pytest.mark.parametrize("orientation", [0, 9, 99, 65535])
def test_absurd_orientations_are_ignored(orientation: object) -> None:
    from phototag.media.imaging import decode

    photo = decode(exif_jpeg(orientation), min_side=64, max_pixels=10**8)
    assert photo.image.size == (120, 80)
