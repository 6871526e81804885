"""Zero-shot recognition: tags from their names alone, with a CLIP-style backbone.

A zero-shot backbone has two encoders that map photos and texts into one space. A
*vocabulary* (``weights/vocabularies/*.toml``) is a tag list with prompt templates; each
tag's text embedding is the mean of its prompts' embeddings ("a photo of curry rice, a type
of food.", ...), computed once per backbone and cached. A photo's score for a tag is the
softmax, over the vocabulary plus a few generic *background* prompts, of the
temperature-scaled cosine similarities -- CLIP's own zero-shot classifier. The background
prompts ("a photo.", ...) take the probability mass when a photo fits none of the tags, so
a score means "this tag, rather than any other in the list or nothing in particular" in
every vocabulary, whatever its size. Inner levels of the hierarchy roll up (the sum of the
tags below them), as in the ImageNet-mapped recognizers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Device, cache_dir
from ..errors import ModelError
from ..fsutil import atomic_writer
from ..tagpath import join, parent_paths, split
from .manifest import BackboneManifest, field, read_toml, sha256_file, verify_files
from .recognizers import Candidate, MappedRecognizer, check_path, rank

if TYPE_CHECKING:
    from .backbones import BackboneOutput
    from .hftokenizer import HubTokenizer
    from .session import Session
    from .tokenizer import Tokenizer

#: Used when a vocabulary names no templates or background of its own.
DEFAULT_TEMPLATES = ("a photo of {}.",)
DEFAULT_BACKGROUND = ("a photo.", "a picture.", "an image.", "a photo of something.")


def normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    out: np.ndarray = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    return out


@dataclass
class TextEncoder:
    """The text half of a zero-shot backbone: texts -> L2-normalised embeddings."""

    manifest: BackboneManifest
    device: Device = Device.CPU  # text is encoded once per vocabulary and cached
    verify: bool = True
    batch_size: int = 64
    # The language of the texts (ISO 639-1): NLLB text encoders are told it (a prefix token).
    language: str = "en"

    def __post_init__(self) -> None:
        if self.manifest.text is None:
            raise ModelError(f"backbone {self.manifest.name} has no text encoder (not zero-shot)")
        if self.manifest.text.max_batch is not None:
            self.batch_size = min(self.batch_size, self.manifest.text.max_batch)

    @cached_property
    def tokenizer(self) -> Tokenizer | HubTokenizer:
        spec = self.manifest.text
        assert spec is not None
        path = self.manifest.folder / spec.vocab
        if spec.tokenizer_json:
            from .hftokenizer import HubTokenizer

            return HubTokenizer(
                path, spec.context_length, clean=spec.clean, pad_token=spec.pad_token,
                language_prefix=spec.language_prefix, language=self.language,
            )  # fmt: skip
        from .tokenizer import Tokenizer

        return Tokenizer(path, spec.context_length)

    @cached_property
    def session(self) -> Session:
        from .session import open_session

        spec = self.manifest.text
        assert spec is not None
        if self.verify:
            verify_files(self.manifest, "text")
        session = open_session(self.manifest.folder / spec.model, self.device)
        inputs = [spec.input] + ([spec.mask] if spec.mask else [])
        if any(n not in session.input_names() for n in inputs) or (
            spec.output not in session.output_names()
        ):
            raise ModelError(
                f"text model of {self.manifest.name} lacks input {' or '.join(map(repr, inputs))} "
                f"or output {spec.output!r}"
            )
        return session

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) L2-normalised embeddings of ``texts``, ``batch_size`` at a time."""
        spec = self.manifest.text
        assert spec is not None
        parts = [np.zeros((0, self.manifest.embedding_dim), np.float32)]
        dtype = np.int32 if spec.dtype == "int32" else np.int64
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i : i + self.batch_size])
            feed: dict[str, np.ndarray] = {}
            if spec.mask:
                from .hftokenizer import HubTokenizer

                assert isinstance(self.tokenizer, HubTokenizer)
                ids, mask = self.tokenizer.encode(batch)
                feed[spec.mask] = mask.astype(dtype)
            else:
                ids = self.tokenizer(batch)
            eot = self.tokenizer.eot
            if spec.variable_length and eot is not None:  # padding after it changes nothing
                ids = ids[:, : int((ids == eot).argmax(axis=1).max()) + 1]
            feed[spec.input] = ids.astype(dtype)
            parts.append(self.session.run([spec.output], feed)[0])
        return normalize(np.concatenate(parts))


@dataclass(frozen=True)
class Vocabulary:
    """A zero-shot recognizer as data: tags, the words for them, and how to ask."""

    name: str
    description: str
    file_sha256: str
    leaves: tuple[str, ...]  # tag paths, 'root/.../tag'
    prompts: tuple[tuple[str, ...], ...]  # per leaf: its texts (templates filled with names)
    background: tuple[str, ...]
    rollup: bool
    temperature: float | None  # None: the backbone's logit scale

    def texts(self) -> list[list[str]]:
        """Per class row (leaves, then background): the prompts averaged into it."""
        return [list(texts) for texts in self.prompts] + [[b] for b in self.background]

    def members(self) -> dict[str, set[int]]:
        """Tag path -> the leaf rows it sums (every inner level too, with ``rollup``)."""
        out: dict[str, set[int]] = {leaf: {i} for i, leaf in enumerate(self.leaves)}
        if self.rollup:
            for i, leaf in enumerate(self.leaves):
                for parent in parent_paths(leaf):
                    out.setdefault(parent, set()).add(i)
        return out


def _strings(value: object, where: Path, what: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise ModelError(f"{where}: {what} must be a non-empty list of non-empty strings")
    return tuple(value)


def _templates(table: dict[str, object], default: Sequence[str], path: Path) -> tuple[str, ...]:
    templates = _strings(table.get("templates", list(default)), path, "templates")
    for t in templates:
        if t.count("{}") != 1 or t.replace("{}", "").count("{") or t.replace("{}", "").count("}"):
            raise ModelError(f"{path}: template {t!r} must contain '{{}}' once and no other braces")
    return templates


def load_vocabulary(path: Path) -> Vocabulary:
    data = read_toml(path)
    name = field(data, "name", str, path)
    if field(data, "kind", str, path) != "zero-shot":
        raise ModelError(f'{path}: a vocabulary has kind = "zero-shot"')
    templates = _templates(data, list(DEFAULT_TEMPLATES), path)
    background = _strings(data.get("background", list(DEFAULT_BACKGROUND)), path, "background")
    groups = field(data, "groups", dict, path)
    leaves: dict[str, tuple[str, ...]] = {}
    for group, table in groups.items():
        if not isinstance(table, dict):
            raise ModelError(f"{path}: [groups.{group!r}] must be a table")
        if group != name and not group.startswith(name + "/"):
            raise ModelError(f"{path}: group {group!r} is not under {name!r}")
        group_templates = _templates(table, templates, path)
        for entry in field(table, "tags", list, path):
            names: tuple[str, ...]
            if isinstance(entry, str):
                tag, names = entry, (entry,)
            elif isinstance(entry, dict):
                tag = field(entry, "tag", str, path)
                names = _strings(entry.get("prompts", [tag]), path, f"prompts of {tag!r}")
            else:
                raise ModelError(f"{path}: a tag is a string or {{tag = ..., prompts = [...]}}")
            leaf = check_path(f"{group}/{tag}", path)
            if leaf in leaves:
                raise ModelError(f"{path}: tag {leaf!r} is listed twice")
            leaves[leaf] = tuple(t.format(n) for n in names for t in group_templates)
    if not leaves:
        raise ModelError(f"{path}: the vocabulary has no tags")
    inner = {join(split(leaf)[:d]) for leaf in leaves for d in range(1, len(split(leaf)))}
    if both := inner & set(leaves):
        raise ModelError(f"{path}: {sorted(both)[0]!r} is both a tag and a group of tags")
    temperature = field(data, "temperature", float, path, None)
    if temperature is not None and not 0 < temperature <= 1000:
        raise ModelError(f"{path}: temperature must be in (0, 1000]")
    return Vocabulary(
        name=name,
        description=field(data, "description", str, path, ""),
        file_sha256=sha256_file(path),
        leaves=tuple(leaves),
        prompts=tuple(leaves.values()),
        background=background,
        rollup=field(data, "rollup", bool, path, True),
        temperature=temperature,
    )


def class_embeddings(
    encoder: TextEncoder, vocab: Vocabulary, on_miss: Callable[[int], None] | None = None
) -> np.ndarray:
    """(leaves + background, dim): each row the normalised mean of its prompts' embeddings.

    Cached in ``<cache>/text`` under a key of the text model, the tokenizer and the exact
    prompts, so a change to any of them computes them again.
    """
    m = encoder.manifest
    assert m.text is not None
    rows = vocab.texts()
    key = hashlib.sha256(
        json.dumps(
            [m.file_sha256(m.text.model), m.file_sha256(m.text.vocab), m.text.context_length, rows]
            + ([encoder.language] if m.text.language_prefix else []),
            ensure_ascii=False,
        ).encode()
    ).hexdigest()[:32]
    path = cache_dir() / "text" / f"{key}.npy"
    try:
        cached: np.ndarray = np.load(path, allow_pickle=False)
        if cached.shape == (len(rows), m.embedding_dim) and cached.dtype == np.float32:
            return cached
    except (OSError, ValueError, EOFError):
        pass  # not there yet, or damaged: compute it again
    flat = [t for row in rows for t in row]
    if on_miss is not None:
        on_miss(len(flat))  # a slow step ahead (about 8 s for 1,000 prompts on 2 CPU cores)
    emb = encoder.encode(flat)
    out = np.empty((len(rows), emb.shape[1]), np.float32)
    start = 0
    for i, row in enumerate(rows):
        out[i] = emb[start : start + len(row)].mean(axis=0)
        start += len(row)
    out = normalize(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path) as f:
            np.save(f, out, allow_pickle=False)
    except OSError:
        pass  # a read-only cache costs time, not correctness
    return out


@dataclass(frozen=True)
class ZeroShotRecognizer:
    """A vocabulary bound to one zero-shot backbone."""

    name: str
    backbone: str
    description: str
    fingerprint: str
    paths: tuple[str, ...]
    classes: np.ndarray  # (leaves + background, dim), normalised
    scale: float  # the softmax temperature: the backbone's logit scale unless overridden
    mapped: MappedRecognizer  # class rows -> tag paths (leaves and rolled-up groups)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, dim) image embeddings -> (N, classes) softmax of the scaled cosines."""
        from .backbones import softmax

        out: np.ndarray = softmax(self.scale * (normalize(embeddings) @ self.classes.T))
        return out

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.mapped.score(self.probabilities(embeddings))
        return out

    def candidates(
        self, output: BackboneOutput, *, threshold: float = 0.0, top_k: int | None = None
    ) -> list[list[Candidate]]:
        return rank(self.score(output.embeddings), self.paths, threshold=threshold, top_k=top_k)


def bind(
    vocab: Vocabulary, encoder: TextEncoder, on_miss: Callable[[int], None] | None = None
) -> ZeroShotRecognizer:
    """The recognizer ``vocab`` makes with ``encoder``'s backbone (``on_miss`` is told the
    number of prompts before they are encoded, when they are not cached)."""
    m = encoder.manifest
    assert m.text is not None
    classes = class_embeddings(encoder, vocab, on_miss)
    members = vocab.members()
    paths = tuple(sorted(members))
    matrix = np.zeros((len(classes), len(paths)), np.float32)
    for j, p in enumerate(paths):
        matrix[sorted(members[p]), j] = 1.0
    scale = vocab.temperature or m.text.logit_scale
    fp = hashlib.sha256(
        f"{vocab.file_sha256}:{m.file_sha256(m.text.model)}:{scale:g}".encode()
    ).hexdigest()[:16]
    return ZeroShotRecognizer(
        name=vocab.name,
        backbone=m.name,
        description=vocab.description,
        fingerprint=fp,
        paths=paths,
        classes=classes,
        scale=scale,
        mapped=MappedRecognizer(vocab.name, m.name, vocab.description, fp, paths, matrix),
    )
