"""Applying recognizers to the embeddings stored in the index: no image is decoded.

After training a recognizer (or changing a threshold), ``retag`` brings every photo's tags
up to date in seconds: the stored float16 embeddings are read in chunks, each backbone's
classifier head (shipped as data) or the trained head scores them in numpy, and the tags
are rewritten one transaction per chunk.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import config
from ..index.store import Index
from ..models.catalog import Catalog
from .tagger import Tagger


@dataclass
class RetagReport:
    photos: int = 0
    changed: int = 0  # photos whose tags changed
    changed_ids: list[int] = field(default_factory=list)
    recognizers: list[str] = field(default_factory=list)
    seconds: float = 0.0


def retag(
    index: Index,
    recognizers: Sequence[str] | None = None,
    *,
    threshold: float = config.DEFAULT_THRESHOLD,
    top_k: int = config.DEFAULT_TOP_K,
    catalog: Catalog | None = None,
    chunk: int = 8192,
    backbone: str | None = None,
) -> RetagReport:
    """Score every stored embedding with ``recognizers`` (default: a plain scan's)."""
    started = time.perf_counter()
    # What a plain scan runs (catalog.resolve): a retag must not add tags no scan would give.
    # verify=False: no session is opened, so the model files need not be hashed.
    tagger = Tagger.resolve(recognizers, catalog=catalog, zero_shot=backbone,
                            threshold=threshold, top_k=top_k, verify=False,
                            every_installed=False)  # fmt: skip
    report = RetagReport(recognizers=[r.name for r in tagger.recognizers])
    fps = tagger.fingerprints
    changed: set[int] = set()
    for name, model in tagger.backbones.items():
        group = [r for r in tagger.recognizers if r.backbone == name]
        detector = bool(model.manifest.detections_output)
        for ids, vecs in index.embedding_chunks(name, chunk):
            # A detector's recognizers work from the boxes stored in the index; the
            # (empty) embedding rows say which photos the detector has seen.
            boxes = index.stored_detections(ids.tolist(), name, model.labels) if detector else None
            results = tagger.rescore(name, vecs.astype(np.float32), boxes)
            with index.transaction():
                for row, pid in enumerate(ids.tolist()):
                    for r in group:
                        if index.set_results_if_changed(
                            pid, r.name, fps[r.name], results[r.name][row]
                        ):
                            changed.add(pid)
        report.photos = max(report.photos, index.count_embeddings(name))
    report.changed = len(changed)
    report.changed_ids = sorted(changed)
    report.seconds = time.perf_counter() - started
    return report
