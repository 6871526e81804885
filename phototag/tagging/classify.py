"""Recognize a few images without touching the index (``phototag classify``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import config
from ..media import kinds
from ..models.backbones import Backbone
from ..models.catalog import Catalog
from ..models.recognizers import Candidate, Recognizer
from .loader import Loaded, LoadFailed, batched, default_workers, make_loader, ordered_map
from .scan import Failed
from .tagger import Tagger
from .walk import FileEntry


@dataclass(frozen=True, slots=True)
class Classification:
    """One image's candidates per recognizer, best first."""

    path: Path
    candidates: dict[str, list[Candidate]]
    width: int | None
    height: int | None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # backbone -> vector
    # For recognizers on a detector: its boxes (label, score, box as fractions), score >= 0.1.
    detections: dict[str, list[dict[str, object]]] = field(default_factory=dict)  # model -> boxes

    def documents(self) -> list[dict[str, object]]:
        """One document per recognizer, in the shape of the classic recognition web APIs
        (with the boxes next to the candidates when the recognizer stands on a detector)."""
        return [
            {"path": str(self.path), "model": model, "candidates": [c.as_json() for c in cands],
             **({"detections": self.detections[model]} if model in self.detections else {})}
            for model, cands in self.candidates.items()
        ]  # fmt: skip


def boxes(
    detections: np.ndarray, labels: Sequence[str], min_score: float = 0.1
) -> list[dict[str, object]]:
    """A detector's rows as JSON: label, score, box [x1, y1, x2, y2] as fractions of the photo."""
    return [
        {"label": labels[int(c)] if 0 <= int(c) < len(labels) else str(int(c)), "score": round(float(s), 4),
         "box": [round(float(v), 4) for v in (x1, y1, x2, y2)]}
        for x1, y1, x2, y2, s, c in np.asarray(detections).tolist() if s >= min_score
    ]  # fmt: skip


def detected(
    recs: Sequence[Recognizer],
    detections: Mapping[str, np.ndarray],
    backbones: Mapping[str, Backbone],
) -> dict[str, list[dict[str, object]]]:
    """One photo's boxes (backbone -> (K, 6)) as JSON, for each recognizer on a detector."""
    return {
        r.name: boxes(detections[r.backbone], backbones[r.backbone].labels)
        for r in recs
        if r.backbone in detections
    }


def classify(
    paths: Sequence[Path],
    *,
    recognizers: Sequence[str] | None = None,
    threshold: float = config.DEFAULT_THRESHOLD,
    top_k: int = config.DEFAULT_TOP_K,
    device: config.Device = config.Device.AUTO,
    batch_size: int = config.DEFAULT_BATCH_SIZE,
    catalog: Catalog | None = None,
    backbone: str | None = None,
) -> Iterator[Classification | Failed]:
    """Yield a :class:`Classification` (or :class:`Failed`) per path, in order.

    ``backbone`` picks the zero-shot backbone for vocabularies (or, naming a classifier,
    turns them off); by default the first installed zero-shot backbone is used.
    """
    tagger = Tagger.resolve(
        recognizers,
        catalog=catalog,
        zero_shot=backbone,
        threshold=threshold,
        top_k=top_k,
        device=device,
    )
    tagger.load()  # a model problem is reported before any image is read
    backbones = tagger.backbones
    load = make_loader(
        {n: b.manifest.preprocess for n, b in backbones.items()}, (), config.DEFAULT_MAX_PIXELS
    )
    entries = [FileEntry(Path(p), 0, 0, kind=_kind(Path(p))) for p in paths]
    workers = min(default_workers(), max(1, len(entries)))
    stream = ordered_map(load, entries, workers=workers, window=2 * batch_size + workers)
    for batch in batched(stream, batch_size):
        ok = [x for x in batch if isinstance(x, Loaded) and x.inputs is not None]
        results = tagger.run([x.inputs for x in ok if x.inputs is not None])
        i = 0
        for x in batch:
            if isinstance(x, LoadFailed):
                yield Failed(x.entry.path, x.reason)
                continue
            assert isinstance(x, Loaded)
            result = results[i]
            yield Classification(
                x.entry.path,
                result.tags,
                x.width,
                x.height,
                result.embeddings,
                detected(tagger.recognizers, result.detections, backbones),
            )
            i += 1


def _kind(path: Path) -> kinds.FileKind:
    """A file named on the command line: a RAW or a video by its name, else a photo."""
    kind = kinds.classify(path.name)
    return kind if kind in kinds.MEDIA_KINDS else kinds.FileKind.PHOTO
