"""Zero-shot backbones on this machine, measured in ONE run (ratios are what to quote).

    python bench/zeroshot_speed.py [--arch ViT-B-32] [--n 100000]

Needs the clip extra (torch, open_clip_torch): exports ARCH with random weights (the cost
of a network does not depend on its weights), then measures
  * image encoder vs the embedded EfficientNet-Lite0, images/s on the same batches;
  * text encoder, prompts/s, and building every shipped vocabulary cold vs from the cache;
  * `phototag search` (text encoding + exact cosine search) over N stored 512-d embeddings;
  * JPEG draft decoding (what a scan does) vs a full decode (what OpenCLIP does) of a
    12 MP photo: decode time, and how far apart the 224 x 224 model inputs are.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phototag.media.imaging import decode, preprocess  # noqa: E402
from phototag.models.backbones import Backbone  # noqa: E402
from phototag.models.catalog import Catalog  # noqa: E402
from phototag.models.export_clip import export_clip  # noqa: E402
from phototag.models.manifest import load_backbone_manifest  # noqa: E402
from phototag.models.zeroshot import TextEncoder, class_embeddings, load_vocabulary  # noqa: E402


def rate(fn, items: int, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return items / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    from PIL import Image
    from skimage import data

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or '?'}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PHOTOTAG_CACHE"] = str(Path(tmp) / "cache")
        t = time.perf_counter()
        report = export_clip(args.arch, None, Path(tmp) / "w")
        print(f"export {args.arch} (random weights) + check: {time.perf_counter() - t:.1f} s, "
              f"ONNX vs PyTorch max |diff| image {report.image_max_diff:.1e}, "
              f"text {report.text_max_diff:.1e}")  # fmt: skip
        clip_m = load_backbone_manifest(report.folder)
        lite_m = Catalog.discover().backbone("efficientnet-lite0")
        photos = [Image.fromarray(getattr(data, n)()).convert("RGB")
                  for n in ("astronaut", "coffee", "chelsea", "rocket")]  # fmt: skip
        batch = [photos[i % 4] for i in range(args.batch)]
        clip, lite = Backbone(clip_m, verify=False), Backbone(lite_m, verify=False)
        xc = np.stack([preprocess(p, clip_m.preprocess) for p in batch])
        xl = np.stack([preprocess(p, lite_m.preprocess) for p in batch])
        r_clip = rate(lambda: clip.predict(xc), len(batch))
        r_lite = rate(lambda: lite.predict(xl), len(batch))
        print(f"image encoder: {args.arch} {r_clip:.1f} images/s, EfficientNet-Lite0 "
              f"{r_lite:.1f} images/s -> {args.arch} costs {r_lite / r_clip:.1f}x per photo")  # fmt: skip

        enc = TextEncoder(clip_m, verify=False)
        prompts = [f"a photo of thing number {i}." for i in range(256)]
        print(f"text encoder: {rate(lambda: enc.encode(prompts), len(prompts), 2):.0f} prompts/s")
        vocabs = [
            load_vocabulary(f) for f in sorted((ROOT / "weights/vocabularies").glob("*.toml"))
        ]
        n_prompts = sum(len(t) for v in vocabs for t in v.texts())
        t = time.perf_counter()
        for v in vocabs:
            class_embeddings(enc, v)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        for v in vocabs:
            class_embeddings(enc, v)
        warm = time.perf_counter() - t
        print(f"all {len(vocabs)} vocabularies ({n_prompts} prompts): cold {cold:.1f} s, "
              f"cached {warm * 1000:.0f} ms -> {cold / warm:.0f}x")  # fmt: skip

        # Search over N stored embeddings of this backbone's size.
        sys.path.insert(0, str(ROOT / "bench"))
        import similar_speed

        similar_speed.BACKBONE = clip_m.name
        index_path = ROOT / "bench" / "out" / f"zeroshot-{args.n}-{clip_m.embedding_dim}.sqlite"
        index_path.parent.mkdir(exist_ok=True)
        similar_speed.build(index_path, args.n, clip_m.embedding_dim)
        from phototag.index import Index
        from phototag.library.search import by_text

        catalog = Catalog.discover([Path(tmp) / "w"])
        with Index.open(index_path) as idx:
            times = []
            for q in ("kids playing on the beach at sunset", "a wedding ceremony", "curry rice"):
                t = time.perf_counter()
                by_text(idx, q, catalog=catalog, n=20)
                times.append(time.perf_counter() - t)
        print(f"search over {args.n} photos: median {sorted(times)[1]:.2f} s")

    # Draft decoding vs full decoding of a 12 MP JPEG.
    big = Image.fromarray(data.astronaut()).resize((4000, 3000), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=92)
    jpeg = buf.getvalue()
    r_draft = rate(lambda: decode(jpeg, min_side=224, max_pixels=10**9), 1)
    r_full = rate(lambda: decode(jpeg, min_side=10**6, max_pixels=10**9), 1)
    a = preprocess(decode(jpeg, min_side=224, max_pixels=10**9).image, clip_m.preprocess)
    b = preprocess(decode(jpeg, min_side=10**6, max_pixels=10**9).image, clip_m.preprocess)
    std = np.asarray(clip_m.preprocess.std, np.float32)[:, None, None]
    levels = np.abs(a - b) * std  # back to 0-255 grey levels
    print(f"12 MP JPEG: draft decode {r_draft:.1f}/s vs full {r_full:.1f}/s "
          f"({r_draft / r_full:.1f}x); model inputs differ by {levels.mean():.2f} grey levels "
          f"on average (max {levels.max():.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
