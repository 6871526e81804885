"""Calibrating a zero-shot vocabulary on labelled photos (temperature scaling).

A vocabulary's scores are a softmax of ``temperature * cosine`` over its tags and background
prompts (:mod:`phototag.models.zeroshot`). The backbone's own temperature (CLIP's logit
scale) was learned for its training task, not for this list of tags: the scores can be over-
or under-confident, so a ``--threshold`` would mean different things for different
vocabularies. Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural
Networks") fits the one number that makes the scores honest probabilities on photos whose
answer is known -- minimising their negative log-likelihood -- without changing which tag
ranks first. The result is saved as ``temperature`` in the user's copy of the vocabulary.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import user_weights_dir
from ..errors import ConfigError
from ..fsutil import atomic_writer
from ..models.backbones import Backbone, softmax
from ..models.catalog import Catalog
from ..models.zeroshot import ZeroShotRecognizer, load_vocabulary, normalize
from ..tagpath import leaf as leaf_of
from .train import collect_folder, embed_photos

#: Fewer labelled photos than this and the fitted temperature means little; we refuse.
MIN_PHOTOS = 5
#: The search range of the temperature (CLIP's own is 100).
T_RANGE = (1.0, 500.0)


@dataclass
class CalibrationReport:
    name: str
    backbone: str
    photos: int
    temperature_before: float
    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    accuracy: float  # top-1 among the tags and background prompts; unchanged by calibration
    saved: Path | None = None
    skipped: list[str] = field(default_factory=list)  # photos and folders not used, and why

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name, "backbone": self.backbone, "photos": self.photos,
            "temperature_before": round(self.temperature_before, 4),
            "temperature": round(self.temperature, 4),
            "nll_before": round(self.nll_before, 4), "nll_after": round(self.nll_after, 4),
            "ece_before": round(self.ece_before, 4), "ece_after": round(self.ece_after, 4),
            "accuracy": round(self.accuracy, 4),
            "saved": str(self.saved) if self.saved else None, "skipped": self.skipped,
        }  # fmt: skip


def nll(cosines: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(temperature * cosines)."""
    z = temperature * cosines
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: how far the top score is from the accuracy, binned."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(float(conf[inside].mean()) - float(right[inside].mean()))
    return total


def fit_temperature(cosines: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in :data:`T_RANGE` minimising :func:`nll` (golden-section search on
    log T; the NLL is convex in T for fixed logits, so this finds the minimum)."""
    a, b = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    g = (math.sqrt(5) - 1) / 2

    def f(log_t: float) -> float:
        return nll(cosines, labels, math.exp(log_t))

    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return math.exp((a + b) / 2)


def _leaf_index(leaves: tuple[str, ...], label: str) -> int | None:
    """The vocabulary leaf a folder names: by full path, or by the tag alone (any case)."""
    if label in leaves:
        return leaves.index(label)
    tag = leaf_of(label).casefold()
    hits = [i for i, leaf in enumerate(leaves) if leaf_of(leaf).casefold() == tag]
    return hits[0] if len(hits) == 1 else None


def calibrate(
    name: str,
    folder: Path,
    *,
    catalog: Catalog | None = None,
    out_dir: Path | None = None,
    save: bool = True,
) -> CalibrationReport:
    """Fit vocabulary ``name``'s temperature on ``folder/<tag>/*.jpg`` and save it in the
    user's copy of the vocabulary (``out_dir``/vocabularies/NAME.toml)."""
    catalog = catalog or Catalog.discover()
    backbone = catalog.zero_shot_backbone()
    if name not in catalog.vocabularies:
        raise ConfigError(f"{name!r} is not a zero-shot vocabulary; see 'phototag models list'")
    if backbone is None:
        raise ConfigError("calibrating needs a zero-shot backbone, and none is installed")
    recognizer = catalog.recognizer(name)
    assert isinstance(recognizer, ZeroShotRecognizer)
    source = catalog.vocabularies[name]
    vocab = load_vocabulary(source)
    paths, tag_sets, skipped = collect_folder(folder, name)
    chosen: list[Path] = []
    labels: list[int] = []
    for p, tags in zip(paths, tag_sets, strict=True):
        index = _leaf_index(vocab.leaves, next(iter(tags))) if len(tags) == 1 else None
        if index is None:
            skipped.append(f"{p}: its folder names no single tag of {name}")
            continue
        chosen.append(p)
        labels.append(index)
    if len(chosen) < MIN_PHOTOS:
        raise ConfigError(
            f"only {len(chosen)} photos under {folder} are in folders named after {name}'s "
            f"tags (like {folder}/{leaf_of(vocab.leaves[0])}/); at least "
            f"{MIN_PHOTOS} are needed, a few hundred for a trustworthy temperature"
        )
    model = Backbone(catalog.backbone(backbone))
    embeddings, _, problems = embed_photos(chosen, model, copies=0, seed=0)
    skipped += problems
    keep = [i for i, e in enumerate(embeddings) if e is not None]
    e = normalize(np.stack([embeddings[i] for i in keep]))  # type: ignore[misc]
    y = np.asarray([labels[i] for i in keep])
    cosines = e @ recognizer.classes.T
    t0, t = recognizer.scale, fit_temperature(cosines, y)
    if nll(cosines, y, t0) <= nll(cosines, y, t):
        t = t0  # never worse than where it started
    report = CalibrationReport(
        name=name, backbone=backbone, photos=len(y), temperature_before=t0, temperature=t,
        nll_before=nll(cosines, y, t0), nll_after=nll(cosines, y, t),
        ece_before=ece(softmax(t0 * cosines), y), ece_after=ece(softmax(t * cosines), y),
        accuracy=float((cosines.argmax(axis=1) == y).mean()), skipped=skipped,
    )  # fmt: skip
    if save:
        report.saved = save_temperature(source, name, t, out_dir)
    return report


def save_temperature(source: Path, name: str, temperature: float, out_dir: Path | None) -> Path:
    """Write the vocabulary with ``temperature`` set, as the user's copy (checked, atomic)."""
    text = source.read_text(encoding="utf-8")
    head, sep, tables = text.partition("\n[")
    line = f"temperature = {temperature:.4f}  # fitted by 'phototag models calibrate'"
    if re.search(r"(?m)^temperature\s*=.*$", head):
        head = re.sub(r"(?m)^temperature\s*=.*$", line, head)
    else:
        head = head.rstrip("\n") + "\n" + line + "\n"
    target = (out_dir or user_weights_dir()) / "vocabularies" / f"{name}.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(target) as f:
        f.write((head + sep + tables).encode("utf-8"))
        f.flush()
        if load_vocabulary(Path(f.name)).temperature is None:  # the copy must load as meant
            raise ConfigError(f"could not set the temperature in a copy of {source}")
    return target
