"""Making the photographers' formats from real photos, for tests and bench/formats.py.

Nothing here is committed as a binary: every file is generated from scikit-image's real
photos (the coffee cup, Chelsea the cat, the astronaut).

* DNG: the photo, turned linear and mosaicked into an RGGB Bayer pattern of 12 bits, as a
  sensor would record it, in a DNG 1.4 written by tifffile (raw data in a SubIFD, a tiny
  JPEG preview in IFD0 as the DNG specification lays out); then exiftool replaces that
  preview with a full-size JPEG (``-PreviewImage<=``), as a camera's would be.
* HEIC: pillow-heif, with a 320 px thumbnail as an iPhone stores (320 x 240 for 4:3).
* Videos: PyAV (H.264 in MP4/MOV, VP9 in WebM), frames of a slow pan across a photo.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


def _jpeg(a: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _srgb_to_linear(a: np.ndarray) -> np.ndarray:
    x = a.astype(np.float64) / 255.0
    out: np.ndarray = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    return out


def _rationals(values: Sequence[float]) -> list[int]:
    out: list[int] = []
    for v in values:
        out += [round(v * 10000), 10000]
    return out


def make_dng(
    path: Path,
    rgb: np.ndarray,
    *,
    preview: bool = True,
    preview_size: tuple[int, int] | None = None,
    orientation: int = 1,
    taken: str | None = None,
) -> Path:
    """A DNG of ``rgb`` (HxWx3 uint8, sRGB). ``preview``: a JPEG preview of the photo
    (``preview_size`` (w, h), default full size) put in by exiftool; without one the DNG
    holds the raw data only (no preview at all)."""
    import tifffile

    h, w = rgb.shape[:2]
    h, w = h - h % 2, w - w % 2
    lin = np.round(_srgb_to_linear(rgb[:h, :w]) * 4095).astype(np.uint16)
    bayer = np.empty((h, w), np.uint16)
    bayer[0::2, 0::2] = lin[0::2, 0::2, 0]
    bayer[0::2, 1::2] = lin[0::2, 1::2, 1]
    bayer[1::2, 0::2] = lin[1::2, 0::2, 1]
    bayer[1::2, 1::2] = lin[1::2, 1::2, 2]
    # The "camera" sees linear sRGB: ColorMatrix1 is XYZ (D65) -> linear sRGB.
    xyz_to_srgb = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]
    dng_tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "phototag test camera", True),  # UniqueCameraModel
        (50721, "2i", 9, _rationals(xyz_to_srgb), True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
        (274, "H", 1, orientation, True),  # Orientation
        (271, "s", 0, "phototag", True),  # Make
        (272, "s", 0, "test", True),  # Model
    ]
    if taken:
        dng_tags.append((306, "s", 0, taken, True))  # DateTime
    cfa_tags = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50714, "H", 1, 0, True),  # BlackLevel
        (50717, "H", 1, 4095, True),  # WhiteLevel
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tif:
        if preview:
            # A 48-pixel placeholder JPEG, written as it is (tifffile would re-encode JPEG
            # strips with imagecodecs); exiftool puts the real preview in its place below.
            placeholder = _jpeg(np.asarray(Image.fromarray(rgb).resize((48, 32))))
            codecs = tifffile.TIFF.COMPRESSORS._codecs
            saved = codecs.get(7)
            codecs[7] = lambda data, **kw: data
            try:
                tif.write(iter([placeholder]), shape=(32, 48, 3), dtype=np.uint8,
                          photometric="ycbcr", compression=7, subsampling=(2, 2),
                          subfiletype=1, subifds=1, rowsperstrip=32, extratags=dng_tags,
                          metadata=None)  # fmt: skip
            finally:
                if saved is None:
                    codecs.pop(7, None)
                else:
                    codecs[7] = saved
            tif.write(bayer, photometric=32803, subfiletype=0, extratags=cfa_tags, metadata=None)
        else:
            tif.write(bayer, photometric=32803, subfiletype=0,
                      extratags=dng_tags + cfa_tags, metadata=None)  # fmt: skip
    if preview:
        im = Image.fromarray(rgb)
        if preview_size:
            im = im.resize(preview_size, Image.Resampling.BICUBIC)
        jpg = path.with_name(path.name + ".preview.jpg")
        im.save(jpg, "JPEG", quality=90)
        try:
            exiftool = shutil.which("exiftool")
            assert exiftool, "exiftool is needed to give test DNGs their previews"
            subprocess.run(
                [exiftool, "-q", "-overwrite_original", f"-PreviewImage<={jpg}", str(path)],
                check=True,
            )
        finally:
            jpg.unlink()
    return path


def make_heic(path: Path, rgb: np.ndarray, *, size: tuple[int, int] | None = None,
              thumbnail: int | None = 320, quality: int = 80,
              preset: str | None = None) -> Path:  # fmt: skip
    """A HEIC of ``rgb`` (resized to ``size``), with a ``thumbnail``-pixel thumbnail (long side);
    ``preset``: x265's (``ultrafast`` encodes 12 MP in seconds rather than minutes)."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    im = Image.fromarray(rgb)
    if size:
        im = im.resize(size, Image.Resampling.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "HEIF", quality=quality, thumbnails=[thumbnail] if thumbnail else [],
            enc_params={"preset": preset} if preset else {})  # fmt: skip
    return path


def pan_frames(rgb: np.ndarray, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n`` frames of ``size`` (w, h) panning left to right across the photo."""
    w, h = size
    scale = h / rgb.shape[0] * 1.25
    big = np.asarray(
        Image.fromarray(rgb).resize(
            (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), Image.Resampling.BICUBIC
        )
    )
    span = max(0, big.shape[1] - w)
    top = (big.shape[0] - h) // 2
    return [
        np.ascontiguousarray(big[top : top + h, round(span * i / max(1, n - 1)) :][:, :w])
        for i in range(n)
    ]


def make_video(path: Path, frames: Sequence[np.ndarray], *, fps: int = 10,
               codec: str | None = None, creation_time: str | None = None,
               rotation: int | None = None, gop: int | None = None,
               preset: str | None = None) -> Path:  # fmt: skip
    """Encode ``frames`` (HxWx3 uint8, even sizes) with PyAV; the codec from the container."""
    import av

    ext = path.suffix.lower()
    codec = codec or {".webm": "libvpx-vp9", ".avi": "mpeg4"}.get(ext, "libx264")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as out:
        if creation_time:
            out.metadata["creation_time"] = creation_time
        stream = out.add_stream(codec, rate=fps)
        stream.width = frames[0].shape[1]
        stream.height = frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if preset and codec == "libx264":
            stream.options = {"preset": preset}
        stream.time_base = Fraction(1, fps)
        # A key frame every second by default, as phones and cameras write them.
        stream.codec_context.gop_size = gop or fps
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for a in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
