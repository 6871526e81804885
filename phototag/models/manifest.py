"""Reading and verifying model manifests (TOML files under ``weights/``).

A backbone is a folder with ``backbone.toml``; a recognizer is a ``*.toml`` file in a
``recognizers/`` folder. Manifests are untrusted input: every field is checked here and
a bad one is a :class:`ModelError` that names the file and the field.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..media.imaging import Layout, Preprocess, Resample, ResizeMode, SizeConvention


@dataclass(frozen=True, slots=True)
class FileSpec:
    name: str
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True)
class TextEncoderSpec:
    """The text half of a zero-shot (CLIP-style) backbone."""

    model: str  # ONNX file: (N, context_length) integer token ids -> (N, dim) embeddings
    input: str
    output: str
    # The tokenizer's file: CLIP's BPE merges (bpe_simple_vocab_16e6.txt.gz, run by the port
    # in tokenizer.py) or a Hugging Face ``tokenizer.json`` (run by the tokenizers library).
    vocab: str
    context_length: int
    logit_scale: float  # the model's learned temperature (100 for OpenAI's CLIP)
    variable_length: bool = False  # may be run on the tokens up to the longest end-of-text
    # OpenCLIP's text cleaning before tokenizing: "lower", "whitespace" or "canonicalize".
    clean: str = "lower"
    dtype: str = "int64"  # the ids' type the graph takes: int64, or int32 (Immich's exports)
    mask: str | None = None  # the attention-mask input, for M-CLIP's XLM-R text towers
    pad_token: str | None = None  # tokenizer.json only: padding token [default: the model's]
    language_prefix: bool = False  # NLLB: the text starts with its FLORES-200 language code
    max_batch: int | None = None  # a graph with a fixed batch size (Immich's: 1)

    @property
    def tokenizer_json(self) -> bool:
        """Whether ``vocab`` is a Hugging Face ``tokenizer.json``."""
        return self.vocab.endswith(".json")


#: OpenCLIP's text cleanings (open_clip/tokenizer.py ``get_clean_fn``).
TEXT_CLEANING = ("lower", "whitespace", "canonicalize")


class BackboneKind(StrEnum):
    """A classifier (logits + embedding), a detector (boxes), or a zero-shot image encoder
    with its text encoder (embeddings that text can be compared with); and the three face
    models every scan runs (phototag.faces.analyzer): detector, check, descriptor."""

    CLASSIFIER = "classifier"
    DETECTOR = "detector"
    ZERO_SHOT = "zero-shot"
    FACE_DETECTOR = "face-detector"
    FACE_CHECK = "face-check"
    FACE_DESCRIPTOR = "face-descriptor"


BACKBONE_KINDS = tuple(k.value for k in BackboneKind)


@dataclass(frozen=True, slots=True)
class BackboneManifest:
    """A backbone: an ONNX image encoder with its preprocessing and outputs."""

    name: str
    kind: BackboneKind
    description: str
    license: str
    folder: Path
    embedding_dim: int
    preprocess: Preprocess
    input_name: str
    logits_output: str | None
    embedding_output: str | None
    detections_output: str | None
    labels_file: str | None
    head_file: str | None  # the classifier's last layer as arrays (weight, bias), for retag
    files: tuple[FileSpec, ...]
    source: dict[str, str]
    max_batch: int | None = None  # graphs with a fixed batch size (1) are run photo by photo
    text: TextEncoderSpec | None = None  # zero-shot backbones only

    @property
    def zero_shot(self) -> bool:
        return self.text is not None

    def file_sha256(self, name: str) -> str:
        for f in self.files:
            if f.name == name:
                return f.sha256
        raise ModelError(f"{self.folder / 'backbone.toml'}: no {name} in [files]")

    @property
    def model_path(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def fingerprint(self) -> str:
        """Changes whenever the model file changes; stored with results in the index."""
        return self.file_sha256("model.onnx")[:16]

    def labels(self) -> list[str]:
        if not self.labels_file:
            raise ModelError(f"backbone {self.name} has no class labels")
        path = self.folder / self.labels_file
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ModelError(f"cannot read labels {path}: {e.strerror}") from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path} is not valid TOML: {e}") from None


def field(data: dict[str, Any], key: str, kind: type, where: Path, default: Any = ...) -> Any:
    """``data[key]`` checked to be a ``kind``; a clear ModelError otherwise."""
    if key not in data:
        if default is ...:
            raise ModelError(f"{where}: missing field '{key}'")
        return default
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelError(f"{where}: field '{key}' must be {kind.__name__}, not {value!r:.60}")
    return value


def _floats3(data: dict[str, Any], key: str, where: Path) -> tuple[float, float, float]:
    value = field(data, key, list, where)
    if len(value) != 3 or not all(isinstance(v, int | float) for v in value):
        raise ModelError(f"{where}: '{key}' must be three numbers")
    if key == "std" and any(v == 0 for v in value):
        raise ModelError(f"{where}: 'std' must not contain 0")
    return (float(value[0]), float(value[1]), float(value[2]))


def load_backbone_manifest(folder: Path) -> BackboneManifest:
    path = folder / "backbone.toml"
    data = read_toml(path)
    pre = field(data, "preprocess", dict, path)
    out = field(data, "outputs", dict, path)
    files_table = field(data, "files", dict, path)
    files = []
    for name, spec in files_table.items():
        if not isinstance(spec, dict) or "/" in name or "\\" in name or name.startswith("."):
            raise ModelError(f"{path}: bad [files] entry {name!r}")
        sha = field(spec, "sha256", str, path)
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ModelError(f"{path}: sha256 of {name} is not 64 hex digits")
        files.append(FileSpec(name, sha, field(spec, "bytes", int, path)))
    resize = field(pre, "resize", int, path)
    crop = field(pre, "crop", int, path)
    if not (16 <= crop <= resize <= 4096):
        raise ModelError(f"{path}: preprocess needs 16 <= crop <= resize <= 4096")
    resample = field(pre, "resample", str, path, "bicubic")
    if resample not in Resample.__members__.values():
        raise ModelError(f"{path}: unknown resample {resample!r}")
    mode = field(pre, "mode", str, path, "crop")
    layout = field(pre, "layout", str, path, "nchw")
    if mode not in ResizeMode.__members__.values() or layout not in Layout.__members__.values():
        raise ModelError(f"{path}: preprocess mode is crop or stretch, layout nchw or nhwc")
    convention = field(pre, "convention", str, path, "phototag")
    if convention not in SizeConvention.__members__.values():
        raise ModelError(f"{path}: preprocess convention is phototag or torchvision")
    kind = field(data, "kind", str, path)
    if kind not in BACKBONE_KINDS:
        raise ModelError(f"{path}: kind must be one of {', '.join(BACKBONE_KINDS)}")
    text = None
    if kind == BackboneKind.ZERO_SHOT:
        t = field(data, "text", dict, path)
        text = TextEncoderSpec(
            model=field(t, "model", str, path),
            input=field(t, "input", str, path, "text"),
            output=field(t, "output", str, path, "embedding"),
            vocab=field(t, "vocab", str, path),
            context_length=field(t, "context_length", int, path, 77),
            logit_scale=field(t, "logit_scale", float, path),
            variable_length=field(t, "variable_length", bool, path, False),
            clean=field(t, "clean", str, path, "lower"),
            dtype=field(t, "dtype", str, path, "int64"),
            mask=field(t, "mask", str, path, None),
            pad_token=field(t, "pad_token", str, path, None),
            language_prefix=field(t, "language_prefix", bool, path, False),
            max_batch=field(t, "max_batch", int, path, None),
        )
        if not 1 <= text.context_length <= 4096 or not 0 < text.logit_scale <= 1000:
            raise ModelError(f"{path}: [text] context_length or logit_scale out of range")
        if text.clean not in TEXT_CLEANING or text.dtype not in ("int64", "int32"):
            raise ModelError(
                f"{path}: [text] clean is one of {', '.join(TEXT_CLEANING)}; dtype int64 or int32"
            )
        if text.max_batch is not None and text.max_batch < 1:
            raise ModelError(f"{path}: [text] max_batch must be at least 1")
        listed = {f.name for f in files}
        for needed in (text.model, text.vocab):
            if needed not in listed:
                raise ModelError(f"{path}: [text] names {needed!r}, which [files] does not list")
    embedding = field(out, "embedding", str, path, None)
    detections = field(out, "detections", str, path, None)
    if embedding is None and detections is None:
        raise ModelError(f"{path}: [outputs] needs an embedding or detections")
    source = field(data, "source", dict, path, {})
    return BackboneManifest(
        name=field(data, "name", str, path),
        kind=BackboneKind(kind),
        description=field(data, "description", str, path, ""),
        license=field(data, "license", str, path),
        folder=folder,
        embedding_dim=field(data, "embedding_dim", int, path, 0),
        preprocess=Preprocess(
            resize=resize,
            crop=crop,
            mean=_floats3(pre, "mean", path),
            std=_floats3(pre, "std", path),
            resample=Resample(resample),
            mode=ResizeMode(mode),
            layout=Layout(layout),
            convention=SizeConvention(convention),
        ),
        input_name=field(out, "input", str, path, "image"),
        logits_output=field(out, "logits", str, path, None),
        embedding_output=embedding,
        detections_output=detections,
        labels_file=field(out, "labels", str, path, None),
        head_file=field(out, "head", str, path, None),
        files=tuple(files),
        max_batch=field(data, "max_batch", int, path, None),
        source={str(k): str(v) for k, v in source.items()},
        text=text,
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_files(m: BackboneManifest, part: str | None = None) -> None:
    """Check the files of a backbone against its manifest (size first, then sha256): all of
    them, or only the ``"image"`` or ``"text"`` encoder's (a search must not hash the image
    model, nor a scan the text model, every time)."""
    text = {m.text.model, m.text.vocab} if m.text else set()
    for spec in m.files:
        if (part == "image" and spec.name in text) or (part == "text" and spec.name not in text):
            continue
        path = m.folder / spec.name
        try:
            size = path.stat().st_size
        except OSError:
            raise ModelError(f"model file missing: {path}") from None
        if size != spec.bytes:
            raise ModelError(
                f"model file {path} is {size} bytes, its manifest says {spec.bytes}: "
                "truncated or replaced; reinstall phototag or the model"
            )
        if sha256_file(path) != spec.sha256:
            raise ModelError(
                f"model file {path} does not match the sha256 in its manifest: "
                "damaged or replaced; reinstall phototag or the model"
            )
