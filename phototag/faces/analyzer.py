"""Faces in a batch of decoded photos: detect, check, describe; and the people tags they give.

Three ONNX models, each described by a ``backbone.toml`` under ``weights/`` (kinds
``face-detector``, ``face-check``, ``face-descriptor``) and opened lazily on first use:

1. BlazeFace (:mod:`.detect`) on the whole photo, letterboxed to 256 x 256: boxes, six
   keypoints and a score. Its graph holds a batch of one, so it runs photo by photo.
2. Face Mesh's face flag (:mod:`.verify`) on every box scoring at least ``MIN_SCORE``, all faces
   of the batch in one run: a box is a face only if the flag is at least ``MIN_CHECK``.
3. FaceRes (:mod:`.describe`) on every face whose box is at least ``MIN_DESCRIBE_PX`` pixels
   high in the decoded image, all in one run: a unit 1024-d descriptor.

The photo given is the one the scan decoded for the classifier (JPEGs at reduced size by DCT
scaling, short side at least 256 px), so faces cost no second decode; a face too small there
to recognise keeps its box (it still counts for the people tags) but gets no descriptor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import Device
from ..errors import ModelError
from ..models.catalog import Catalog
from ..models.manifest import BackboneManifest, verify_files
from ..models.recognizers import Candidate
from ..models.session import Session, open_session
from . import describe, detect, verify

#: Names of the three models in the catalog.
DETECTOR, CHECK, DESCRIPTOR = "blazeface", "facemesh", "faceres"
#: BlazeFace's score for a box to be checked at all.
MIN_SCORE = 0.5
#: Face Mesh's face flag for a box to be a face (real faces: 0.98-1.0; the cat's face and
#: the coffee cup that BlazeFace takes for faces: under 0.001; see docs/people.md).
MIN_CHECK = 0.5
#: Faces smaller than this (box height in pixels of the decoded photo) get no descriptor: at
#: 32 px a face's descriptor is within 0.23 (cosine) of the same face at full size, at 24 px
#: it drifts to 0.38, past MATCH_DISTANCE (measured on scikit-image's astronaut and camera).
MIN_DESCRIBE_PX = 32
#: The name under which the people tags are stored, like a recognizer's.
RECOGNIZER = "faces"
#: A single face whose box covers at least this fraction of the photo makes a portrait.
PORTRAIT_AREA = 0.03


@dataclass(frozen=True, slots=True)
class Face:
    """One face: where it is, how sure, and (if large enough) who it looks like."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2: fractions of the upright photo
    landmarks: np.ndarray  # (6, 2) x, y fractions: eyes, nose, mouth, ears (detect.KEYPOINTS)
    score: float  # BlazeFace's score, 0-1
    quality: float  # score x face flag x min(1, height / 2 MIN_DESCRIBE_PX): how usable it is
    descriptor: np.ndarray | None = field(default=None, repr=False)  # (1024,) unit float32

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass
class FaceAnalyzer:
    """The three face models, opened on first use. ``analyze`` is the one entry point."""

    catalog: Catalog
    device: Device = Device.AUTO
    threads: int | None = None
    _sessions: dict[str, tuple[BackboneManifest, Session]] = field(default_factory=dict, repr=False)

    def manifest(self, name: str) -> BackboneManifest:
        try:
            return self.catalog.backbone(name)
        except ModelError as e:
            raise ModelError(f"the face model {name} is not usable: {e}") from None

    @property
    def fingerprint(self) -> str:
        """Changes when any of the three models or the face settings change."""
        parts = [self.manifest(n).fingerprint[:8] for n in (DETECTOR, CHECK, DESCRIPTOR)]
        return "faces:" + "-".join(parts) + f":s{MIN_SCORE:g}:c{MIN_CHECK:g}:d{MIN_DESCRIBE_PX}"

    def load(self) -> None:
        """Verify and open the three models (a damaged file is refused before any photo)."""
        for name in (DETECTOR, CHECK, DESCRIPTOR):
            if name not in self._sessions:
                m = self.manifest(name)
                verify_files(m, "image")
                self._sessions[name] = (m, open_session(m.model_path, self.device, self.threads))

    @property
    def providers(self) -> list[str]:
        return sorted({p for _, s in self._sessions.values() for p in s.providers})

    def _run(self, name: str, x: np.ndarray, output: str | None = None) -> list[np.ndarray]:
        self.load()
        m, session = self._sessions[name]
        names = [output] if output else session.output_names()
        return [np.asarray(o) for o in session.run(names, {m.input_name: x.astype(np.float32)})]

    def analyze(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """The faces of each photo (HWC uint8 RGB, upright), best score first."""
        self.load()
        found: list[tuple[int, np.ndarray, np.ndarray, float]] = []
        for i, image in enumerate(images):
            x, box = detect.letterbox(image)
            names = self._sessions[DETECTOR][1].output_names()
            raw = dict(zip(names, self._run(DETECTOR, x[None]), strict=True))
            boxes, kps, scores = detect.decode(detect.merge_outputs(raw), box, min_score=MIN_SCORE)
            found += [(i, b, k, float(s)) for b, k, s in zip(boxes, kps, scores, strict=True)]
        out: list[list[Face]] = [[] for _ in images]
        if not found:
            return out
        crops = np.stack(
            [
                describe.crop_face(images[i], b, k, size=verify.INPUT_SIZE, enlarge=verify.ENLARGE)
                for i, b, k, _ in found
            ]
        )
        flags = self._run(CHECK, crops / 255.0, self.manifest(CHECK).embedding_output)[0].reshape(
            -1
        )
        faces = [
            (f, float(flag)) for f, flag in zip(found, flags, strict=True) if flag >= MIN_CHECK
        ]
        heights = [float(b[3] - b[1]) * images[i].shape[0] for (i, b, _, _), _ in faces]
        to_describe = [j for j, h in enumerate(heights) if h >= MIN_DESCRIBE_PX]
        descriptors: dict[int, np.ndarray] = {}
        if to_describe:
            batch = np.stack(
                [
                    describe.crop_face(images[faces[j][0][0]], faces[j][0][1], faces[j][0][2])
                    for j in to_describe
                ]
            )
            d = self._run(DESCRIPTOR, batch, self.manifest(DESCRIPTOR).embedding_output)[0]
            d = describe.normalize(d.reshape(len(to_describe), -1))
            descriptors = dict(zip(to_describe, d, strict=True))
        for j, ((i, b, k, s), flag) in enumerate(faces):
            quality = s * flag * min(1.0, heights[j] / (2 * MIN_DESCRIBE_PX))
            box4 = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            out[i].append(Face(box4, k, s, quality, descriptors.get(j)))
        return out


def people_tags(faces: Sequence[Face]) -> list[Candidate]:
    """The ``people/...`` tag a photo gets from its faces (none without a face).

    ``people/portrait``: one face covering at least ``PORTRAIT_AREA`` of the photo;
    ``people/person``: one, smaller; ``people/couple``: two; ``people/group``: 3 to 9;
    ``people/crowd``: 10 or more. The score is the mean of the faces' detector scores.
    The same paths as the opt-in ``people`` recognizer on the COCO detector (which counts
    bodies), so albums and searches need not care which one tagged a photo.
    """
    n = len(faces)
    if n == 0:
        return []
    if n == 1:
        tag = "portrait" if faces[0].area >= PORTRAIT_AREA else "person"
    else:
        tag = "couple" if n == 2 else "group" if n < 10 else "crowd"
    score = float(np.mean([f.score for f in faces]))
    return [Candidate(tag, round(score, 4), f"people/{tag}")]
