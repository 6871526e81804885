"""A scan with a new --threshold: rescoring stored embeddings vs decoding again, in ONE run.

    python bench/rethreshold_speed.py [--n 200] [--side 2000]

Writes N real photos (scikit-image samples, resized to SIDE px on the long side, JPEG q90),
scans them once with the defaults, then times, on copies of that index:
  - `scan --threshold 0.6` as phototag does it now: unchanged photos are rescored from their
    stored embeddings (issue 14), nothing decoded;
  - the same photos decoded and tagged again, as a scan with a new threshold used to do
    (measured as a scan into an empty index: the same decode + inference work).
Prints both times and their ratio, measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phototag.config import Device  # noqa: E402
from phototag.index import Index  # noqa: E402
from phototag.tagging.scan import ScanOptions, ScanReport, scan  # noqa: E402


def make_photos(folder: Path, n: int, side: int) -> None:
    from PIL import Image
    from skimage import data

    samples = [data.coffee(), data.chelsea(), data.astronaut(), data.rocket()]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.fromarray(samples[i % len(samples)])
        scale = side / max(im.size)
        # A different size per photo: different content, so nothing is reused by hash.
        size = (int(im.width * scale) - i % 97, int(im.height * scale) - i % 89)
        im.resize(size, Image.Resampling.BILINEAR).save(folder / f"p{i:05d}.jpg", quality=90)


def timed(index: Path, lib: Path, options: ScanOptions) -> tuple[float, ScanReport]:
    started = time.perf_counter()
    with Index.open(index) as idx:
        report = None
        for ev in scan([lib], idx, options):
            report = getattr(ev, "report", report)
    assert report is not None
    return time.perf_counter() - started, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--side", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lib, base = Path(tmp) / "lib", Path(tmp) / "base.sqlite"
        make_photos(lib, args.n, args.side)
        timed(base, lib, ScanOptions(device=Device.CPU))
        shutil.copy(base, Path(tmp) / "a.sqlite")
        rescore_s, rescored = timed(
            Path(tmp) / "a.sqlite", lib, ScanOptions(device=Device.CPU, threshold=0.6)
        )
        decode_s, decoded = timed(
            Path(tmp) / "b.sqlite", lib, ScanOptions(device=Device.CPU, threshold=0.6)
        )
    assert rescored.rescored == args.n and rescored.decoded == 0, rescored
    assert decoded.decoded == args.n, decoded
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.machine()}), {platform.system()} {platform.release()}"
    )
    print(
        f"{args.n} photos, {args.side} px on the long side, default recognizers, threshold 0.25 -> 0.6"
    )
    print(
        f"  rescored from stored embeddings: {rescore_s:.2f} s ({args.n / rescore_s:,.0f} photos/s)"
    )
    print(
        f"  decoded and tagged again:        {decode_s:.2f} s ({args.n / decode_s:,.1f} photos/s)"
    )
    print(f"  ratio: {decode_s / rescore_s:.0f}x")


if __name__ == "__main__":
    main()
