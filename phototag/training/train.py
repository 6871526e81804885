"""Recognizers that users train on their own photos: a small head over the backbone's embedding.

Training needs no GPU and takes seconds: the backbone is frozen, each photo (and each
augmented copy: flips, crops, small colour changes) is run through it once, and a
logistic regression (scikit-learn) is fitted on the embeddings --
softmax over the tags by default, one-vs-rest with ``multi_label``. The result is data: a
TOML manifest and an ``.npz`` head next to the shipped recognizers, run in numpy at scan
time like any other recognizer.

Sources of examples: a folder with one sub-folder per tag (:func:`train_from_folder`), the
keywords already in the user's files (:func:`train_from_keywords`), and the user's own
corrections (:func:`train_from_corrections`); the last two read embeddings from the index
and decode nothing.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import config
from ..errors import ConfigError, ImageError, PhototagError
from ..index.store import Index
from ..media.imaging import decode, preprocess
from ..media.kinds import FileKind, classify
from ..media.raw import decode_raw
from ..models.backbones import Backbone
from ..models.catalog import Catalog
from ..models.recognizers import head_scores
from ..tagging.walk import FileEntry, OtherFile, walk
from ..tagpath import join as join_path

#: Below this many photos a tag is refused (nothing to hold out); below RECOMMENDED, warned.
MIN_EXAMPLES = 2
RECOMMENDED_EXAMPLES = 10
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TrainingError(ConfigError):
    """The examples cannot make a recognizer (empty, one tag, no images): nothing was written."""


class RecognizerExistsError(TrainingError):
    """The name is taken: by a recognizer the user trained before (``existing``, its file),
    or, when ``existing`` is None, by one shipped with phototag. Replacing it must be asked
    for (``TrainOptions.force``)."""

    def __init__(self, name: str, existing: Path | None) -> None:
        self.name, self.existing = name, existing
        super().__init__(
            f"you already have a recognizer named {name!r} ({existing})" if existing is not None
            else f"{name!r} is a recognizer shipped with phototag: a trained one would replace it"
            " on every scan"
        )  # fmt: skip


@dataclass(frozen=True)
class TrainOptions:
    name: str
    backbone: str = "efficientnet-lite0"
    augment: bool = True
    copies: int = 4  # augmented copies per training photo
    holdout: float = 0.2  # share of photos held out for the report (ignored with folds)
    folds: int | None = None  # k-fold cross-validation instead of a held-out share
    multi_label: bool = False
    seed: int = 0
    regularization: float = 1.0  # scikit-learn's C
    device: config.Device = config.Device.AUTO
    out_dir: Path | None = None  # default: the user's weights folder
    force: bool = False  # replace (shadow) a shipped or existing recognizer of the same name


#: Told (photos done, photos in all) as photos are read and embedded; the slow part of training.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class TagMetrics:
    path: str
    examples: int
    precision: float
    recall: float
    support: int  # held-out (or cross-validated) photos of this tag


@dataclass
class TrainReport:
    name: str
    manifest: Path
    tags: list[TagMetrics]
    accuracy: float
    evaluated_on: str
    confusions: list[tuple[str, str, int]] = field(default_factory=list)  # (true, predicted, count)
    warnings: list[str] = field(default_factory=list)
    examples: int = 0
    decoded: int = 0
    suggestions: list[tuple[Path, str, float]] = field(default_factory=list)  # from keywords


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or name in ("imagenet",):
        raise TrainingError(
            f"recognizer name {name!r}: use letters, digits, '-', '_' or '.' (up to 64), not a shipped name"
        )
    return name


def check_free(options: TrainOptions, catalog: Catalog) -> str:
    """``options.name``, checked as a name and as one that replaces nothing unless ``force``.

    A trained recognizer is found before a shipped one of the same name, so training
    ``animal`` would silently replace the shipped ``animal`` on the next scan and rewrite
    every sidecar (issue 14). Raises :class:`TrainingError` (nothing is read or written).
    """
    name = check_name(options.name)
    if options.force:
        return name
    own = (options.out_dir or config.user_weights_dir()) / "recognizers" / f"{name}.toml"
    entry = catalog.recognizers.get(name)
    existing = (
        own if os.path.lexists(own) else entry.path if entry and _is_trained(entry.path) else None
    )
    if existing is not None:
        raise RecognizerExistsError(name, existing)
    if name in catalog.names():
        raise RecognizerExistsError(name, None)
    return name


def _is_trained(manifest: Path) -> bool:
    """Whether a recognizer manifest was written by ``phototag train`` (not shipped)."""
    try:
        user = config.user_weights_dir().resolve()
        return manifest.resolve().parent.parent == user
    except OSError:
        return False


# -- examples from a folder ---------------------------------------------------------------


def collect_folder(folder: Path, root: str) -> tuple[list[Path], list[set[str]], list[str]]:
    """Images under ``folder/<tag>/...``: their paths, their tag paths, and problems.

    A sub-folder is a tag; nested sub-folders are hierarchical tags (``pets/dog/terrier``).
    The same content in two tag folders makes one photo with both tags (for multi-label).
    """
    # The walk yields absolute paths; a relative folder ('train', '.') must be one too.
    folder = Path(os.path.abspath(folder))
    if not folder.is_dir():
        raise TrainingError(f"{folder} is not a folder")
    by_hash: dict[str, tuple[Path, set[str]]] = {}
    problems = []
    for item in walk([folder]):
        if isinstance(item, OtherFile):
            continue
        if not isinstance(item, FileEntry):
            problems.append(f"{item.path}: {item.reason}")
            continue
        rel = item.path.parent.relative_to(folder)
        if rel == Path("."):
            problems.append(
                f"{item.path}: photos directly in {folder} belong to no tag (put them in a sub-folder)"
            )
            continue
        parts = [p for p in rel.parts]
        tag = join_path([root, *parts])
        try:
            h = hashlib.sha256(item.path.read_bytes()).hexdigest()
        except OSError as e:
            problems.append(f"{item.path}: {e.strerror}")
            continue
        by_hash.setdefault(h, (item.path, set()))[1].add(tag)
    paths = [p for p, _ in by_hash.values()]
    labels = [t for _, t in by_hash.values()]
    return paths, labels, problems


def augmented(image: object, rng: np.random.Generator, copies: int) -> list[object]:
    """``copies`` variants of a PIL image: flip, random crop (60-100 % of the area), and
    brightness/contrast/saturation within +-20 %."""
    from PIL import Image, ImageEnhance

    assert isinstance(image, Image.Image)
    out: list[object] = []
    w, h = image.size
    for _ in range(copies):
        im = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image
        scale = float(np.sqrt(rng.uniform(0.6, 1.0)))
        cw, ch = max(1, int(w * scale)), max(1, int(h * scale))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = im.crop((x, y, x + cw, y + ch))
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            im = enhance(im).enhance(float(rng.uniform(0.8, 1.2)))
        out.append(im)
    return out


def embed_photos(
    paths: Sequence[Path],
    backbone: Backbone,
    *,
    copies: int,
    seed: int,
    batch: int = 16,
    progress: Progress | None = None,
) -> tuple[list[np.ndarray | None], list[list[np.ndarray]], list[str]]:
    """Per photo: its embedding (None if unreadable), its augmented copies' embeddings, and
    problems. ``progress(done, total)`` is called after each photo."""
    rng = np.random.default_rng(seed)
    pre = backbone.manifest.preprocess
    originals: list[np.ndarray | None] = []
    extras: list[list[np.ndarray]] = []
    problems: list[str] = []
    for done, p in enumerate(paths, 1):
        if progress is not None and done > 1:
            progress(done - 1, len(paths))
        try:
            kind = classify(p.name)
            if kind is FileKind.VIDEO:
                raise ImageError("videos are not used as training examples (a photo of it is)")
            data = p.read_bytes()
            if kind is FileKind.RAW:  # its preview or LibRaw, as a scan reads it
                photo = decode_raw(data, min_side=pre.resize, max_pixels=config.DEFAULT_MAX_PIXELS)
            else:
                photo = decode(data, min_side=pre.resize, max_pixels=config.DEFAULT_MAX_PIXELS)
        except (OSError, ImageError) as e:
            problems.append(f"{p}: {e}")
            originals.append(None)
            extras.append([])
            continue
        images = [photo.image, *augmented(photo.image, rng, copies)]
        inputs = np.stack([preprocess(im, pre) for im in images])  # type: ignore[arg-type]
        embeddings = np.concatenate(
            [
                backbone.predict(inputs[i : i + batch]).embeddings
                for i in range(0, len(inputs), batch)
            ]
        )
        originals.append(embeddings[0])
        extras.append(list(embeddings[1:]))
    if progress is not None:
        progress(len(paths), len(paths))
    return originals, extras, problems


# -- fitting and evaluating ----------------------------------------------------------------


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def fit_head(
    x: np.ndarray, y: np.ndarray, *, multi_label: bool, c: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on L2-normalised embeddings. ``y``: (N,) class indices, or (N, T)
    0/1 with ``multi_label``. Returns (weight (T, D), bias (T,)) as float32."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ConfigError(
            "training needs scikit-learn, a default dependency: reinstall phototag (pip install --force-reinstall phototag)"
        ) from None
    xn = _normalize(x)
    if not multi_label:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(xn, y)
        weight, bias = model.coef_, model.intercept_
        if weight.shape[0] == 1:  # scikit-learn keeps one row for two classes
            weight = np.vstack([-weight[0] / 2, weight[0] / 2])
            bias = np.array([-bias[0] / 2, bias[0] / 2])
        return weight.astype(np.float32), bias.astype(np.float32)
    rows, biases = [], []
    for t in range(y.shape[1]):
        col = y[:, t]
        if col.min() == col.max():  # a tag on every photo (or none): constant
            rows.append(np.zeros(xn.shape[1]))
            biases.append(8.0 if col[0] else -8.0)
            continue
        m = LogisticRegression(C=c, max_iter=2000, random_state=seed, class_weight="balanced")
        m.fit(xn, col)
        rows.append(m.coef_[0])
        biases.append(m.intercept_[0])
    return np.array(rows, np.float32), np.array(biases, np.float32)


def _splits(
    n: int, y_single: np.ndarray, options: TrainOptions
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    from sklearn.model_selection import StratifiedKFold, train_test_split

    idx = np.arange(n)
    counts = np.bincount(y_single)
    stratify = y_single if counts[counts > 0].min() >= 2 else None
    folds = options.folds
    n_test = math.ceil(options.holdout * n)  # as train_test_split counts it
    tags_n = int((counts > 0).sum())
    if not folds and stratify is not None and min(n_test, n - n_test) < tags_n:
        # Too few photos to hold one of every tag out and still learn each (2 photos a tag):
        # cross-validate instead, so precision and recall are still measured.
        folds = 5
    if folds:
        k = min(folds, int(counts[counts > 0].min())) if stratify is not None else folds
        if k < 2:
            raise TrainingError("cross-validation needs at least two photos of every tag")
        skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=options.seed)
        return [(tr, te) for tr, te in skf.split(idx, y_single)], f"{k}-fold cross-validation"
    tr, te = train_test_split(
        idx, test_size=options.holdout, random_state=options.seed, stratify=stratify
    )
    return [(np.sort(tr), np.sort(te))], f"{len(te)} held-out photos ({options.holdout:.0%})"


def _train_and_report(
    name: str,
    tags: list[str],
    originals: np.ndarray,  # (N, D)
    extras: list[list[np.ndarray]],
    labels: list[set[str]],
    options: TrainOptions,
    backbone: str,
) -> TrainReport:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    n, t = len(originals), len(tags)
    pos = {tag: i for i, tag in enumerate(tags)}
    y_multi = np.zeros((n, t), dtype=np.int64)
    for i, ls in enumerate(labels):
        for tag in ls:
            y_multi[i, pos[tag]] = 1
    y_single = np.argmax(y_multi, axis=1)  # first tag, for stratification and single-label

    def expand(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i in rows:
            for e in [originals[i], *extras[i]]:
                xs.append(e)
                ys.append(y_multi[i] if options.multi_label else y_single[i])
        return np.array(xs), np.array(ys)

    splits, evaluated_on = _splits(n, y_single, options)
    pred_all = np.zeros((n, t), dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    for tr, te in splits:
        x_tr, y_tr = expand(tr)
        if not options.multi_label and len(set(y_tr.tolist())) < 2:
            raise TrainingError(
                "after holding photos out, fewer than two tags are left to learn: add photos"
            )
        w, b = fit_head(
            x_tr, y_tr, multi_label=options.multi_label, c=options.regularization, seed=options.seed
        )
        s = head_scores(originals[te], w, b, multi_label=options.multi_label)
        if options.multi_label:
            pred_all[te] = (s >= 0.5).astype(np.int64)
        else:
            full = np.zeros((len(te), t), dtype=np.int64)
            classes = sorted(set(y_tr.tolist()))
            full[np.arange(len(te)), np.array(classes)[np.argmax(s, axis=1)]] = 1
            pred_all[te] = full
        seen[te] = True
    metrics = []
    if options.multi_label:
        p, r, _, sup = precision_recall_fscore_support(
            y_multi[seen], pred_all[seen], average=None, zero_division=0
        )
        accuracy = float((y_multi[seen] == pred_all[seen]).all(axis=1).mean())
        confusions: list[tuple[str, str, int]] = []
    else:
        truth, guess = y_single[seen], np.argmax(pred_all[seen], axis=1)
        p, r, _, sup = precision_recall_fscore_support(
            truth, guess, labels=list(range(t)), average=None, zero_division=0
        )
        accuracy = float((truth == guess).mean())
        cm = confusion_matrix(truth, guess, labels=list(range(t)))
        confusions = sorted(
            (
                (tags[i], tags[j], int(cm[i, j]))
                for i in range(t)
                for j in range(t)
                if i != j and cm[i, j]
            ),
            key=lambda c: -c[2],
        )
    counts = y_multi.sum(axis=0)
    for i, tag in enumerate(tags):
        metrics.append(TagMetrics(tag, int(counts[i]), float(p[i]), float(r[i]), int(sup[i])))
    # The recognizer itself is fitted on every photo and every augmented copy.
    x_all, y_all = expand(np.arange(n))
    weight, bias = fit_head(
        x_all, y_all, multi_label=options.multi_label, c=options.regularization, seed=options.seed
    )
    warnings = [
        f"{m.path}: only {m.examples} photos; {RECOMMENDED_EXAMPLES} or more per tag make a reliable recognizer"
        for m in metrics
        if m.examples < RECOMMENDED_EXAMPLES
    ]
    manifest = save_recognizer(
        name, backbone, tags, weight, bias, options, metrics, accuracy, evaluated_on
    )
    return TrainReport(
        name, manifest, metrics, accuracy, evaluated_on, confusions, warnings, examples=n
    )


def save_recognizer(
    name: str, backbone: str, tags: Sequence[str], weight: np.ndarray, bias: np.ndarray, options: TrainOptions,
    metrics: Sequence[TagMetrics], accuracy: float, evaluated_on: str,
) -> Path:  # fmt: skip
    """Write the head ``<name>.head-<sha256[:16]>.npz`` and its manifest ``<name>.toml``.

    The head is written under a name of its own content, so it never replaces the head a
    manifest in use points at; the manifest's atomic rename is then the one moment the
    recognizer changes, and a kill anywhere leaves the old recognizer or the new one whole
    (a head and manifest renamed one after the other could pair a new head with an old
    manifest). Older heads of the name are removed after. Deterministic: the same examples
    and seed give byte-identical files. Raises :class:`PhototagError` if a file cannot be
    written.
    """
    folder = (options.out_dir or config.user_weights_dir()) / "recognizers"
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for key, a in (("weight", weight), ("bias", bias)):
            arr = io.BytesIO()
            np.save(arr, np.ascontiguousarray(a, dtype=np.float32), allow_pickle=False)
            z.writestr(
                zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), arr.getvalue()
            )
    head = buf.getvalue()
    sha = hashlib.sha256(head).hexdigest()
    head_name = f"{name}.head-{sha[:16]}.npz"

    def q(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string

    lines = [
        f"# Trained by `phototag train` on {sum(m.examples for m in metrics)} photos; do not edit the head.",
        f"name = {q(name)}",
        f"backbone = {q(backbone)}",
        'kind = "linear"',
        f"description = {q(f'trained on your photos: {len(tags)} tags, accuracy {accuracy:.0%} ({evaluated_on})')}",
        f"head = {q(head_name)}",
        f'sha256 = "{sha}"',
        f"multi_label = {'true' if options.multi_label else 'false'}",
        f"augment = {'true' if options.augment else 'false'}",
        f"seed = {options.seed}",
        "paths = [" + ", ".join(q(t) for t in tags) + "]",
        "",
        "[metrics]",
        f"accuracy = {accuracy:.4f}",
        f"evaluated_on = {q(evaluated_on)}",
    ]
    for m in metrics:
        lines.append(
            f"{q(m.path)} = {{ examples = {m.examples}, precision = {m.precision:.4f}, recall = {m.recall:.4f} }}"
        )
    from ..fsutil import atomic_write

    manifest = folder / f"{name}.toml"
    try:
        atomic_write(folder / head_name, head)
        atomic_write(manifest, ("\n".join(lines) + "\n").encode("utf-8"))
    except OSError as e:
        raise PhototagError(f"cannot write the recognizer in {folder}: {e.strerror or e}") from None
    _remove_heads(folder, name, keep=head_name)
    return manifest


def _heads(folder: Path, name: str) -> list[Path]:
    """The head files of recognizer ``name`` in ``folder``: ``<name>.head-<16 hex>.npz``, and
    ``<name>.npz`` as written before heads were named by content."""
    pattern = re.compile(re.escape(name) + r"(\.head-[0-9a-f]{16})?\.npz")
    return sorted(p for p in folder.glob(glob.escape(name) + "*.npz") if pattern.fullmatch(p.name))


def _remove_heads(folder: Path, name: str, keep: str | None = None) -> None:
    """Delete the heads of ``name`` but ``keep`` (a head nothing points at is only space)."""
    for head in _heads(folder, name):
        if head.name != keep:
            try:
                head.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                raise PhototagError(f"cannot remove {head}: {e.strerror}") from None


def _check_tags(labels: list[set[str]], what: str) -> tuple[list[str], list[str]]:
    counts: dict[str, int] = {}
    for ls in labels:
        for t in ls:
            counts[t] = counts.get(t, 0) + 1
    too_few = sorted(t for t, c in counts.items() if c < MIN_EXAMPLES)
    if too_few:
        raise TrainingError(
            f"{', '.join(too_few)}: fewer than {MIN_EXAMPLES} photos; every tag needs at least "
            f"{MIN_EXAMPLES} (and {RECOMMENDED_EXAMPLES}+ to be reliable). Nothing was written."
        )
    tags = sorted(counts)
    if len(tags) < 2:
        raise TrainingError(
            f"{what} has {len(tags)} tag{'s' if len(tags) != 1 else ''}: a recognizer needs at least two to tell apart. Nothing was written."
        )
    return tags, []


def train_from_folder(
    folder: Path,
    options: TrainOptions,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
) -> TrainReport:
    """Train from ``folder/<tag>/*.jpg`` (nested folders: hierarchical tags); ``folder`` may
    be relative. ``progress(done, total)`` follows the photos being read and embedded."""
    catalog = catalog or Catalog.discover()
    name = check_free(options, catalog)
    folder = Path(os.path.abspath(folder))
    paths, labels, problems = collect_folder(folder, name)
    if not paths:
        raise TrainingError(
            f"{folder} holds no photos in tag sub-folders ({len(problems)} problems). Nothing was written."
        )
    backbone = Backbone(catalog.backbone(options.backbone), device=options.device)
    originals, extras, read_problems = embed_photos(
        paths,
        backbone,
        copies=options.copies if options.augment else 0,
        seed=options.seed,
        progress=progress,
    )
    keep = [i for i, e in enumerate(originals) if e is not None]
    if not keep:
        raise TrainingError(
            f"none of the {len(paths)} files under {folder} could be read as a photo. Nothing was written."
        )
    labels = [labels[i] for i in keep]
    if not options.multi_label and any(len(ls) > 1 for ls in labels):
        raise TrainingError(
            "the same photo is in two tag folders: train with several labels per photo (multi-label), or keep one copy. Nothing was written."
        )
    unreadable = (
        f" ({len(paths) - len(keep)} files could not be read)" if len(keep) < len(paths) else ""
    )
    try:
        tags, _ = _check_tags(labels, str(folder))
    except TrainingError as e:
        raise TrainingError(
            str(e).replace(" Nothing was written.", f"{unreadable}. Nothing was written.")
        ) from None
    report = _train_and_report(
        name,
        tags,
        np.array([originals[i] for i in keep]),
        [extras[i] for i in keep],
        labels,
        options,
        backbone.name,
    )
    report.warnings = [*problems, *read_problems, *report.warnings]
    report.decoded = len(paths)
    return report


# -- examples from the index: keywords and corrections ---------------------------------------


#: The field that defines a keyword's hierarchy, and its separator. Flat fields (dc:subject,
#: IPTC Keywords) have none: their values are one level each, kept verbatim.
HIERARCHY_SEPARATORS = {"lr:hierarchicalSubject": "|", "digiKam:TagsList": "/"}


def keyword_levels(value: str, field_name: str) -> list[str]:
    """A keyword's hierarchy levels, as its own field defines them ('|' in
    lr:hierarchicalSubject, '/' in digiKam:TagsList; none in flat fields)."""
    sep = HIERARCHY_SEPARATORS.get(field_name)
    return [p.strip() for p in (value.split(sep) if sep else [value]) if p.strip()]


def keyword_tag(value: str, field_name: str, root: str) -> str | None:
    """A keyword as a tag path under ``root``: 'People|Anna' -> 'mine/People/Anna', the
    flat keyword 'AC/DC' -> 'mine/AC\\/DC' (the text kept verbatim, :mod:`phototag.tagpath`).
    None for an empty keyword or another program's bookkeeping (``darktable|format|jpg``)."""
    from ..metadata.bookkeeping import is_bookkeeping
    from ..tagpath import join

    levels = keyword_levels(value, field_name)
    if not levels or is_bookkeeping(levels):
        return None
    return join([root, *levels])


def keyword_tags(pairs: Sequence[tuple[str, str]], root: str) -> set[str]:
    """One photo's (field, keyword) pairs as the tag paths they stand for.

    The same keyword is usually in several fields; the hierarchical fields name it best, so
    they win over flat ones, and lr:hierarchicalSubject over digiKam:TagsList (whose '/'
    cannot tell ``Music/AC/DC`` from ``Music|AC/DC``). A flat value that is the last level of
    another program's bookkeeping keyword in the same photo (darktable's ``jpg``) is left out.
    """
    from ..metadata.bookkeeping import is_bookkeeping
    from ..tagpath import leaf

    order = {"lr:hierarchicalSubject": 0, "digiKam:TagsList": 1}
    best: dict[str, str] = {}
    hierarchical_texts: set[str] = set()
    foreign_leaves: set[str] = set()
    for field_name, value in sorted(pairs, key=lambda fv: order.get(fv[0], 2)):
        levels = keyword_levels(value, field_name)
        if field_name in HIERARCHY_SEPARATORS and levels and is_bookkeeping(levels):
            foreign_leaves.add(levels[-1].casefold())
            continue
        if field_name == "digiKam:TagsList" and "/".join(levels).casefold() in hierarchical_texts:
            continue  # the lr:hierarchicalSubject keyword again, in digiKam's spelling
        tag = keyword_tag(value, field_name, root)
        if tag is None:
            continue
        name = leaf(tag).casefold()
        if field_name in HIERARCHY_SEPARATORS:
            hierarchical_texts.add("/".join(levels).casefold())
            best.setdefault(name, tag)
        elif name not in best and name not in foreign_leaves:
            best[name] = tag
    return set(best.values())


def train_from_keywords(
    index: Index,
    options: TrainOptions,
    *,
    min_examples: int = RECOMMENDED_EXAMPLES,
    read_keywords: Callable[[Index], dict[int, list[tuple[str, str]]]] | None = None,
    suggest_threshold: float = 0.5,
) -> TrainReport:
    """Learn the user's own keywords (dc:subject, lr:hierarchicalSubject, IPTC Keywords,
    digiKam:TagsList in sidecars and files) from the stored embeddings, then suggest them for
    the photos that lack them. phototag's own keywords are left out."""
    from ..metadata.read import user_keywords

    name = check_free(options, Catalog.discover())
    found = (read_keywords or user_keywords)(index)
    per_photo: dict[int, set[str]] = {}
    for pid, pairs in found.items():
        if tags_of_photo := keyword_tags(pairs, name):
            per_photo[pid] = tags_of_photo
    counts: dict[str, int] = {}
    for ts in per_photo.values():
        for t in ts:
            counts[t] = counts.get(t, 0) + 1
    total = index.count_embeddings(options.backbone)
    tags = sorted(t for t, c in counts.items() if c >= min_examples and c < total)
    if len(tags) < 1:
        raise TrainingError(
            f"no keyword is on {min_examples} or more photos (found {len(counts)} keywords in "
            f"{len(per_photo)} photos); lower the minimum number of examples, or tag more photos. Nothing was written."
        )
    ids, vecs = _embeddings(index, options.backbone)
    labels = [per_photo.get(int(i), set()) & set(tags) for i in ids]
    opts = replace(options, multi_label=True, augment=False)
    report = _train_and_report(name, tags, vecs, [[] for _ in ids], labels, opts, options.backbone)
    # Suggestions: photos without a keyword that the new recognizer gives it.
    from ..models.recognizers import LinearRecognizer, load_recognizer

    rec = load_recognizer(report.manifest, None)
    assert isinstance(rec, LinearRecognizer)
    scores = rec.score(vecs)
    paths = index.paths_of(ids.tolist())
    for row, pid in enumerate(ids.tolist()):
        for j, tag in enumerate(rec.paths):
            if tag not in labels[row] and scores[row, j] >= suggest_threshold:
                report.suggestions.append((paths[pid], tag, float(scores[row, j])))
    report.suggestions.sort(key=lambda s: -s[2])
    return report


def train_from_corrections(index: Index, options: TrainOptions) -> TrainReport:
    """Learn the tags the user added by hand (``phototag tag add``) from stored embeddings."""
    name = check_free(options, Catalog.discover())
    ids, vecs = _embeddings(index, options.backbone)
    added = index.corrections(action="add")
    labels = [
        {
            f"{name}/{p.split('/', 1)[1] if p.startswith('user/') else p}"  # escapes kept
            for p in added.get(int(i), [])
        }
        for i in ids
    ]
    keep = [k for k, ls in enumerate(labels) if ls]
    if not keep:
        raise TrainingError(
            "no corrections to learn from: add some with 'phototag tag add PHOTO TAG'. Nothing was written."
        )
    labels = [labels[k] for k in keep]
    tags, _ = _check_tags(labels, "the corrections")
    opts = replace(options, augment=False)
    if not opts.multi_label and any(len(ls) > 1 for ls in labels):
        opts = replace(opts, multi_label=True)
    return _train_and_report(
        name, tags, vecs[keep], [[] for _ in keep], labels, opts, options.backbone
    )


def _embeddings(index: Index, backbone: str) -> tuple[np.ndarray, np.ndarray]:
    ids_list, vec_list = [], []
    for ids, vecs in index.embedding_chunks(backbone):
        ids_list.append(ids)
        vec_list.append(vecs.astype(np.float32))
    if not ids_list:
        raise TrainingError(f"the index holds no {backbone} embeddings: scan your photos first")
    return np.concatenate(ids_list), np.concatenate(vec_list)


def remove_recognizer(name: str, out_dir: Path | None = None) -> Path:
    """Delete the trained recognizer ``name`` (its ``.toml`` and ``.npz`` head) from ``out_dir``
    (default: the user's weights folder); returns the manifest's path.

    Raises :class:`ConfigError` if there is no trained recognizer of that name there (a
    shipped one cannot be removed), :class:`PhototagError` if a file cannot be deleted. Its
    tags stay in the index until ``Index.drop_recognizer`` deletes them (the command does).
    """
    folder = (out_dir or config.user_weights_dir()) / "recognizers"
    manifest = folder / f"{name}.toml"
    if not NAME_RE.match(name) or not os.path.lexists(manifest):
        catalog = Catalog.discover()
        if name in catalog.names():
            raise ConfigError(
                f"{name!r} is shipped with phototag, not trained by you: it cannot be removed "
                "(choose the recognizers a scan runs instead: [scan] recognizers in the config file)"
            )
        import difflib

        trained = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        close = difflib.get_close_matches(name, trained, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"no trained recognizer named {name!r} in {folder} "
            f"(yours: {', '.join(trained) or 'none'}){hint}"
        )
    try:  # the manifest first: without it the head is never read
        os.unlink(manifest)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise PhototagError(f"cannot remove {manifest}: {e.strerror}") from None
    _remove_heads(folder, name)
    return manifest
