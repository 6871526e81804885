"""Videos: a few frames spread over the clip, decoded with PyAV, and how their scores combine.

PyAV carries its own FFmpeg, so every container and codec a phone or camera writes (MP4,
MOV, MKV, AVI, 3GP, WebM; H.264, HEVC, VP9, AV1, MJPEG) decodes without a system FFmpeg.

Sampling: :data:`CANDIDATES` moments at the middles of equal slices of the clip are looked
at (a seek to the key frame at or before each, and only that key frame decoded). Black frames (fades,
a lens cap) and blurred ones (motion blur, focus hunting; sharpness, the variance of the
Laplacian, under :data:`BLUR_FRACTION` of the sharpest candidate's) are dropped, and at
most :data:`FRAMES` of the rest, spread evenly, are tagged.

Aggregation (:func:`aggregate`): a clip's class probabilities are the mean of its frames'
(a clip is tagged with what it shows throughout, and the sums a recognizer makes of
classes stay probabilities), its embedding is the mean of the frames' L2-normalised
embeddings (what search and similar compare), and a detector's boxes are those of the
frame with the most confident detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ImageError, UnreadableFile

if TYPE_CHECKING:
    from PIL import Image

    from ..models.backbones import BackboneOutput

#: Moments looked at per clip, and most frames tagged.
CANDIDATES = 8
FRAMES = 5
#: Mean luma (0-255) under which a frame counts as black.
BLACK_LUMA = 16.0
#: A frame less sharp than this fraction of the sharpest candidate counts as blurred.
BLUR_FRACTION = 0.3


@dataclass(frozen=True, slots=True)
class DecodedClip:
    """The frames chosen from a clip, upright RGB, short side >= the ``min_side`` asked for."""

    frames: list[Image.Image]
    width: int  # the clip's upright size
    height: int
    duration: float | None  # seconds
    taken_at: str | None  # capture time, ISO 8601 local wall-clock time, no time zone


def decode_video(path: Path, *, min_side: int, max_pixels: int) -> DecodedClip:
    """Open ``path`` with PyAV and choose the frames to tag (see the module docstring).

    Raises :class:`ImageError` with a one-line reason: not a video, no video stream, no
    frame decodable, frames over ``max_pixels``.
    """
    import av

    try:
        # A file object rather than the name: names that are not UTF-8 reach FFmpeg intact.
        with open(path, "rb") as f, av.open(f, mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ImageError("no video stream (an audio file?)")
            stream = container.streams.video[0]
            # Slice threads only: frame threads hold frames back until several packets are
            # in, which costs more than it gains when one frame is decoded per seek.
            stream.thread_type = "SLICE"
            w, h = int(stream.codec_context.width), int(stream.codec_context.height)
            if w * h > max_pixels:
                raise ImageError(f"video frames of {w}x{h} are over the pixel limit")
            duration = _duration(container, stream)
            taken_at = _capture_time(container.metadata, stream.metadata)
            picked = _sample(container, stream, duration, min_side)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("vanished before it could be read") from None
    except PermissionError:
        raise UnreadableFile("permission denied") from None
    except MemoryError:
        raise ImageError("video needs more memory than is available to decode") from None
    except Exception as e:  # av.FFmpegError and friends: a file FFmpeg cannot read
        raise ImageError(f"not a video FFmpeg can read: {_one_line(e)}") from None
    if not picked:
        raise ImageError("no frame of this video could be decoded")
    rotated = picked[0][1]
    if rotated:
        w, h = h, w
    frames = choose_frames([im for im, _ in picked])
    return DecodedClip(frames=frames, width=w, height=h, duration=duration, taken_at=taken_at)


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


def _sample(
    container: Any, stream: Any, duration: float | None, min_side: int
) -> list[tuple[Any, bool]]:
    """Up to :data:`CANDIDATES` distinct key frames (PIL images, whether turned by 90 degrees).

    Only key frames are decoded (``skip_frame = NONKEY``): a seek lands on the key frame at
    or before each moment, and that one frame is decoded -- one decode per moment, where
    decoding forward to the exact moment costs up to a whole GOP (250 frames in FFmpeg's
    default H.264 settings). Phones and cameras put a key frame every 0.5-2 s; a clip with
    sparser ones gives fewer distinct frames (duplicates are dropped).
    """
    stream.codec_context.skip_frame = "NONKEY"
    out: list[tuple[Any, bool]] = []
    if not duration or duration <= 0 or stream.time_base is None:
        # No duration (a live stream dump, a broken index): the first key frames will do.
        for frame in container.decode(stream):
            out.append(_to_image(frame, min_side))
            if len(out) >= CANDIDATES:
                break
        return out
    start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    seen: set[int | None] = set()
    for k in range(CANDIDATES):
        t = start + duration * (k + 0.5) / CANDIDATES
        try:
            container.seek(int(t / stream.time_base), stream=stream, backward=True)
            frame = _first_frame(container, stream, seen)
        except Exception:
            continue  # a damaged stretch of the file: the other moments may be fine
        if frame is not None:
            out.append(_to_image(frame, min_side))
    if not out:  # a duration that lies (a damaged index): the first key frames will do
        container.seek(0, stream=stream, backward=True)
        for frame in container.decode(stream):
            out.append(_to_image(frame, min_side))
            if len(out) >= FRAMES:
                break
    return out


def _first_frame(container: Any, stream: Any, seen: set[int | None]) -> Any:
    """The key frame the demuxer is at, decoded, unless ``seen`` already holds it (a long GOP
    brings two moments to the same key frame: it is not decoded twice)."""
    packet = next(iter(container.demux(stream)), None)
    if packet is None or packet.size == 0 or packet.pts in seen:
        return None
    seen.add(packet.pts)
    codec = stream.codec_context
    frames = list(packet.decode())
    if not frames:
        # A decoder that reorders frames (B-frames) holds the key frame back until later
        # frames arrive; those are skipped, so drain it instead, and reset it for the next seek.
        frames = list(codec.decode(None))
    codec.flush_buffers()
    return frames[0] if frames else None


def _to_image(frame: Any, min_side: int) -> tuple[Any, bool]:
    """An RGB PIL image scaled (by FFmpeg's swscale) so its short side is ``min_side``."""
    w, h = int(frame.width), int(frame.height)
    scale = min(1.0, min_side / max(1, min(w, h)))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    im = frame.to_image(width=size[0], height=size[1])
    rotation = round(float(getattr(frame, "rotation", 0) or 0)) % 360
    if rotation:
        # FFmpeg's display matrix angle is counter-clockwise, as PIL's rotate() is.
        im = im.rotate(rotation, expand=True)
    return im, rotation in (90, 270)


def luma(a: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an HxWx3 uint8 array, float32."""
    f = a.astype(np.float32)
    out: np.ndarray = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    return out


def sharpness(y: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a luma array (Pech-Pacheco et al., 2000)."""
    if y.shape[0] < 3 or y.shape[1] < 3:
        return 0.0
    lap = -4 * y[1:-1, 1:-1] + y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]
    return float(lap.var())


def choose_frames(images: Sequence[Image.Image], keep: int = FRAMES) -> list[Image.Image]:
    """Drop black and blurred frames, then keep at most ``keep`` spread evenly, in order.

    When every frame is black, the brightest one is kept: a clip is never left untagged
    for lack of a frame.
    """
    if not images:
        return []
    stats = []
    for im in images:
        small = im.copy()
        small.thumbnail((256, 256))
        y = luma(np.asarray(small.convert("RGB")))
        stats.append((float(y.mean()), sharpness(y)))
    lit = [i for i, (mean, _) in enumerate(stats) if mean >= BLACK_LUMA]
    if not lit:
        return [images[max(range(len(images)), key=lambda i: stats[i][0])]]
    best = max(stats[i][1] for i in lit)
    sharp = [i for i in lit if stats[i][1] >= BLUR_FRACTION * best]
    if len(sharp) > keep:
        sharp = [sharp[round(j * (len(sharp) - 1) / (keep - 1))] for j in range(keep)]
    return [images[i] for i in sharp]


def aggregate(output: BackboneOutput, counts: Sequence[int]) -> BackboneOutput:
    """Rows of ``output`` grouped by ``counts`` (frames per item) -> one row per item.

    Probabilities: the mean over the frames. Embeddings: the direction of the mean of the
    L2-normalised frame embeddings at the frames' mean length (an item of one frame keeps its
    embedding exactly). The length matters to a classifier's shipped head, which scores the
    clip from its embedding as stored (:meth:`phototag.tagging.tagger.Tagger.as_stored`, the
    probabilities here are then replaced): a unit-length mean would flatten its softmax to
    nothing, sixteen times smaller than any frame's logits. Cosine searches and the heads that
    normalise see the same direction either way. Detections: the frame with the most
    confident box.
    """
    from ..models.backbones import BackboneOutput

    if all(c == 1 for c in counts):
        return output
    starts = np.cumsum([0, *counts[:-1]])
    probs = embeddings = detections = None
    if output.probs is not None:
        probs = np.stack(
            [output.probs[s : s + c].mean(axis=0) for s, c in zip(starts, counts, strict=True)]
        )
    rows = []
    for s, c in zip(starts, counts, strict=True):
        e = output.embeddings[s : s + c]
        if c == 1 or e.shape[1] == 0:
            rows.append(e[0] if c else np.zeros(e.shape[1], np.float32))
            continue
        norms = np.linalg.norm(e, axis=1, keepdims=True)
        mean = (e / np.maximum(norms, 1e-12)).mean(axis=0)
        rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12) * float(norms.mean()))
    embeddings = np.stack(rows).astype(np.float32)
    if output.detections is not None:
        det = output.detections
        picks = [
            s + int(np.argmax(det[s : s + c, :, 4].max(axis=1)))
            for s, c in zip(starts, counts, strict=True)
        ]
        detections = det[picks]
    return BackboneOutput(probs=probs, embeddings=embeddings, detections=detections)


def stack_inputs(inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Per item a (C, H, W) photo or an (F, C, H, W) clip -> one (N, C, H, W) batch and the
    number of rows each item took (for :func:`aggregate`)."""
    parts = [x[None] if x.ndim == 3 else x for x in inputs]
    return np.concatenate(parts), [len(p) for p in parts]


def _capture_time(*metadata: dict[str, str]) -> str | None:
    """QuickTime's local ``com.apple.quicktime.creationdate``, else ``creation_time`` (UTC)
    turned into this machine's local time, as ISO 8601 without a time zone."""
    for md in metadata:
        v = md.get("com.apple.quicktime.creationdate")
        if v:
            try:
                return datetime.fromisoformat(v.strip()).replace(tzinfo=None).isoformat()
            except ValueError:
                pass
    for md in metadata:
        v = md.get("creation_time")
        if v:
            try:
                t = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            except ValueError:
                continue
            if t.year < 1971:  # an unset QuickTime date (1904 or 1970) is no capture time
                continue
            if t.tzinfo is None:
                t = t.replace(tzinfo=UTC)
            return t.astimezone().replace(tzinfo=None, microsecond=0).isoformat()
    return None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
