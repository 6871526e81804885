"""Installing ready ONNX zero-shot models from the Hugging Face Hub, in Immich's layout.

Immich publishes OpenCLIP, SigLIP/SigLIP2 and multilingual CLIP models as ONNX in model
repositories ``immich-app/<name>`` (e.g. ``ViT-B-32__openai``), laid out as its loader reads
them (immich_ml/models/clip/visual.py and textual.py)::

    config.json                     OpenCLIP's model config: embed_dim, vision_cfg, text_cfg
    visual/model.onnx               image (1, 3, S, S) float32 -> embedding (1, D), normalised
    visual/preprocess_cfg.json      size, mean, std, interpolation, resize_mode
    textual/model.onnx              text (1, L) int32 -> embedding (1, D), normalised
                                    (M-CLIP: input_ids + attention_mask)
    textual/tokenizer.json          the Hugging Face tokenizer
    textual/tokenizer_config.json   pad_token, model_max_length

:func:`install_from_hub` downloads exactly these files with ``huggingface_hub`` (its cache,
ETags, resumable ``.incomplete`` files, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_HOME``),
checks each against the hub's own checksum (the sha256 of a Git LFS file, the Git blob id of
a small one; offline, the cache's blob name, which is that same checksum), turns them into a
phototag backbone folder with a ``backbone.toml`` and installs it atomically
(:func:`phototag.models.install.install_folder`). No PyTorch, no export.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..media.imaging import Preprocess, Resample, ResizeMode, SizeConvention
from .install import Installed, install_folder
from .manifest import read_toml, sha256_file

#: Where Immich publishes its models; a bare name means a repository of this organisation.
ORGANIZATION = "immich-app"

#: Seconds to wait for the hub before giving up: an unreachable hub fails fast, not after
#: a minute of retries (huggingface_hub's own default is 10 s per request).
TIMEOUT = 10.0

Progress = Callable[[int, int | None], None]  # bytes so far, total


class HubFile(StrEnum):
    """The files of an Immich model repository, and the name each gets in the backbone."""

    CONFIG = "config.json"
    VISUAL = "visual/model.onnx"
    PREPROCESS = "visual/preprocess_cfg.json"
    TEXTUAL = "textual/model.onnx"
    TOKENIZER = "textual/tokenizer.json"
    TOKENIZER_CONFIG = "textual/tokenizer_config.json"

    @property
    def local(self) -> str:
        return {
            HubFile.VISUAL: "model.onnx",
            HubFile.TEXTUAL: "text.onnx",
            HubFile.PREPROCESS: "preprocess_cfg.json",
            HubFile.TOKENIZER: "tokenizer.json",
            HubFile.TOKENIZER_CONFIG: "tokenizer_config.json",
        }.get(self, str(self.value))


@dataclass(frozen=True, slots=True)
class HubModel:
    """A model of the Immich family that phototag lists (``weights/hub.toml``)."""

    name: str  # the repository's name, e.g. ViT-B-32__openai; also the backbone's name
    family: str  # openclip, siglip, siglip2, nllb, mclip
    embedding_dim: int
    image_size: int
    languages: str  # "en", or "multilingual (~100)"
    license: str  # of the weights, SPDX where there is one
    download_bytes: int  # both encoders, about (the exact size is shown before downloading)
    description: str

    @property
    def repo(self) -> str:
        return f"{ORGANIZATION}/{self.name}"

    @property
    def multilingual(self) -> bool:
        return self.languages != "en"

    @property
    def command(self) -> str:
        return f"phototag models install {self.name}"


def hub_models(path: Path | None = None) -> dict[str, HubModel]:
    """The Immich models phototag lists, from ``hub.toml`` in the weights folders."""
    from ..config import weights_dirs

    files = [path] if path else [d / "hub.toml" for d in weights_dirs()]
    out: dict[str, HubModel] = {}
    for f in files:
        if not f.is_file():
            continue
        for name, t in read_toml(f).items():
            if isinstance(t, dict) and name not in out:
                try:
                    out[name] = HubModel(
                        name, str(t["family"]), int(t["embedding_dim"]), int(t["image_size"]),
                        str(t["languages"]), str(t["license"]), int(t["download_bytes"]),
                        str(t.get("description", "")),
                    )  # fmt: skip
                except (KeyError, TypeError, ValueError) as e:
                    raise ModelError(f"{f}: entry {name!r} lacks or mistypes {e}") from None
    return out


def repo_of(name: str) -> str:
    """``immich-app/NAME`` for a bare name; ``owner/name`` as given."""
    if name.count("/") > 1 or name.startswith("/") or not name.strip("/"):
        raise ModelError(f"{name!r} is not a model name or a hub repository (owner/name)")
    return name if "/" in name else f"{ORGANIZATION}/{name}"


# -- the hub's environment, read when called (huggingface_hub reads it once, at import) --


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_cache() -> Path:
    """The Hugging Face cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the default."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache)
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


# -- download and verify -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checksum:
    """What the hub says a file is: its size and its sha256 (LFS) or Git blob id (sha1)."""

    size: int | None
    sha256: str | None
    git_sha1: str | None

    def check(self, path: Path, what: str) -> None:
        size = path.stat().st_size
        if self.size is not None and size != self.size:
            raise ModelError(f"{what} is {size} bytes, the hub says {self.size}")
        if self.sha256 is not None:
            got = sha256_file(path)
            if got != self.sha256:
                raise ModelError(f"{what} does not match the hub's sha256 ({got[:12]}... is not "
                                 f"{self.sha256[:12]}...)")  # fmt: skip
        elif self.git_sha1 is not None:
            h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            if h.hexdigest() != self.git_sha1:
                raise ModelError(f"{what} does not match the hub's Git blob id")
        else:
            raise ModelError(f"the hub gave no checksum for {what}: not installed")


def _hub_error(e: BaseException, repo: str) -> ModelError:
    """One line for whatever huggingface_hub raised (its exception types vary by version)."""
    name = type(e).__name__
    text = " ".join(str(e).split())[:300]
    if name in ("RepositoryNotFoundError", "GatedRepoError"):
        return ModelError(f"the hub has no model repository {repo} (or it is private)")
    if name == "RevisionNotFoundError":
        return ModelError(f"{repo}: no such revision on the hub")
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return ModelError(
            f"{repo} is not in the Hugging Face cache ({hub_cache()}) and HF_HUB_OFFLINE is "
            "set: download it once online, or unset HF_HUB_OFFLINE"
        )
    return ModelError(
        f"cannot reach the model hub at {_endpoint()} ({name}: {text}): offline, or blocked "
        "by a proxy or firewall? Set HF_ENDPOINT for a mirror; a partial download is kept "
        "and resumes next time"
    )


@contextmanager
def _hub_errors(repo: str) -> Iterator[None]:
    try:
        yield
    except ModelError:
        raise
    except Exception as e:  # huggingface_hub's HTTP, network and cache errors, any version
        raise _hub_error(e, repo) from None


def _remote_files(repo: str, revision: str, timeout: float) -> tuple[str, dict[str, Checksum]]:
    """The commit ``revision`` resolves to, and the hub's checksum of every file in it."""
    from huggingface_hub import HfApi

    with _hub_errors(repo):
        info = HfApi(endpoint=_endpoint()).model_info(
            repo, revision=revision, files_metadata=True, timeout=timeout
        )
    sums: dict[str, Checksum] = {}
    for s in info.siblings or []:
        lfs: Any = s.lfs
        sha256 = lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
        sums[s.rfilename] = Checksum(s.size, sha256, s.blob_id)
    if not info.sha:
        raise ModelError(f"{repo}: the hub did not say which commit {revision!r} is")
    return info.sha, sums


def _cached_checksum(path: Path) -> Checksum:
    """Offline: the cache names each blob after the hub's ETag (sha256 for LFS files, the Git
    blob id for others), so the file can still be checked against what the hub said."""
    etag = Path(os.path.realpath(path)).name
    if len(etag) == 64:
        return Checksum(None, etag, None)
    if len(etag) == 40:
        return Checksum(None, None, etag)
    raise ModelError(f"{path}: the cache does not record the hub's checksum of this file")


def download_model(
    name: str,
    *,
    revision: str = "main",
    timeout: float = TIMEOUT,
    on_start: Callable[[int], None] | None = None,
) -> dict[HubFile, Path]:
    """Fetch (or find in the cache) the files of an Immich model repository, each checked
    against the hub's checksum. ``on_start`` is told the total bytes before downloading.
    Raises :class:`ModelError` (unreachable hub, missing repository or file, bad checksum:
    the bad file is deleted from the cache so the next try fetches it again)."""
    from huggingface_hub import hf_hub_download

    repo = repo_of(name)
    offline = _offline()
    if offline:
        sums: dict[str, Checksum] = {}
    else:
        _, sums = _remote_files(repo, revision, timeout)
        missing = [f.value for f in HubFile if f.value not in sums]
        if missing:
            raise ModelError(
                f"{repo} is not a model in Immich's layout: it lacks {', '.join(missing)}"
            )
        if on_start is not None:
            on_start(sum(sums[f.value].size or 0 for f in HubFile))
    out: dict[HubFile, Path] = {}
    for f in HubFile:
        with _hub_errors(repo):
            path = Path(
                hf_hub_download(
                    # By the name asked for (not the commit): the cache then records what
                    # "main" is, which an offline install reads back.
                    repo, f.value, revision=revision, cache_dir=hub_cache(), endpoint=_endpoint(),
                    etag_timeout=timeout, local_files_only=offline,
                )
            )  # fmt: skip
        expected = _cached_checksum(path) if offline else sums[f.value]
        try:
            expected.check(path, f"{repo}/{f.value}")
        except ModelError as e:
            blob = Path(os.path.realpath(path))
            path.unlink(missing_ok=True)  # the snapshot's link, then the blob it points to
            blob.unlink(missing_ok=True)
            raise ModelError(
                f"{e}: refused and deleted from the cache; nothing installed"
            ) from None
        out[f] = path
    return out


# -- a backbone folder from Immich's files ------------------------------------------------


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read {path.name} of the model: {e}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path.name} of the model is not a JSON object")
    return data


def _onnx_io(path: Path) -> tuple[list[tuple[str, str, list[Any]]], list[str]]:
    """(inputs as (name, type, shape), output names) of an ONNX file, without running it."""
    import onnxruntime as ort

    try:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a damaged graph
        raise ModelError(
            f"{path.name} is not a usable ONNX model: {' '.join(str(e).split())[:200]}"
        ) from None
    return [(i.name, i.type, list(i.shape)) for i in s.get_inputs()], [
        o.name for o in s.get_outputs()
    ]


def preprocess_from_cfg(pre: dict[str, Any], repo: str) -> Preprocess:
    """phototag's preprocessing for an OpenCLIP ``preprocess_cfg.json`` (as Immich's
    visual.py reads it): ``shortest`` is Resize(short side) + CenterCrop as torchvision sizes
    them, ``squash`` (SigLIP) the whole photo resized to size x size; mean and std on 0..1
    become 0..255. Raises :class:`ModelError` for what OpenCLIP does that phototag does not
    (``longest``: letterboxing; non-square sizes)."""
    try:
        raw = pre["size"]
        sizes = [int(v) for v in raw] if isinstance(raw, list) else [int(raw)]
        mean = [round(float(v) * 255.0, 6) for v in pre["mean"]]
        std = [round(float(v) * 255.0, 6) for v in pre["std"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{repo}: preprocess_cfg.json lacks or mistypes {e}") from None
    if len(set(sizes)) != 1 or len(mean) != 3 or len(std) != 3 or 0 in std:
        raise ModelError(f"{repo}: only square inputs with 3-channel mean and std are supported")
    size = sizes[0]
    if not 16 <= size <= 4096:
        raise ModelError(f"{repo}: image size {size} is out of range")
    resize_mode = str(pre.get("resize_mode", "shortest"))  # OpenCLIP's default for old configs
    if resize_mode not in ("shortest", "squash"):
        raise ModelError(f"{repo}: resize_mode {resize_mode!r} is not supported (shortest, squash)")
    interpolation = str(pre.get("interpolation", "bicubic"))
    if interpolation not in ("bicubic", "bilinear", "lanczos", "nearest"):
        raise ModelError(f"{repo}: interpolation {interpolation!r} is not supported")
    return Preprocess(
        resize=size, crop=size, mean=(mean[0], mean[1], mean[2]), std=(std[0], std[1], std[2]),
        resample=Resample(interpolation),
        mode=ResizeMode.STRETCH if resize_mode == "squash" else ResizeMode.CROP,
        convention=SizeConvention.TORCHVISION,
    )  # fmt: skip


def backbone_toml(name: str, repo: str, commit: str, folder: Path, model: HubModel | None) -> str:
    """The ``backbone.toml`` of an Immich model whose files (named as :attr:`HubFile.local`)
    are in ``folder``: preprocessing from preprocess_cfg.json, the text encoder's inputs from
    its ONNX graph, cleaning and context length from config.json, files with their sha256."""
    config = _json(folder / HubFile.CONFIG.local)
    pre = _json(folder / HubFile.PREPROCESS.local)
    tok_cfg = _json(folder / HubFile.TOKENIZER_CONFIG.local)
    text_cfg = config.get("text_cfg") if isinstance(config.get("text_cfg"), dict) else {}
    assert isinstance(text_cfg, dict)
    settings = preprocess_from_cfg(pre, repo)
    try:
        embed_dim = int(config["embed_dim"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{repo}: config.json lacks {e}") from None
    resize_mode = "squash" if settings.mode == "stretch" else "shortest"
    image_in, image_out = _onnx_io(folder / HubFile.VISUAL.local)
    text_in, text_out = _onnx_io(folder / HubFile.TEXTUAL.local)
    names = [i[0] for i in text_in]
    if "input_ids" in names:  # M-CLIP: an XLM-R tower with its attention mask
        text_input, mask = "input_ids", "attention_mask" if "attention_mask" in names else None
    elif len(text_in) == 1:
        text_input, mask = text_in[0][0], None
    else:
        raise ModelError(f"{repo}: the text model's inputs {names} are not Immich's")
    shape = next(i[2] for i in text_in if i[0] == text_input)
    fixed_len = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
    context = int(
        text_cfg.get("context_length") or fixed_len or tok_cfg.get("model_max_length") or 77
    )
    if fixed_len is not None and fixed_len != context:
        raise ModelError(
            f"{repo}: the text model takes {fixed_len} tokens, config.json says {context}"
        )
    text_batch = shape[0] if isinstance(shape[0], int) else None
    image_shape = image_in[0][2]
    image_batch = image_shape[0] if isinstance(image_shape[0], int) else None
    dtype = "int32" if "int32" in next(i[1] for i in text_in if i[0] == text_input) else "int64"
    kwargs = text_cfg.get("tokenizer_kwargs")
    hf_tokenizer = bool(text_cfg.get("hf_tokenizer_name")) or mask is not None
    clean = str(kwargs.get("clean")) if isinstance(kwargs, dict) and kwargs.get("clean") else (
        "whitespace" if hf_tokenizer else "lower"
    )  # fmt: skip
    pad_token = tok_cfg.get("pad_token")
    if isinstance(pad_token, dict):  # transformers' AddedToken, saved as an object
        pad_token = pad_token.get("content")
    short = repo.split("/")[-1]
    from .hftokenizer import HubTokenizer

    # The tokenizer is checked now, not at the first scan: an unreadable file or a padding
    # token it lacks refuses the install.
    HubTokenizer(folder / HubFile.TOKENIZER.local, context, clean=clean,
                 pad_token=pad_token if isinstance(pad_token, str) else None,
                 language_prefix=short.startswith("nllb"))(["a photo."])  # fmt: skip
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        "# Made by 'phototag models install' from an Immich model repository on the Hugging",
        "# Face Hub; the [files] table is checked on every load.",
        f"name = {q(name)}",
        'kind = "zero-shot"',
        f"description = {q(model.description if model else f'{short} ({embed_dim}-d, from {repo})')}",
        f"license = {q(model.license if model else 'see the model card on the hub')}",
        f"embedding_dim = {embed_dim}",
        *([f"max_batch = {image_batch}"] if image_batch else []),
        "",
        "[source]",
        f"weights_from = {q(_endpoint() + '/' + repo)}",
        f"repository = {q(repo)}",
        f"commit = {q(commit)}",
        'export = "Immich (immich-app/immich machine-learning/export), ONNX"',
        "",
        "[preprocess]",
        f"# preprocess_cfg.json: resize_mode {resize_mode!r}"
        + (" (the whole photo to size x size)" if resize_mode == "squash" else ""),
        f"resize = {settings.resize}",
        f"crop = {settings.crop}",
        f"resample = {q(settings.resample)}",
        f"mode = {q(settings.mode)}",
        'convention = "torchvision"',
        f"mean = {list(settings.mean)}",
        f"std = {list(settings.std)}",
        "",
        "[outputs]",
        f"input = {q(image_in[0][0])}",
        f"embedding = {q(image_out[0])}",
        "",
        "[text]",
        f"model = {q(HubFile.TEXTUAL.local)}",
        f"input = {q(text_input)}",
        *([f"mask = {q(mask)}"] if mask else []),
        f"output = {q(text_out[0])}",
        f"vocab = {q(HubFile.TOKENIZER.local)}",
        f"context_length = {context}",
        f"clean = {q(clean)}",
        f"dtype = {q(dtype)}",
        *([f"pad_token = {q(str(pad_token))}"] if isinstance(pad_token, str) else []),
        *([f"max_batch = {text_batch}"] if text_batch else []),
        f"language_prefix = {'true' if short.startswith('nllb') else 'false'}",
        "# Immich's files do not carry the learned temperature: CLIP's usual 100 ('phototag",
        "# models calibrate' fits a vocabulary's own on labelled photos).",
        "logit_scale = 100.0",
    ]
    for f in HubFile:
        p = folder / f.local
        lines += ["", f"[files.{q(f.local)}]", f"sha256 = {q(sha256_file(p))}",
                  f"bytes = {p.stat().st_size}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def install_from_hub(
    name: str,
    dest: Path | None = None,
    *,
    revision: str = "main",
    timeout: float = TIMEOUT,
    on_start: Callable[[int], None] | None = None,
) -> Installed:
    """Download (or take from the cache) the Immich model ``name`` (``ViT-B-32__openai`` or
    ``owner/repo``), check it, and install it as a backbone of the same name into ``dest``
    (the user's weights folder): a kill at any moment leaves the old state or the new one."""
    from ..config import user_weights_dir

    dest = dest or user_weights_dir()
    repo = repo_of(name)
    backbone = repo.split("/")[-1]
    files = download_model(name, revision=revision, timeout=timeout, on_start=on_start)
    commit = next(
        (p.name for p in files[HubFile.CONFIG].parents if p.parent.name == "snapshots"), ""
    )
    dest.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".install-{backbone}-hub-", dir=dest))
    try:
        folder = stage / backbone
        folder.mkdir()
        for f, path in files.items():
            shutil.copyfile(path, folder / f.local)
        text = backbone_toml(backbone, repo, commit, folder, hub_models().get(backbone))
        (folder / "backbone.toml").write_text(text, encoding="utf-8")
        return install_folder(folder, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
