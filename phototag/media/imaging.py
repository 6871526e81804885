"""Decoding photos and turning them into model inputs.

Decoding (:func:`decode`) is the only part that touches files; everything after it is a
pure function of arrays. :func:`preprocess` reproduces the reference pipeline of the
torchvision-style classifiers: PIL bicubic resize of the short side, centre crop,
per-channel ``(x - mean) / std``, CHW float32 -- with its parameters read from the
backbone's manifest, never hard-coded here.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ImageError
from .kinds import PHOTO_EXTENSIONS

if TYPE_CHECKING:
    from PIL import Image

#: Extensions Pillow decodes here (lower case, with the dot); RAW files and videos have
#: their own decoders (phototag/media/).
IMAGE_EXTENSIONS = PHOTO_EXTENSIONS

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132


@dataclass(frozen=True, slots=True)
class DecodedPhoto:
    """A photo decoded once, oriented upright, in RGB, at reduced size where possible."""

    image: Image.Image
    width: int  # the photo's own size, upright, before any reduction
    height: int
    taken_at: str | None  # EXIF capture time, ISO 8601, no time zone


class ResizeMode(StrEnum):
    """How a photo becomes the model's square input."""

    CROP = "crop"  # short side to ``resize``, centre crop of ``crop``
    STRETCH = "stretch"  # straight to crop x crop, aspect ratio not kept


class Layout(StrEnum):
    NCHW = "nchw"
    NHWC = "nhwc"  # channels last, as TF.js models want


class SizeConvention(StrEnum):
    """How sizes are rounded: phototag's way, or torchvision's (long side truncated, crop
    offset rounded half to even) -- what OpenCLIP's transform does, pixel for pixel."""

    PHOTOTAG = "phototag"
    TORCHVISION = "torchvision"


class Resample(StrEnum):
    BICUBIC = "bicubic"
    BILINEAR = "bilinear"
    LANCZOS = "lanczos"
    NEAREST = "nearest"


@dataclass(frozen=True, slots=True)
class Preprocess:
    """How a backbone wants its input, as its manifest says."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: Resample = Resample.BICUBIC
    mode: ResizeMode = ResizeMode.CROP
    layout: Layout = Layout.NCHW
    convention: SizeConvention = SizeConvention.PHOTOTAG


_registered_heif = False


def _register_plugins() -> None:
    global _registered_heif
    if not _registered_heif:
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
        except ImportError:  # pragma: no cover - pillow-heif is a dependency
            pass
        _registered_heif = True


def decode(
    data: bytes, *, min_side: int, max_pixels: int, thumb_side: int | None = None
) -> DecodedPhoto:
    """Decode image bytes into an upright RGB picture whose short side is >= ``min_side``.

    JPEGs are decoded in draft mode (DCT scaling), so a 12 MP photo is decoded at 1/2,
    1/4 or 1/8 size directly: about ten times faster than a full decode plus resize.
    HEIC/HEIF files are decoded from their smallest embedded thumbnail whose short side is
    at least ``thumb_side`` (default ``min_side``) when it is a scaled copy of the photo
    (pillow-heif's ``draft``): phones store a 320x240 one, enough for a model that looks at
    224 x 224 pixels, and decoding it skips the 12 MP HEVC decode (48x faster in bench/formats.py).
    EXIF orientation is applied; transparency is composited on white; animated files
    give their first frame. Raises :class:`ImageError` with a one-line reason.
    """
    from PIL import Image, UnidentifiedImageError

    _register_plugins()
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns about what it works around (corrupt EXIF, odd palettes) and above
            # MAX_IMAGE_PIXELS; none of it is actionable, and we check the size ourselves
            # to give one clear message.
            warnings.simplefilter("ignore")
            opened = Image.open(io.BytesIO(data))
            width, height = opened.size
            if width * height > max_pixels:
                raise ImageError(
                    f"image too large: {width}x{height} = {width * height / 1e6:.0f} MP "
                    f"is over the {max_pixels / 1e6:.0f} MP limit (possible decompression bomb)"
                )
            if opened.format == "JPEG":
                opened.draft("RGB", (min_side, min_side))
            elif opened.format == "HEIF":
                side = thumb_side or min_side
                opened.draft(opened.mode, (side, side))
            orientation = _orientation(opened)
            taken_at = _capture_time(opened)
            opened.load()
            upright = _upright(opened) if orientation != 1 else opened
            im = _to_rgb(upright)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image, or a format phototag cannot read") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"image too large (possible decompression bomb): {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, IndexError) as e:
        # Pillow's decoders report truncation and corruption through all of these.
        raise ImageError(f"corrupt or truncated image: {_one_line(e)}") from None
    except MemoryError:
        raise ImageError("image needs more memory than is available to decode") from None
    return DecodedPhoto(image=im, width=width, height=height, taken_at=taken_at)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1
    except Exception:  # a broken EXIF block must not cost us the photo
        return 1


def _upright(im: Image.Image) -> Image.Image:
    """The photo turned as its EXIF orientation says (Pillow's ``ImageOps.exif_transpose``,
    the reference the tests compare pixels with); a broken EXIF block leaves it as it is."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not cost us the photo
        return im


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    """``im`` turned as an EXIF orientation value (1-8) given apart from the image: a RAW's
    flip, which LibRaw reports and the preview lacks. The value is set on the image's EXIF
    and Pillow's ``ImageOps.exif_transpose`` turns it, the same path as :func:`_upright`."""
    if not 2 <= orientation <= 8:
        return im
    im.getexif()[0x0112] = orientation
    return _upright(im)


def _capture_time(im: Image.Image) -> str | None:
    try:
        exif = im.getexif()
        raw = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
    except Exception:
        return None
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB with transparency composited on white; 16-bit and float modes scaled to 8 bits."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        a8 = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a8, "L").convert("RGB")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def preprocess(im: Image.Image, p: Preprocess) -> np.ndarray:
    """Resize the short side to ``p.resize``, centre-crop ``p.crop``, normalise; CHW float32.

    With ``mode = "stretch"`` the whole photo is resized to ``crop`` x ``crop`` instead (a
    detector must see all of it), and ``layout = "nhwc"`` keeps channels last.
    """
    if p.mode == "stretch":
        from PIL import Image

        a = np.asarray(
            im.resize((p.crop, p.crop), Image.Resampling[p.resample.upper()]), dtype=np.uint8
        )
    else:
        tv = p.convention == "torchvision"
        a = center_crop(resize_short_side(im, p.resize, p.resample, tv), p.crop, tv)
    out = normalize(a, p)
    return np.ascontiguousarray(out.transpose(1, 2, 0)) if p.layout == "nhwc" else out


#: Beyond this aspect ratio the long side is trimmed (centred) before resizing, which
#: leaves the centre crop nearly the same and keeps a 30000 x 10 strip from becoming a
#: 768000 x 256 intermediate image of 590 MB (at 16:1 the largest is 4096 x 256, 3 MB).
#: Up to 16:1 -- every panorama a phone makes -- the pixels are exactly OpenCLIP's.
MAX_ASPECT = 16


def resize_short_side(
    im: Image.Image, size: int, resample: str = "bicubic", torchvision: bool = False
) -> np.ndarray:
    """PIL resize so that the shorter side is ``size`` (rounding the other, or truncating it as
    torchvision's ``Resize(size)`` does), as HWC uint8."""
    from PIL import Image

    w, h = im.size
    short = min(w, h)
    if max(w, h) > MAX_ASPECT * short:
        keep = MAX_ASPECT * short
        if w > h:
            im = im.crop(((w - keep) // 2, 0, (w - keep) // 2 + keep, h))
        else:
            im = im.crop((0, (h - keep) // 2, w, (h - keep) // 2 + keep))
        w, h = im.size
    scale = size / min(w, h)
    if torchvision:  # torchvision.transforms.functional._compute_resized_output_size
        long = int(size * max(w, h) / min(w, h))
        new = (size, long) if w <= h else (long, size)
    else:
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
    method = Image.Resampling[resample.upper()]
    return np.asarray(im.resize(new, method) if new != (w, h) else im, dtype=np.uint8)


def center_crop(a: np.ndarray, size: int, torchvision: bool = False) -> np.ndarray:
    """The central ``size`` x ``size`` square of an HWC array (padded with edge pixels if small)."""
    h, w = a.shape[:2]
    if h < size or w < size:
        pad_h, pad_w = max(0, size - h), max(0, size - w)
        a = np.pad(
            a,
            ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
            mode="edge",
        )
        h, w = a.shape[:2]
    if torchvision:  # torchvision's CenterCrop: int(round(...)), so half rounds to even
        top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    else:
        top, left = (h - size) // 2, (w - size) // 2
    return a[top : top + size, left : left + size]


def normalize(a: np.ndarray, p: Preprocess) -> np.ndarray:
    """``(x - mean) / std`` per channel, HWC uint8 -> CHW float32."""
    mean = np.asarray(p.mean, dtype=np.float32)
    std = np.asarray(p.std, dtype=np.float32)
    out = (a.astype(np.float32) - mean) / std
    return np.ascontiguousarray(out.transpose(2, 0, 1))
