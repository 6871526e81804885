"""Recognizers: a tag vocabulary plus a small head that scores those tags from a backbone.

A recognizer is data, a TOML file under ``weights/recognizers/``. The kinds so far:

``labels``
    every class of the backbone is a tag of its own (``imagenet``).
``classes``
    each tag names the backbone classes it stands for (by name, by index, or as inclusive
    index ``ranges``; ``each = true`` makes one leaf per class); its score is the sum of their
    probabilities (``food/drink/espresso`` <- ``espresso``). With ``rollup`` every inner
    level of the hierarchy is a candidate too, scored by the union of the classes below it,
    so a photo that the classifier splits between five dog breeds is still surely a ``dog``.
    With ``[evidence]`` a group must also be backed by the photo's most probable classes
    (:class:`Evidence`), so that hundreds of tiny member probabilities (``animal`` spans 395
    of the 1000 ImageNet classes) cannot add up to a tag on the moon or on a lawn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import ModelError
from ..index.records import Candidate as Candidate  # re-exported: made here, stored there
from ..tagpath import leaf as leaf_of
from ..tagpath import parent_paths, split
from .manifest import field, read_toml, sha256_file

if TYPE_CHECKING:
    from .backbones import BackboneOutput


class RecognizerKind(StrEnum):
    """The ``kind`` of a recognizer file (see the module docstring)."""

    LABELS = "labels"
    CLASSES = "classes"
    LINEAR = "linear"
    DETECTIONS = "detections"
    PEOPLE = "people"


KINDS = tuple(k.value for k in RecognizerKind)


def rank(
    scores: np.ndarray, paths: Sequence[str], *, threshold: float = 0.0, top_k: int | None = None
) -> list[list[Candidate]]:
    """Per row of (N, tags) scores: the candidates at or above ``threshold``, best first."""
    tags = [leaf_of(p) for p in paths]
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        if top_k is not None:
            order = order[:top_k]
        out.append(
            [
                Candidate(tags[i], float(min(1.0, row[i])), paths[i])
                for i in order
                if row[i] >= threshold and row[i] > 0
            ]
        )
    return out


class Recognizer(Protocol):
    """Anything that turns a backbone's output into ranked tag candidates."""

    @property
    def name(self) -> str: ...
    @property
    def backbone(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def paths(self) -> tuple[str, ...]: ...

    def candidates(
        self, output: BackboneOutput, *, threshold: float = 0.0, top_k: int | None = None
    ) -> list[list[Candidate]]: ...


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a group tag needs besides its score: its members must hold at least ``share`` of
    the probability of the photo's ``top`` most probable classes.

    A group of a hierarchy (``animal``, ``animal/dog``, ``scene``) is every proper prefix of a
    tag path, whether or not it is a tag itself; a tag is proposed only when every group
    above it (and itself, if it is a group) is backed. Unbacked tags score 0. ``share = 0``
    turns the rule off (the plain sum). The values are calibrated on hand-labelled real
    photos by ``bench/precision.py --calibrate`` (docs/models.md, "Tags worth keeping").
    It is the "hedging" idea of Deng et al., *Hedging Your Bets* (CVPR 2012): name a group
    only as far as the classifier's confident guesses agree on it.
    """

    top: int = 5
    share: float = 0.0

    @property
    def active(self) -> bool:
        return self.share > 0.0


NO_EVIDENCE = Evidence()


@dataclass(frozen=True)
class MappedRecognizer:
    """A named vocabulary over a classifier's classes; a tag scores the sum of its classes."""

    name: str
    backbone: str
    description: str
    fingerprint: str
    paths: tuple[str, ...]  # one per column of ``matrix``
    matrix: np.ndarray  # (classes, tags) of 0/1: which classes make up each tag
    evidence: Evidence = NO_EVIDENCE

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(leaf_of(p) for p in self.paths)

    def score(self, probs: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities -> (N, tags) scores in [0, 1]: per tag, the sum over its
        classes, or 0 where :attr:`evidence` does not back the tag's groups.

        A gather and a segmented sum over the non-zeros of ``matrix``: the dense product
        cost 6 ms a batch for the 1000-tag imagenet recognizer, this costs well under 1 ms.
        """
        probs = np.asarray(probs, dtype=np.float32)
        order, starts = self._segments
        sums: np.ndarray = np.add.reduceat(probs[:, order], starts, axis=1)
        if not self.evidence.active or len(probs) == 0:
            return sums
        return np.where(self.backed(probs), sums, np.float32(0.0))

    def group_shares(self, probs: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities -> (N, groups): the share of the probability of each
        photo's ``evidence.top`` most probable classes that falls on each group's members
        (groups in the order of :attr:`groups`)."""
        probs = np.asarray(probs, dtype=np.float32)
        members, _ = self._groups
        k = max(1, min(self.evidence.top, probs.shape[1]))
        top = np.argpartition(-probs, k - 1, axis=1)[:, :k]  # (N, k), unordered
        p = np.take_along_axis(probs, top, axis=1)  # (N, k)
        inside = members[top]  # (N, k, groups)
        total = np.maximum(p.sum(axis=1, keepdims=True), np.float32(1e-12))
        shares: np.ndarray = np.einsum("nk,nkg->ng", p, inside) / total
        return shares

    def backed(self, probs: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities -> (N, tags) bool: whether every group at or above each
        tag has at least ``evidence.share`` of the photo's top classes (see :class:`Evidence`)."""
        _, needs = self._groups
        unbacked = (self.group_shares(probs) < self.evidence.share).astype(np.float32)
        backed: np.ndarray = (unbacked @ needs) == 0
        return backed

    @property
    def groups(self) -> tuple[str, ...]:
        """Every group of the hierarchy: the proper prefixes of the tag paths (``animal``,
        ``animal/dog``), whether or not they are tags themselves."""
        return self._group_names

    @cached_property
    def _group_names(self) -> tuple[str, ...]:
        names: dict[str, None] = {}
        for p in self.paths:
            parts = p.split("/")
            for depth in range(1, len(parts)):
                names.setdefault("/".join(parts[:depth]), None)
        return tuple(names)

    @cached_property
    def _groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(classes, groups) 0/1: a group's member classes (the union over the tags at or
        below it); (groups, tags) float 0/1: which groups each tag needs backed."""
        names = self._group_names
        members = np.zeros((self.matrix.shape[0], len(names)), dtype=np.float32)
        needs = np.zeros((len(names), len(self.paths)), dtype=np.float32)
        for g, name in enumerate(names):
            for j, p in enumerate(self.paths):
                if p == name or p.startswith(name + "/"):
                    members[:, g] = np.maximum(members[:, g], self.matrix[:, j])
                    needs[g, j] = 1.0
        return (members > 0).astype(np.float32), needs

    @cached_property
    def _segments(self) -> tuple[np.ndarray, np.ndarray]:
        cols = [np.flatnonzero(self.matrix[:, j]) for j in range(self.matrix.shape[1])]
        starts = np.cumsum([0] + [len(c) for c in cols[:-1]])
        return np.concatenate(cols), starts

    def candidates(
        self, output: BackboneOutput, *, threshold: float = 0.0, top_k: int | None = None
    ) -> list[list[Candidate]]:
        """Per photo, the candidates at or above ``threshold``, best first, at most ``top_k``."""
        if output.probs is None:
            raise ModelError(
                f"recognizer {self.name} needs class probabilities from {self.backbone}"
            )
        return rank(self.score(output.probs), self.paths, threshold=threshold, top_k=top_k)


def head_scores(
    embeddings: np.ndarray, weight: np.ndarray, bias: np.ndarray, *, multi_label: bool
) -> np.ndarray:
    """A trained head on L2-normalised embeddings: a softmax over the tags, or one sigmoid each.

    The one definition used both to measure a head while training and to run it afterwards.
    """
    from .backbones import softmax

    e = np.asarray(embeddings, dtype=np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    z = e @ np.asarray(weight, np.float32).T + np.asarray(bias, np.float32)
    if multi_label:
        out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return out
    return softmax(z)


@dataclass(frozen=True)
class LinearRecognizer:
    """A trained head over the backbone's embedding (``phototag train``): softmax over the
    tags (one tag per photo) or one sigmoid per tag (``multi_label``)."""

    name: str
    backbone: str
    description: str
    fingerprint: str
    paths: tuple[str, ...]
    weight: np.ndarray  # (tags, dim)
    bias: np.ndarray  # (tags,)
    multi_label: bool

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, dim) embeddings -> (N, tags) scores in [0, 1]."""
        return head_scores(embeddings, self.weight, self.bias, multi_label=self.multi_label)

    def candidates(
        self, output: BackboneOutput, *, threshold: float = 0.0, top_k: int | None = None
    ) -> list[list[Candidate]]:
        return rank(self.score(output.embeddings), self.paths, threshold=threshold, top_k=top_k)


@dataclass(frozen=True)
class DetectionRecognizer:
    """Tags from a detector's boxes.

    ``detections``: each tag stands for some detector classes and scores the best detection
    among them (``object/vehicle/car``); inner levels roll up. ``people``: one tag from the
    number and size of the ``person`` boxes -- ``people/portrait`` (one person whose box
    covers at least ``portrait_area`` of the photo), ``people/person`` (one, smaller),
    ``people/couple`` (two), ``people/group`` (three or more), ``people/crowd`` (``crowd`` or
    more) -- scored by the mean of those boxes' scores. Boxes below ``min_score`` count for
    nothing.
    """

    name: str
    backbone: str
    description: str
    fingerprint: str
    paths: tuple[str, ...]
    members: tuple[frozenset[int], ...]  # per path: the detector classes it stands for
    kind: RecognizerKind
    min_score: float = 0.3
    portrait_area: float = 0.2
    crowd: int = 10

    def score(self, detections: np.ndarray) -> np.ndarray:
        """(N, K, 6) detections -> (N, tags) scores."""
        out = np.zeros((len(detections), len(self.paths)), dtype=np.float32)
        for i, det in enumerate(detections):
            det = det[det[:, 4] >= self.min_score]
            if self.kind is RecognizerKind.PEOPLE:
                persons = det[det[:, 5] == 0]
                n = len(persons)
                if n == 0:
                    continue
                area = float(
                    ((persons[:, 2] - persons[:, 0]) * (persons[:, 3] - persons[:, 1])).max()
                )
                leaf = ("portrait" if area >= self.portrait_area else "person") if n == 1 else \
                    "couple" if n == 2 else "crowd" if n >= self.crowd else "group"  # fmt: skip
                path = f"{self.paths[0].split('/')[0]}/{leaf}"
                if path in self.paths:
                    out[i, self.paths.index(path)] = float(persons[:, 4].mean())
                continue
            classes = det[:, 5].astype(np.int64)
            for j, wanted in enumerate(self.members):
                hit = det[np.isin(classes, list(wanted)), 4]
                if len(hit):
                    out[i, j] = float(hit.max())
        return out

    def candidates(
        self, output: BackboneOutput, *, threshold: float = 0.0, top_k: int | None = None
    ) -> list[list[Candidate]]:
        if output.detections is None:
            raise ModelError(f"recognizer {self.name} needs detections from {self.backbone}")
        return rank(self.score(output.detections), self.paths, threshold=threshold, top_k=top_k)


PEOPLE_TAGS = ("portrait", "person", "couple", "group", "crowd")


def check_path(path: str, where: Path) -> str:
    parts = split(path)  # a level may hold an escaped '/' (a keyword kept verbatim)
    if len(parts) < 2 or any(not p.strip() or p != p.strip() or "|" in p for p in parts):
        raise ModelError(
            f"{where}: tag path {path!r} must be 'root/.../tag' with non-empty parts and no '|'"
        )
    return path


def _classes(
    entry: dict[str, object], index: dict[str, int], n: int, path: Path, tag_path: str
) -> set[int]:
    """The class indices of a [[tags]] entry: ``classes`` (names or indices) and ``ranges``."""
    classes: set[int] = set()
    for c in field(entry, "classes", list, path, []):
        if isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n:
            classes.add(c)
        elif isinstance(c, str) and c in index:
            classes.add(index[c])
        else:
            raise ModelError(f"{path}: {tag_path}: unknown class {c!r}")
    for r in field(entry, "ranges", list, path, []):
        ok = isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) for v in r)
        if not ok or not 0 <= r[0] <= r[1] < n:
            raise ModelError(f"{path}: {tag_path}: a range is [first, last] within 0..{n - 1}")
        classes.update(range(r[0], r[1] + 1))
    if not classes:
        raise ModelError(f"{path}: {tag_path}: no classes")
    return classes


def load_evidence(data: dict[str, object], path: Path) -> Evidence:
    """The optional ``[evidence]`` table of a ``classes`` recognizer (see :class:`Evidence`)."""
    table = field(data, "evidence", dict, path, {})
    unknown = set(table) - {"top", "share"}
    if unknown:
        raise ModelError(f"{path}: [evidence] has unknown keys: {', '.join(sorted(unknown))}")
    top = field(table, "top", int, path, NO_EVIDENCE.top)
    share = field(table, "share", float, path, NO_EVIDENCE.share)
    if top < 1:
        raise ModelError(f"{path}: [evidence] top must be a whole number of classes, at least 1")
    if not 0.0 <= share <= 1.0:
        raise ModelError(f"{path}: [evidence] share must be between 0 and 1, not {share}")
    return Evidence(top=top, share=float(share))


def load_linear(path: Path, data: dict[str, object]) -> LinearRecognizer:
    """A trained head: the manifest names an .npz beside it (weight, bias) and its sha256."""
    name = field(data, "name", str, path)
    head_name = field(data, "head", str, path)
    if "/" in head_name or "\\" in head_name or head_name.startswith("."):
        raise ModelError(f"{path}: head must be a file name beside the manifest")
    head = path.with_name(head_name)
    want = field(data, "sha256", str, path)
    try:
        got = sha256_file(head)
    except OSError:
        raise ModelError(f"{path}: head file {head} is missing") from None
    if got != want:
        raise ModelError(
            f"{head} does not match the sha256 in {path}: damaged or replaced; train again"
        )
    paths = [check_path(p, path) for p in field(data, "paths", list, path)]
    try:
        with np.load(head, allow_pickle=False) as npz:
            weight = np.asarray(npz["weight"], dtype=np.float32)
            bias = np.asarray(npz["bias"], dtype=np.float32)
    except (OSError, KeyError, ValueError) as e:
        raise ModelError(f"{head}: not a phototag head ({e})") from None
    if weight.ndim != 2 or weight.shape[0] != len(paths) or bias.shape != (len(paths),):
        raise ModelError(
            f"{head}: shapes {weight.shape}, {bias.shape} do not fit {len(paths)} tags"
        )
    return LinearRecognizer(
        name=name,
        backbone=field(data, "backbone", str, path),
        description=field(data, "description", str, path, ""),
        fingerprint=want[:16],
        paths=tuple(paths),
        weight=weight,
        bias=bias,
        multi_label=field(data, "multi_label", bool, path, False),
    )


def load_recognizer(path: Path, labels: Sequence[str] | None) -> Recognizer:
    """Read a recognizer manifest and build its head (against the backbone's ``labels``)."""
    data = read_toml(path)
    name = field(data, "name", str, path)
    kind = field(data, "kind", str, path)
    if kind not in KINDS:
        raise ModelError(f"{path}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "linear":
        return load_linear(path, data)
    if labels is None:
        raise ModelError(f"{path}: its backbone has no class labels")
    if kind == "people":
        root = field(data, "root", str, path, name)
        return DetectionRecognizer(
            name=name, backbone=field(data, "backbone", str, path),
            description=field(data, "description", str, path, ""),
            fingerprint=hashlib.sha256(path.read_bytes()).hexdigest()[:16],
            paths=tuple(f"{root}/{t}" for t in PEOPLE_TAGS), members=(), kind=RecognizerKind.PEOPLE,
            min_score=field(data, "min_score", float, path, 0.3),
            portrait_area=field(data, "portrait_area", float, path, 0.2),
            crowd=field(data, "crowd", int, path, 10),
        )  # fmt: skip
    root = field(data, "root", str, path, name)
    members: dict[str, set[int]] = {}
    if kind == "labels":
        for i, label in enumerate(labels):
            members[check_path(f"{root}/{label}", path)] = {i}
    else:
        index = {label: i for i, label in enumerate(labels)}
        entries = field(data, "tags", list, path)
        for entry in entries:
            if not isinstance(entry, dict):
                raise ModelError(f"{path}: every [[tags]] entry must be a table")
            tag_path = check_path(field(entry, "path", str, path), path)
            if not tag_path.startswith(root + "/"):
                raise ModelError(f"{path}: tag path {tag_path!r} is not under {root!r}")
            classes = _classes(entry, index, len(labels), path, tag_path)
            if field(entry, "each", bool, path, False):
                # One leaf per class under this path: animal/dog/<breed> for every breed.
                for c in sorted(classes):
                    members.setdefault(check_path(f"{tag_path}/{labels[c]}", path), set()).add(c)
            else:
                members.setdefault(tag_path, set()).update(classes)
        if field(data, "rollup", bool, path, False):
            for leaf, classes in list(members.items()):
                for parent in parent_paths(leaf):
                    members.setdefault(parent, set()).update(classes)
        if field(data, "root_tag", bool, path, False):
            members[root] = set().union(*members.values())
    if not members:
        raise ModelError(f"{path}: the recognizer has no tags")
    paths = tuple(sorted(members))
    matrix = np.zeros((len(labels), len(paths)), dtype=np.float32)
    for j, p in enumerate(paths):
        matrix[sorted(members[p]), j] = 1.0
    raw = path.read_bytes()
    if kind == "detections":
        ordered = tuple(sorted(members))
        return DetectionRecognizer(
            name=name, backbone=field(data, "backbone", str, path),
            description=field(data, "description", str, path, ""),
            fingerprint=hashlib.sha256(raw).hexdigest()[:16], paths=ordered,
            members=tuple(frozenset(members[p]) for p in ordered), kind=RecognizerKind.DETECTIONS,
            min_score=field(data, "min_score", float, path, 0.3),
        )  # fmt: skip
    return MappedRecognizer(
        name=name,
        backbone=field(data, "backbone", str, path),
        description=field(data, "description", str, path, ""),
        fingerprint=hashlib.sha256(raw).hexdigest()[:16],
        paths=paths,
        matrix=matrix,
        evidence=load_evidence(data, path),
    )
