"""Decoding and preprocessing: pure functions checked against what they must reproduce."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import jpeg_bytes, sample
from PIL import Image

from phototag.errors import ImageError
from phototag.media.imaging import (
    Preprocess,
    center_crop,
    decode,
    normalize,
    preprocess,
    resize_short_side,
)

LITE = Preprocess(resize=256, crop=224, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
BIG = 200_000_000


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_preprocess_matches_the_reference_pipeline_written_independently(
    coffee: np.ndarray,
) -> None:
    im = Image.fromarray(coffee)
    w, h = im.size
    s = 256 / min(w, h)
    ref = im.resize((round(w * s), round(h * s)), Image.Resampling.BICUBIC)
    left, top = (ref.width - 224) // 2, (ref.height - 224) // 2
    ref_a = (np.asarray(ref.crop((left, top, left + 224, top + 224)), np.float32) - 127) / 128
    out = preprocess(im, LITE)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    np.testing.assert_array_equal(out, ref_a.transpose(2, 0, 1))


def test_extreme_strips_do_not_blow_up_and_keep_their_centre() -> None:
    strip = Image.new("RGB", (30_000, 10), (10, 20, 30))
    strip.paste((200, 0, 0), (14_995, 0, 15_005, 10))  # a red mark in the middle
    a = resize_short_side(strip, 256)
    assert a.shape == (256, 4096, 3)  # trimmed to 16:1, not 768000 wide
    assert tuple(a[128, 2048]) == (200, 0, 0)
    normal = Image.fromarray(sample("coffee"))  # 3:2: no trimming, same as before
    assert resize_short_side(normal, 256).shape == (256, 384, 3)


def test_resize_short_side_keeps_aspect_and_crop_pads_tiny_images() -> None:
    a = resize_short_side(Image.new("RGB", (600, 400)), 256)
    assert a.shape == (256, 384, 3)
    tiny = center_crop(np.zeros((10, 300, 3), np.uint8), 224)
    assert tiny.shape == (224, 224, 3)
    assert normalize(np.full((2, 2, 3), 255, np.uint8), LITE).max() == pytest.approx(1.0)


def test_jpeg_draft_mode_decodes_a_reduced_image_but_never_below_the_model_size() -> None:
    big = np.asarray(Image.fromarray(sample("coffee")).resize((4000, 3000)))
    photo = decode(jpeg_bytes(big), min_side=256, max_pixels=BIG)
    assert (photo.width, photo.height) == (4000, 3000)  # the photo's own size is recorded
    assert min(photo.image.size) >= 256
    assert photo.image.size[0] <= 1000  # DCT scaling: decoded at 1/4 or 1/8, not 4000 px


@pytest.mark.parametrize(
    ("orientation", "upright_size"), [(1, (60, 40)), (3, (60, 40)), (6, (40, 60)), (8, (40, 60))]
)
def test_exif_orientation_is_applied(orientation: int, upright_size: tuple[int, int]) -> None:
    a = np.zeros((40, 60, 3), np.uint8)
    a[:10, :10] = (255, 0, 0)  # red in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = decode(jpeg_bytes(a, quality=100, exif=exif), min_side=256, max_pixels=BIG)
    assert photo.image.size == upright_size
    assert (photo.width, photo.height) == upright_size
    corners = {1: (0, 0), 3: (59, 39), 6: (39, 0), 8: (0, 59)}[orientation]
    r, g, b = photo.image.getpixel(corners)
    assert r > 200 and g < 60 and b < 60


def test_transparency_is_composited_on_white() -> None:
    im = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 16, 32))
    photo = decode(png(im), min_side=1, max_pixels=BIG)
    assert photo.image.mode == "RGB"
    assert photo.image.getpixel((24, 10)) == (255, 255, 255)
    assert photo.image.getpixel((4, 10)) == (0, 0, 255)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16", "LA", "1"])
def test_other_modes_become_rgb(mode: str) -> None:
    base = Image.fromarray(sample("coffee")).resize((64, 48))
    if mode == "I;16":  # real 16-bit data spans 0..65535
        im = Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
    else:
        im = base.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    buf = io.BytesIO()
    im.save(buf, fmt)
    photo = decode(buf.getvalue(), min_side=1, max_pixels=BIG)
    assert photo.image.mode == "RGB" and photo.image.size == (64, 48)
    assert np.asarray(photo.image).std() > 5  # not flattened to one colour


def test_sixteen_bit_keeps_its_brightness() -> None:
    a = np.full((8, 8), 65535 // 2, np.uint16)
    photo = decode(png(Image.fromarray(a)), min_side=1, max_pixels=BIG)
    assert 120 <= np.asarray(photo.image).mean() <= 135


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    photo = decode(buf.getvalue(), min_side=1, max_pixels=BIG)
    r, g, _ = photo.image.getpixel((8, 8))
    assert r > 200 and g < 50


def test_heic_decodes() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    buf = io.BytesIO()
    Image.fromarray(sample("chelsea")).save(buf, "HEIF", quality=90)
    photo = decode(buf.getvalue(), min_side=256, max_pixels=BIG)
    assert (photo.width, photo.height) == (451, 300)


def test_capture_time_comes_from_exif() -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2024:06:01 10:30:00"
    photo = decode(jpeg_bytes(np.zeros((8, 8, 3), np.uint8), exif=exif), min_side=1, max_pixels=BIG)
    assert photo.taken_at == "2024-06-01T10:30:00"
    broken = Image.Exif()
    broken.get_ifd(0x8769)[0x9003] = "not a date"
    photo = decode(
        jpeg_bytes(np.zeros((8, 8, 3), np.uint8), exif=broken), min_side=1, max_pixels=BIG
    )
    assert photo.taken_at is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am text\n", "not an image"),
    ],
)
def test_bad_bytes_give_one_line_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason) as e:
        decode(data, min_side=1, max_pixels=BIG)
    assert "\n" not in str(e.value)


def test_truncated_jpeg_is_refused(coffee: np.ndarray) -> None:
    data = jpeg_bytes(coffee)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode(data[: len(data) // 2], min_side=1, max_pixels=BIG)


def test_pixel_cap_refuses_decompression_bombs_before_decoding() -> None:
    im = Image.new("RGB", (3000, 3000))
    with pytest.raises(ImageError, match=r"too large.*decompression bomb"):
        decode(png(im), min_side=1, max_pixels=1_000_000)
