"""What faces cost a default scan on the CPU, in ONE run.

    python bench/face_speed.py [--n 40] [--workers N]

Builds (once, cached under bench/out/faces/) a library of 12-megapixel JPEGs from real photos:
scikit-image's astronaut and cameraman, a pair of them side by side, the coffee cup and the cat
(upscaled, shifted and given sensor-like grain, so no two files are alike), then measures in
this one process:

  classifier  EfficientNet-Lite0 on preprocessed batches of 16: ms per photo
  faces       the face step (BlazeFace, Face Mesh's flag, FaceRes) on the decoded photos: ms per
              photo, as decoded for the classifier (short side >= 256) and for faces (>= 512)
  fixed       what a scan with faces pays once: opening the face models, importing scikit-learn
  scan        phototag's whole default scan into a fresh index: --no-faces, then with faces
              (decoded at 512, the default), then with faces on the classifier's decode (256);
              with few photos the fixed costs weigh on these figures

and prints images/s of each scan and the ratios. Absolute figures drift on a shared machine;
the ratios, measured minutes apart in one process, are what to compare.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from phototag.config import DEFAULT_MAX_PIXELS, Device  # noqa: E402
from phototag.faces.step import FaceStep  # noqa: E402
from phototag.index import Index  # noqa: E402
from phototag.media.imaging import decode, preprocess  # noqa: E402
from phototag.models.backbones import Backbone  # noqa: E402
from phototag.models.catalog import Catalog  # noqa: E402
from phototag.tagging.scan import Finished, ScanOptions, scan  # noqa: E402

SIZE = (4000, 3000)


def bases() -> list[np.ndarray]:
    from skimage import data

    def rgb(a: np.ndarray) -> np.ndarray:
        return np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]

    astronaut, camera = rgb(data.astronaut()), rgb(data.camera())
    pair = np.concatenate([astronaut[:, 100:400], camera[:, 100:400]], axis=1)
    return [astronaut, camera, pair, rgb(data.coffee()), rgb(data.chelsea())]


def build_library(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"IMG_{i:04d}.jpg" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(0)
    big = [
        np.asarray(Image.fromarray(b).resize(SIZE, Image.Resampling.BICUBIC), np.int16)
        for b in bases()
    ]
    for i, p in enumerate(paths):
        if p.exists():
            continue
        base = np.roll(big[i % len(big)], shift=(i * 7) % 200, axis=1)
        noise = rng.integers(-6, 7, size=base.shape, dtype=np.int16)
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(p, "JPEG", quality=90)
    return paths


def timed_scan(paths: list[Path], workers: int | None, **kw: object) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp, Index.open(Path(tmp) / "i.sqlite") as idx:
        opts = ScanOptions(device=Device.CPU, workers=workers, **kw)  # type: ignore[arg-type]
        t = time.perf_counter()
        report = next(
            ev.report for ev in scan([paths[0].parent], idx, opts) if isinstance(ev, Finished)
        )
        secs = time.perf_counter() - t
        assert report.tagged == len(paths), report.as_json()
        return len(paths) / secs, report.faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    paths = build_library(ROOT / "bench" / "out" / "faces", args.n)
    catalog = Catalog.discover()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}; "
          f"{len(paths)} JPEGs of {SIZE[0]}x{SIZE[1]}")  # fmt: skip

    # Per photo: the classifier against the face step, on the same decoded photos.
    data = [p.read_bytes() for p in paths]
    backbone = Backbone(catalog.backbone("efficientnet-lite0"), device=Device.CPU)
    pre = backbone.manifest.preprocess
    small = [decode(d, min_side=256, max_pixels=DEFAULT_MAX_PIXELS) for d in data]
    large = [decode(d, min_side=512, max_pixels=DEFAULT_MAX_PIXELS) for d in data]
    batch = np.stack([preprocess(p.image, pre) for p in small])
    backbone.predict(batch[:16])
    t = time.perf_counter()
    for i in range(0, len(batch), 16):
        backbone.predict(batch[i : i + 16])
    classifier_ms = (time.perf_counter() - t) / len(batch) * 1000
    step = FaceStep(catalog, Device.CPU)
    step.load()
    costs = {}
    for label, photos in (("256", small), ("512", large)):
        images = [np.asarray(p.image) for p in photos]
        step.analyze(images[:2])
        t = time.perf_counter()
        found = sum(
            len(f) for i in range(0, len(images), 16) for f in step.analyze(images[i : i + 16])
        )
        costs[label] = ((time.perf_counter() - t) / len(images) * 1000, found)
    t = time.perf_counter()
    for d in data:
        decode(d, min_side=256, max_pixels=DEFAULT_MAX_PIXELS)
    dec256 = (time.perf_counter() - t) / len(data) * 1000
    t = time.perf_counter()
    for d in data:
        decode(d, min_side=512, max_pixels=DEFAULT_MAX_PIXELS)
    dec512 = (time.perf_counter() - t) / len(data) * 1000
    print(f"classifier inference    {classifier_ms:6.1f} ms/photo")
    for label, (ms, found) in costs.items():
        print(
            f"faces on a {label} decode  {ms:6.1f} ms/photo ({found} faces; {ms / classifier_ms:.1f}x the classifier)"
        )
    print(f"JPEG decode at 256      {dec256:6.1f} ms/photo;  at 512 {dec512:6.1f} ms/photo")

    # Fixed costs of a scan with faces, paid once per run whatever the number of photos.
    import subprocess

    t = time.perf_counter()
    FaceStep(catalog, Device.CPU).load()
    load_s = time.perf_counter() - t
    code = "import time; t = time.perf_counter(); import sklearn.cluster; print(time.perf_counter() - t)"
    sklearn_s = float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    print(f"fixed per scan: face models load {load_s:.2f} s, scikit-learn import {sklearn_s:.2f} s "
          "(grouping; in a fresh process)")  # fmt: skip

    off, _ = timed_scan(paths, args.workers, faces=False)
    on, faces_on = timed_scan(paths, args.workers, faces=True)
    import phototag.faces.step as step_module

    default_side = step_module.FaceStep.decode_side
    step_module.FaceStep.decode_side = 1  # type: ignore[misc]  # the classifier's own decode
    try:
        on256, faces256 = timed_scan(paths, args.workers, faces=True)
    finally:
        step_module.FaceStep.decode_side = default_side  # type: ignore[misc]
    print(f"scan --no-faces         {off:6.2f} images/s")
    print(f"scan with faces (512)   {on:6.2f} images/s  ({on / off:.2f}x; {faces_on} faces)")
    print(f"scan with faces (256)   {on256:6.2f} images/s  ({on256 / off:.2f}x; {faces256} faces)")


if __name__ == "__main__":
    main()
