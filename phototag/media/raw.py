"""Camera RAW files: tagged from their largest embedded preview, or a half-size LibRaw decode.

Almost every RAW carries the camera's own JPEG rendering of the shot (full size on most
Canon, Nikon, Sony and Fujifilm bodies; 1-2 MP on others). Decoding that JPEG (in draft
mode, like any JPEG) costs a few milliseconds, where demosaicing the sensor data costs
seconds, and it is what the photographer saw on the camera. The preview is read with
rawpy (LibRaw) rather than exiftool's ``-b -PreviewImage``: both find the largest preview,
but LibRaw reads it in-process from bytes already in memory, while exiftool needs the file
re-read by another process and its output piped back (``bench/formats.py`` measures both;
docs/performance.md has the figures).

The preview carries no reliable orientation of its own: the RAW's (LibRaw's ``flip``) is
applied to it. A RAW whose preview is missing or smaller than the model needs is decoded
by LibRaw at half size (``half_size=True``: each 2x2 Bayer block becomes one pixel, no
demosaicing), which LibRaw turns upright itself.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import ImageError

if TYPE_CHECKING:
    from .imaging import DecodedPhoto

#: LibRaw's ``sizes.flip`` -> EXIF orientation (LibRaw: 3 = 180 degrees, 5 = 90 degrees
#: counter-clockwise, 6 = 90 degrees clockwise).
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def decode_raw(
    data: bytes, *, min_side: int, max_pixels: int, allow_preview: bool = True
) -> DecodedPhoto:
    """Decode a RAW file's bytes into an upright RGB picture with short side >= ``min_side``.

    The largest embedded preview is used when its short side is at least ``min_side``
    pixels; otherwise (or with ``allow_preview=False``) the sensor data is decoded by
    LibRaw at half size with the camera's white balance. ``width`` and ``height`` are the
    RAW's own upright size. Raises :class:`ImageError` with a one-line reason for files
    LibRaw cannot read, and for sensors over ``max_pixels``.
    """
    import rawpy

    from .imaging import DecodedPhoto

    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
            width, height = int(sizes.width), int(sizes.height)
            if width * height > max_pixels:
                raise ImageError(
                    f"RAW too large: {width}x{height} = {width * height / 1e6:.0f} MP "
                    f"is over the {max_pixels / 1e6:.0f} MP limit"
                )
            if orientation in (6, 8):
                width, height = height, width
            # The capture time from the EXIF that Pillow reads in TIFF-based RAWs (DNG, NEF,
            # CR2, ARW, PEF, ...) or in the preview; LibRaw's own (``raw.other``) only when the
            # sensor data is unpacked anyway: asking for it unpacks it (~100 ms for 12 MP).
            taken_at = _exif_time(data)
            found = _preview(raw, min_side, max_pixels, orientation) if allow_preview else None
            if found is not None:
                image, preview_time = found
                taken_at = taken_at or preview_time
            else:
                image = _half_size(raw)
                taken_at = taken_at or _timestamp(raw)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("RAW needs more memory than is available to decode") from None
    except Exception as e:  # rawpy raises LibRawError subclasses, and OSError/ValueError
        raise ImageError(f"not a RAW file LibRaw can read: {_one_line(e)}") from None
    return DecodedPhoto(image=image, width=width, height=height, taken_at=taken_at)


def _exif_time(data: bytes) -> str | None:
    from PIL import Image

    from .imaging import _capture_time

    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header and IFDs, no pixels
            return _capture_time(im)
    except Exception:  # not TIFF-based (CR3, RAF, RW2, ORF...), or odd: LibRaw's will do
        return None


def _preview(
    raw: Any, min_side: int, max_pixels: int, orientation: int
) -> tuple[Any, str | None] | None:
    """The embedded preview, upright in RGB, and the capture time in its EXIF; None when
    there is no preview big enough."""
    import rawpy
    from PIL import Image

    from .imaging import _apply_orientation, _capture_time, _to_rgb

    try:
        thumb = raw.extract_thumb()  # LibRaw picks the largest of the previews
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    except rawpy.LibRawError:
        return None  # a damaged preview: the sensor data may still be fine
    im: Image.Image
    taken_at = None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            jpeg = Image.open(io.BytesIO(thumb.data))
            if jpeg.format != "JPEG" or jpeg.size[0] * jpeg.size[1] > max_pixels:
                return None
            if min(jpeg.size) < min_side:
                return None
            taken_at = _capture_time(jpeg)
            jpeg.draft("RGB", (min_side, min_side))
            jpeg.load()
            im = jpeg
        else:
            im = Image.fromarray(thumb.data)
            if min(im.size) < min_side:
                return None
        im = _to_rgb(im)
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        _ = e  # a corrupt preview: decode the sensor data instead
        return None
    # The preview's own EXIF orientation (if any) is ignored on purpose: the RAW's flip is
    # what raw converters apply, and previews written by converters often lack one.
    return (_apply_orientation(im, orientation) if orientation != 1 else im), taken_at


def _half_size(raw: Any) -> Any:
    from PIL import Image

    rgb = raw.postprocess(
        half_size=True,  # no demosaicing: 2x2 Bayer blocks -> one pixel, 4x fewer pixels
        use_camera_wb=True,  # the white balance the camera chose, as its preview has
        output_bps=8,
        no_auto_bright=False,
    )
    return Image.fromarray(rgb)  # LibRaw has applied the flip already


def _timestamp(raw: Any) -> str | None:
    """The RAW's capture time (LibRaw reads EXIF DateTimeOriginal, else DateTime)."""
    try:
        ts = raw.other.timestamp
    except Exception:
        return None
    if isinstance(ts, datetime):  # rawpy >= 0.22: a naive datetime, the camera's wall clock
        return ts.replace(tzinfo=None).isoformat() if ts.year > 1970 else None
    try:
        seconds = float(ts)
    except (TypeError, ValueError):
        return None
    # Older rawpy: LibRaw's time_t, made from the camera's wall clock with the C library's
    # local time; turning it back with the same local time gives that wall clock.
    return datetime.fromtimestamp(seconds).isoformat() if seconds > 0 else None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
