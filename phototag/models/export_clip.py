"""Build a zero-shot backbone from OpenCLIP: the image and text encoders as ONNX, checked.

Runs on the user's machine with the ``clip`` extra (torch + open_clip_torch), never at scan
time. Steps: build the model (downloading the pretrained weights from where OpenCLIP keeps
them, unless ``pretrained`` is None: random weights), export both encoders to ONNX with a
dynamic batch axis, then prove the export before anything is installed -- the image
encoder on phototag's own preprocessing against OpenCLIP's transform + PyTorch, the text
encoder on phototag's tokenizer against OpenCLIP's tokenizer + PyTorch. Any difference above
the tolerance stops the export.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .manifest import sha256_file

#: Prompts the text check runs (phototag's tokenizer must give OpenCLIP's ids for them too).
CHECK_TEXTS = (
    "a photo of a wedding ceremony.",
    "a photo of curry rice, a type of Japanese food.",
    "kids playing on the beach at sunset",
    "Amanita virosa (destroying angel), a poisonous mushroom",
    "手巻き寿司 🍣 & café crème",
    "a long caption " + "that goes on and on " * 20,
)


@dataclass(frozen=True, slots=True)
class ExportReport:
    folder: Path  # the finished backbone folder (with backbone.toml)
    name: str
    image_max_diff: float
    text_max_diff: float
    checked_images: int
    checked_texts: int


def backbone_name(arch: str, pretrained: str | None) -> str:
    return f"clip-{arch.lower()}-{(pretrained or 'random').lower()}".replace("_", "-")


def _imports() -> tuple[Any, Any]:
    try:
        import open_clip
        import torch
    except ImportError as e:
        raise ModelError(
            f"exporting needs PyTorch and OpenCLIP ({e.name} is missing): "
            "pip install 'phototag[clip]'"
        ) from None
    return torch, open_clip


def check_images(n: int = 6) -> list[Any]:
    """Deterministic photos of several sizes and both orientations, for the image check."""
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = [(640, 480), (480, 640), (224, 224), (1000, 333), (301, 299), (257, 500)]
    out = []
    for w, h in sizes[:n]:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], -1)
        noise = rng.integers(0, 40, (h, w, 3))
        out.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB"))
    return out


def export_clip(
    arch: str,
    pretrained: str | None,
    out: Path,
    *,
    config: Path | None = None,
    name: str | None = None,
    images: Sequence[Path] = (),
    tolerance: float = 1e-4,
    opset: int = 17,
    progress: Callable[[str], None] = lambda _: None,
) -> ExportReport:
    """Export ``arch`` (with ``pretrained`` weights, or random ones) into ``out/<name>``.

    ``config`` is an OpenCLIP model config (JSON) to register first, for architectures
    OpenCLIP does not ship. ``images`` are photos to check on besides the built-in ones.
    """
    torch, open_clip = _imports()
    from PIL import Image

    from ..media.imaging import Preprocess, Resample, SizeConvention, preprocess
    from .tokenizer import Tokenizer

    if config is not None:
        open_clip.add_model_config(config)
        arch = config.stem
    name = name or backbone_name(arch, pretrained)
    pcfg = open_clip.get_pretrained_cfg(arch, pretrained) if pretrained else {}
    if pretrained and not pcfg:
        known = ", ".join(t for a, t in open_clip.list_pretrained() if a == arch) or "none"
        raise ModelError(f"OpenCLIP has no weights {pretrained!r} for {arch}; it knows: {known}")
    progress(f"building {arch} ({'pretrained ' + pretrained if pretrained else 'random weights'})")
    torch.manual_seed(0)
    try:
        model, _, transform = open_clip.create_model_and_transforms(
            arch, pretrained=pretrained, force_quick_gelu=bool(pcfg.get("quick_gelu"))
        )
    except RuntimeError as e:  # OpenCLIP reports unknown models and failed downloads so
        hint = (
            " -- without internet access, export on a machine that has it and copy the "
            "installed folder over ('phototag models install FOLDER')"
            if "download" in str(e).lower()
            else ""
        )
        raise ModelError(f"OpenCLIP could not build {arch}: {e}{hint}") from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    if type(tokenizer).__name__ != "SimpleTokenizer" or getattr(tokenizer, "reduction_fn", None):
        raise ModelError(
            f"{arch} uses a {type(tokenizer).__name__}; phototag runs CLIP's BPE tokenizer only"
        )
    pre = model.visual.preprocess_cfg
    size = pre["size"]
    size = size if isinstance(size, int) else size[0] if size[0] == size[1] else None
    if size is None or pre.get("resize_mode", "shortest") != "shortest":
        raise ModelError(f"{arch}: only square inputs resized on the shortest side are supported")
    interpolation = pre.get("interpolation", "bicubic")
    if interpolation not in ("bicubic", "bilinear"):
        raise ModelError(f"{arch}: interpolation {interpolation!r} is not supported")
    context = int(tokenizer.context_length)
    embed_dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else 0

    class ImageEncoder(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: Any) -> Any:
            return self.model.encode_image(image)

    # CLIP's text transformer is causal and reads its output at the end-of-text token, so
    # the padding after that token changes nothing: exported with the positions and the mask
    # sliced to the input's length, the text encoder can be run on just the tokens that
    # matter (prompts are ~15 of 77). Checked below at both lengths against PyTorch.
    # nn.MultiheadAttention's own code bakes the traced sequence length into its reshapes,
    # so the blocks are written out here with shape-free reshapes (unflatten/flatten).
    variable = (
        all(hasattr(model, a) for a in ("token_embedding", "positional_embedding", "ln_final"))
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", "") == "argmax"
        and all(
            isinstance(b.attn, torch.nn.MultiheadAttention) and b.attn.batch_first
            and not hasattr(b, "ln_1_kv") and b.attn.in_proj_weight is not None
            and b.attn.bias_k is None and b.attn.bias_v is None
            for b in model.transformer.resblocks
        )
    )  # fmt: skip

    class TextEncoder(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, text: Any) -> Any:
            m = self.model
            if not variable:
                return m.encode_text(text)
            n = text.shape[1]
            x = m.token_embedding(text) + m.positional_embedding[:n]
            mask = m.attn_mask[:n, :n]
            for block in m.transformer.resblocks:
                x = x + block.ls_1(_attention(block.attn, block.ln_1(x), mask))
                x = x + block.ls_2(block.mlp(block.ln_2(x)))
            x = m.ln_final(x)
            x = x[torch.arange(x.shape[0]), text.argmax(dim=-1)]
            proj = m.text_projection
            return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{name}-", dir=out))
    try:
        progress("exporting the image encoder to ONNX")
        dummy_image = torch.zeros(2, 3, size, size)
        dummy_text = torch.as_tensor(tokenizer(["a photo", "a dog"]))
        # nn.MultiheadAttention's inference fast path is a fused op ONNX has no export for.
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.no_grad(), warnings.catch_warnings():
            # The exporter's notes (advanced indexing, constant folding) are about graphs it
            # exports correctly here; the check below is what proves the result.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ImageEncoder(), (dummy_image,), str(staging / "model.onnx"),
                input_names=["image"], output_names=["embedding"],
                dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
                opset_version=opset, dynamo=False,
            )  # fmt: skip
            progress("exporting the text encoder to ONNX")
            torch.onnx.export(
                TextEncoder(), (dummy_text,), str(staging / "text.onnx"),
                input_names=["text"], output_names=["embedding"],
                dynamic_axes={"text": {0: "batch", **({1: "tokens"} if variable else {})},
                              "embedding": {0: "batch"}},
                opset_version=opset, dynamo=False,
            )  # fmt: skip
            if not embed_dim:
                embed_dim = int(model.encode_text(dummy_text).shape[1])
        vocab_name = "bpe_simple_vocab_16e6.txt.gz"
        shutil.copyfile(open_clip.tokenizer.default_bpe(), staging / vocab_name)
        mean = [round(float(v) * 255.0, 6) for v in pre["mean"]]
        std = [round(float(v) * 255.0, 6) for v in pre["std"]]
        settings = Preprocess(
            resize=size, crop=size, mean=(mean[0], mean[1], mean[2]),
            std=(std[0], std[1], std[2]), resample=Resample(interpolation),
            convention=SizeConvention.TORCHVISION,
        )  # fmt: skip

        # The proof: ONNX on phototag's inputs against PyTorch on OpenCLIP's.
        import onnxruntime as ort

        progress("checking ONNX against PyTorch")
        pictures = check_images()
        for p in images:
            with Image.open(p) as im:
                from PIL import ImageOps

                pictures.append(ImageOps.exif_transpose(im).convert("RGB"))
        image_sess = ort.InferenceSession(
            str(staging / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        text_sess = ort.InferenceSession(
            str(staging / "text.onnx"), providers=["CPUExecutionProvider"]
        )
        ours = np.stack([preprocess(p, settings) for p in pictures])
        with torch.no_grad():
            theirs_in = torch.stack([transform(p) for p in pictures])
            reference = model.encode_image(theirs_in).numpy()
            got = image_sess.run(["embedding"], {"image": ours})[0]
            image_diff = float(np.abs(got - reference).max())
            ids = Tokenizer(staging / vocab_name, context)(list(CHECK_TEXTS))
            ref_ids = tokenizer(list(CHECK_TEXTS)).numpy()
            if not np.array_equal(ids, ref_ids):
                raise ModelError("phototag's tokenizer and OpenCLIP's disagree: not installed")
            text_ref = model.encode_text(torch.as_tensor(ref_ids)).numpy()
            text_got = text_sess.run(["embedding"], {"text": ids})[0]
            text_diff = float(np.abs(text_got - text_ref).max())
            if variable:  # and on the tokens up to the longest end-of-text only
                used = int(ids.argmax(axis=1).max()) + 1
                short = text_sess.run(["embedding"], {"text": ids[:, :used]})[0]
                text_diff = max(text_diff, float(np.abs(short - text_ref).max()))
                short_ids = Tokenizer(staging / vocab_name, context)(list(CHECK_TEXTS[:2]))
                used = int(short_ids.argmax(axis=1).max()) + 1
                short = text_sess.run(["embedding"], {"text": short_ids[:, :used]})[0]
                text_diff = max(text_diff, float(np.abs(short - text_ref[:2]).max()))
            logit_scale = float(model.logit_scale.exp().item())
        if image_diff > tolerance or text_diff > tolerance:
            raise ModelError(
                f"ONNX differs from PyTorch by {max(image_diff, text_diff):.2e} "
                f"(image {image_diff:.2e}, text {text_diff:.2e}; tolerance {tolerance:g}): "
                "not installed"
            )

        source = {
            "arch": arch,
            "pretrained": pretrained or "none (random weights: for testing, recognizes nothing)",
            "weights_from": (pcfg.get("hf_hub") and f"https://huggingface.co/{pcfg['hf_hub'].rstrip('/')}")
            or pcfg.get("url", "") or "none",
            "open_clip": open_clip.__version__,
            "torch": torch.__version__.split("+")[0],
            "export": f"phototag models export clip (opset {opset})",
            "check": f"image max |diff| {image_diff:.2e}, text max |diff| {text_diff:.2e}",
        }  # fmt: skip
        files = {
            f: {"sha256": sha256_file(staging / f), "bytes": (staging / f).stat().st_size}
            for f in ("model.onnx", "text.onnx", vocab_name)
        }
        (staging / "backbone.toml").write_text(
            _manifest_toml(name, arch, pretrained, embed_dim, settings, context, logit_scale,
                           vocab_name, source, files, variable),
            encoding="utf-8",
        )  # fmt: skip
        final = out / name
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        staging = final
        return ExportReport(final, name, image_diff, text_diff, len(pictures), len(CHECK_TEXTS))
    finally:
        if staging.name.startswith(".export-"):
            shutil.rmtree(staging, ignore_errors=True)


def _attention(attn: Any, x: Any, mask: Any) -> Any:
    """What ``attn(x, x, x, attn_mask=mask)`` computes (batch first), written so that no
    traced size is baked into the graph: the sequence length stays dynamic in ONNX."""
    import torch

    heads = attn.num_heads
    q, k, v = torch.nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))  # type: ignore[no-untyped-call]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]) + mask
    out = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
    return attn.out_proj(out)


def _manifest_toml(
    name: str,
    arch: str,
    pretrained: str | None,
    dim: int,
    p: Any,
    context: int,
    logit_scale: float,
    vocab: str,
    source: dict[str, str],
    files: dict[str, dict[str, Any]],
    variable: bool,
) -> str:
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        "# Made by 'phototag models export clip'; the [files] table is checked on every load.",
        f"name = {q(name)}",
        'kind = "zero-shot"',
        f"description = {q(f'OpenCLIP {arch}, ' + (pretrained or 'random weights') + f', {p.crop} px, {dim}-d')}",
        # OpenCLIP's code and OpenAI's/LAION's released CLIP weights are MIT licensed.
        'license = "MIT"',
        f"embedding_dim = {dim}",
        "",
        "[source]",
        *(f"{k} = {q(v)}" for k, v in source.items()),
        "",
        "[preprocess]",
        "# OpenCLIP's eval transform: Resize(shortest side) + CenterCrop, as torchvision sizes them",
        f"resize = {p.resize}",
        f"crop = {p.crop}",
        f"resample = {q(p.resample)}",
        'convention = "torchvision"',
        f"mean = {list(p.mean)}",
        f"std = {list(p.std)}",
        "",
        "[outputs]",
        'input = "image"',
        'embedding = "embedding"',
        "",
        "[text]",
        'model = "text.onnx"',
        'input = "text"',
        'output = "embedding"',
        f"vocab = {q(vocab)}",
        f"context_length = {context}",
        f"logit_scale = {logit_scale!r}",
        "# Causal, read at the end-of-text token: runs on the tokens up to it, not all 77.",
        f"variable_length = {'true' if variable else 'false'}",
    ]
    for fname, spec in files.items():
        lines += [
            "",
            f"[files.{q(fname)}]",
            f"sha256 = {q(spec['sha256'])}",
            f"bytes = {spec['bytes']}",
        ]
    return "\n".join(lines) + "\n"
