"""The face step of a scan: one small hook between inference and the index.

A scan (or any tagging path) that decoded a batch of photos calls :meth:`FaceStep.analyze`
with their pixels, :meth:`FaceStep.store` for each photo inside its index transaction, and
:meth:`FaceStep.finish` once at the end (grouping new faces into people).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Device
from ..index import faces as db
from ..index.store import Index
from ..models.catalog import Catalog
from ..models.recognizers import Candidate
from .analyzer import RECOGNIZER, Face, FaceAnalyzer, people_tags
from .grouping import Grouped, group
from .names import match, regions_of

#: The index's meta key that ``people forget`` sets, so nightly scans stop finding faces
#: until the user asks for them again (``scan --faces``).
META_OFF = "faces_off"


def faces_off(index: Index) -> bool:
    row = index.conn.execute("SELECT value FROM meta WHERE key = ?", (META_OFF,)).fetchone()
    return row is not None and row[0] == "1"


def set_faces_off(index: Index, off: bool) -> None:
    if off:
        index.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (META_OFF,))
    else:
        index.conn.execute("DELETE FROM meta WHERE key = ?", (META_OFF,))


@dataclass
class FaceStep:
    """Faces for a scan: analyze a batch, store per photo, group at the end."""

    catalog: Catalog
    device: Device = Device.AUTO
    # Photos are decoded with at least this short side when faces are looked for (JPEGs by DCT
    # scaling: a 12 MP photo at 1/4 size rather than the classifier's 1/8), so that a face
    # 4 % of the photo's height still has MIN_DESCRIBE_PX pixels. Measured in bench/face_speed.py.
    decode_side: int = 512
    found: int = 0
    analyzer: FaceAnalyzer = field(init=False)

    def __post_init__(self) -> None:
        self.analyzer = FaceAnalyzer(self.catalog, self.device)

    @property
    def name(self) -> str:
        return RECOGNIZER

    @property
    def fingerprint(self) -> str:
        return f"{self.analyzer.fingerprint}:r{self.decode_side}"

    def load(self) -> None:
        self.analyzer.load()

    def analyze(self, images: Sequence[np.ndarray | None]) -> list[list[Face]]:
        """Faces of each photo; a photo without pixels (None) has none."""
        present = [i for i, im in enumerate(images) if im is not None]
        found = self.analyzer.analyze([images[i] for i in present])  # type: ignore[misc]
        out: list[list[Face]] = [[] for _ in images]
        for i, faces in zip(present, found, strict=True):
            out[i] = faces
        return out

    def tags(self, faces: Sequence[Face]) -> list[Candidate]:
        return people_tags(faces)

    def store(self, index: Index, photo_id: int, faces: Sequence[Face], path: Path) -> None:
        """Inside the caller's transaction: the photo's faces and its people tags, and the
        names other programs gave its faces (MWG regions in the photo or its sidecar)."""
        ids = db.set_faces(
            index,
            photo_id,
            [db.NewFace(f.box, f.score, f.quality, f.landmarks, f.descriptor) for f in faces],
        )
        if faces:
            named = regions_of(path)
            for i, name in match([f.box for f in faces], named).items():
                db.set_region_name(index, ids[i], name)
        index.set_results(photo_id, RECOGNIZER, self.fingerprint, people_tags(faces))
        self.found += len(faces)

    def finish(self, index: Index) -> Grouped:
        """Group the new faces into people (existing people only gain faces)."""
        return group(index)
