"""Photographers' formats, in ONE run: RAW, HEIC against JPEG, and videos.

    python bench/formats.py [--n 6] [--clips 3] [--threads 1]

Builds (once, cached under bench/out/formats/) files made from real photos (scikit-image's
samples, upscaled to 12 MP with sensor-like noise so no two are alike):

  RAW   12 MP DNGs (RGGB mosaic, 12 bits) with a full-size JPEG preview put in by exiftool
  HEIC  12 MP HEICs (4032 x 3024) with the 320 x 240 thumbnail an iPhone stores, the same
        photos without one (what phototag had to do before: a full HEVC decode), and the
        same photos as 12 MP JPEGs (quality 92)
  video 10 s 1080p H.264 MP4 clips at 30 fps, a key frame a second (a pan across a photo)

and measures, one thread, per file: read + hash + decode + preprocess (everything a scan does
before the model), in interleaved rounds (median of 3), and then the whole scan (walk,
decode, model, index; --threads decode threads) for each set into a fresh index. It prints
files/s and the ratios that matter:

  RAW    preview via rawpy (LibRaw, in process) / preview via exiftool -stay_open
         (-b -PreviewImage, then the same JPEG decode) / half-size LibRaw decode
  HEIC   thumbnail / full decode / JPEG (goal: HEIC within 2x of JPEG)
  video  clips/s and where a clip's time goes (hash, open + seek + decode, model)
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from PIL import Image  # noqa: E402

from phototag.config import DEFAULT_MAX_PIXELS, Device  # noqa: E402
from phototag.index import Index  # noqa: E402
from phototag.media.kinds import FileKind, classify  # noqa: E402
from phototag.models.catalog import Catalog  # noqa: E402
from phototag.tagging.loader import make_loader  # noqa: E402
from phototag.tagging.scan import Finished, ScanOptions, scan  # noqa: E402
from phototag.tagging.walk import FileEntry  # noqa: E402

SAMPLES = ("coffee", "chelsea", "astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")
SIZE = (4032, 3024)  # 12 MP, 4:3 as a phone's


def photo(i: int) -> np.ndarray:
    from conftest import sample

    rng = np.random.default_rng(i)
    a = Image.fromarray(sample(SAMPLES[i % len(SAMPLES)])).resize(SIZE, Image.Resampling.BICUBIC)
    noisy = np.asarray(a, np.float32) + rng.normal(0, 4, (SIZE[1], SIZE[0], 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def build(out: Path, n: int, clips: int) -> dict[str, list[Path]]:
    from media_files import make_dng, make_heic, make_video, pan_frames

    sets: dict[str, list[Path]] = {
        k: [] for k in ("raw", "heic-thumb", "heic-full", "jpeg", "video")
    }
    for i in range(n):
        paths = {
            "raw": out / "raw" / f"IMG_{i:04d}.dng",
            "heic-thumb": out / "heic-thumb" / f"IMG_{i:04d}.heic",
            "heic-full": out / "heic-full" / f"IMG_{i:04d}.heic",
            "jpeg": out / "jpeg" / f"IMG_{i:04d}.jpg",
        }
        for k, p in paths.items():
            sets[k].append(p)
        if all(p.exists() for p in paths.values()):
            continue
        a = photo(i)
        make_dng(paths["raw"], a)
        # x265's ultrafast preset: minutes less to build; it also decodes somewhat faster
        # than a phone's HEIC, so the full-decode figure flatters the "before".
        make_heic(paths["heic-thumb"], a, thumbnail=320, quality=80, preset="ultrafast")
        make_heic(paths["heic-full"], a, thumbnail=None, quality=80, preset="ultrafast")
        paths["jpeg"].parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(paths["jpeg"], "JPEG", quality=92)
    for i in range(clips):
        p = out / "video" / f"clip_{i:02d}.mp4"
        sets["video"].append(p)
        if not p.exists():
            from conftest import sample

            frames = pan_frames(sample(SAMPLES[i % len(SAMPLES)]), 300, (1920, 1080))
            make_video(p, frames, fps=30, gop=30, preset="veryfast")  # a key frame a second
    return sets


def compare(
    methods: dict[str, tuple[Callable[[Path], object], list[Path]]], rounds: int = 3
) -> dict[str, float]:
    """Files/s of each method, measured in interleaved rounds (A B C, A B C, ...) so that
    the other jobs of a shared machine weigh on all of them alike; the median round counts."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for fn, paths in methods.values():
        fn(paths[0])  # warm: libraries loaded, caches primed
    for _ in range(rounds):
        for name, (fn, paths) in methods.items():
            t = time.perf_counter()
            for p in paths:
                fn(p)
            times[name].append(len(paths) / (time.perf_counter() - t))
    return {name: float(np.median(v)) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="scan decode threads")
    args = ap.parse_args()
    out = ROOT / "bench" / "out" / "formats"
    t0 = time.perf_counter()
    sets = build(out, args.n, args.clips)
    print(f"built/checked files in {time.perf_counter() - t0:.0f} s")

    catalog = Catalog.discover()
    manifest = catalog.backbone("efficientnet-lite0")
    load = make_loader({manifest.name: manifest.preprocess}, (), DEFAULT_MAX_PIXELS)

    def loaded(p: Path) -> None:
        r = load(FileEntry(p, 0, 0, kind=classify(p.name)))
        assert getattr(r, "inputs", None) is not None, r

    rows: dict[str, float] = {}
    # -- RAW: three ways to the pixels a model needs -------------------------------------
    from phototag.media.raw import decode_raw

    def raw_preview(p: Path) -> None:
        decode_raw(p.read_bytes(), min_side=256, max_pixels=DEFAULT_MAX_PIXELS)

    def raw_libraw(p: Path) -> None:
        decode_raw(p.read_bytes(), min_side=256, max_pixels=DEFAULT_MAX_PIXELS, allow_preview=False)

    import exiftool

    with exiftool.ExifTool() as et:

        def raw_exiftool(p: Path) -> None:
            p.read_bytes()  # read as phototag reads every file (it hashes the bytes)
            jpg = et.execute(
                "-b",  # binary output: the preview's bytes on stdout
                "-PreviewImage",  # DNG's IFD0 preview (JpgFromRaw / OtherImage on others)
                str(p),
                raw_bytes=True,
            )
            im = Image.open(io.BytesIO(jpg))
            im.draft("RGB", (256, 256))
            im.load()

        rows.update(
            compare({
                "raw: preview via rawpy (LibRaw)": (raw_preview, sets["raw"]),
                "raw: preview via exiftool -stay_open": (raw_exiftool, sets["raw"]),
                "raw: half-size LibRaw decode": (raw_libraw, sets["raw"]),
                "raw: loader (read, hash, preview, preprocess)": (loaded, sets["raw"]),
            })
        )  # fmt: skip
    # -- HEIC against JPEG ---------------------------------------------------------------
    rows.update(
        compare({
            "heic: loader, 320x240 thumbnail": (loaded, sets["heic-thumb"]),
            "heic: loader, full decode (before)": (loaded, sets["heic-full"]),
            "jpeg: loader, draft decode": (loaded, sets["jpeg"]),
        })
    )  # fmt: skip
    # -- video ---------------------------------------------------------------------------
    from phototag.media.video import decode_video
    from phototag.tagging.loader import hash_file

    rows.update(
        compare({
            "video: hash only (SHA-256, streamed)": (
                lambda p: hash_file(FileEntry(p, 0, 0, kind=FileKind.VIDEO)), sets["video"]),
            "video: open + seek + decode key frames": (
                lambda p: decode_video(p, min_side=256, max_pixels=DEFAULT_MAX_PIXELS), sets["video"]),
            "video: loader (hash, frames, preprocess)": (loaded, sets["video"]),
        })
    )  # fmt: skip

    # -- whole scans, each set into a fresh index ------------------------------------------
    opts = ScanOptions(device=Device.CPU, workers=args.threads, batch_size=16)
    for name in ("raw", "heic-thumb", "heic-full", "jpeg", "video"):
        with tempfile.TemporaryDirectory() as tmp, Index.open(Path(tmp) / "i.sqlite") as idx:
            t = time.perf_counter()
            events = list(scan([out / name], idx, opts, catalog))
            secs = time.perf_counter() - t
            last = events[-1]
            assert isinstance(last, Finished) and last.report.tagged == len(sets[name]), last
            rows[f"scan: {name}"] = len(sets[name]) / secs

    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
        f"Python {platform.python_version()}; {args.n} photos, {args.clips} clips of 10 s 1080p; "
        f"scan with {args.threads} decode thread(s)"
    )
    for k, v in rows.items():
        unit = "clips/s" if k.startswith(("video", "scan: video")) else "files/s"
        print(f"  {k:48s} {v:8.2f} {unit}")
    r = rows
    print("\nratios (same run):")
    print(
        f"  RAW preview rawpy / exiftool          {r['raw: preview via rawpy (LibRaw)'] / r['raw: preview via exiftool -stay_open']:.1f}x"
    )
    print(
        f"  RAW preview rawpy / half-size LibRaw   {r['raw: preview via rawpy (LibRaw)'] / r['raw: half-size LibRaw decode']:.1f}x"
    )
    print(
        f"  HEIC thumbnail / full decode (loader)  {r['heic: loader, 320x240 thumbnail'] / r['heic: loader, full decode (before)']:.1f}x"
    )
    print(
        f"  JPEG / HEIC thumbnail (loader)         {r['jpeg: loader, draft decode'] / r['heic: loader, 320x240 thumbnail']:.2f}x  (goal: <= 2)"
    )
    print(
        f"  JPEG / HEIC full decode (loader)       {r['jpeg: loader, draft decode'] / r['heic: loader, full decode (before)']:.1f}x"
    )
    print(
        f"  scan JPEG / scan HEIC thumbnail        {r['scan: jpeg'] / r['scan: heic-thumb']:.2f}x"
    )
    print(
        f"  scan HEIC thumbnail / HEIC full        {r['scan: heic-thumb'] / r['scan: heic-full']:.1f}x"
    )


if __name__ == "__main__":
    main()
