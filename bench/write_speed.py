"""Keyword writes: files/s for sidecar mode, embed mode (one exiftool -stay_open process),
and the baseline of one exiftool process per file -- in ONE run, on 12 MP JPEGs.

    python bench/write_speed.py [--n 50]

Uses the library bench/scan_speed.py builds (bench/out/library-200; built if missing),
copies N photos into a temporary folder three times (one per method), gives each the
same tags in a fresh index, and times each method over the N files.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scan_speed import build_library  # noqa: E402

from phototag.config import WriteMode, WriteSettings  # noqa: E402
from phototag.index import Index  # noqa: E402
from phototag.index.store import PhotoRecord  # noqa: E402
from phototag.metadata.write import Wrote, write_tags  # noqa: E402
from phototag.models.recognizers import Candidate  # noqa: E402

TAGS = [Candidate("seashore", 0.9, "scene/nature/seashore"), Candidate("food", 0.8, "food"),
        Candidate("espresso", 0.7, "food/drink/espresso")]  # fmt: skip


def prepare(sources: list[Path], folder: Path, idx: Index) -> list[Path]:
    folder.mkdir()
    photos = []
    with idx.transaction():
        for src in sources:
            dst = folder / src.name
            shutil.copy2(src, dst)
            pid = idx.upsert_photo(PhotoRecord(dst, 0, 0, src.name, 4000, 3000, None))
            idx.set_results(pid, "demo", "fp", TAGS)
            photos.append(dst)
    return photos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args()
    sources = build_library(ROOT / "bench" / "out" / "library-200", 200)[: args.n]
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        with Index.open(t / "i.sqlite") as idx:
            for name, settings in (
                ("sidecar", WriteSettings()),
                ("embed (stay_open)", WriteSettings(mode=WriteMode.EMBED)),
            ):
                folder = t / name.split()[0]
                prepare(sources, folder, idx)
                start = time.perf_counter()
                events = list(write_tags(idx, [folder], settings))
                figures[name] = len(events) / (time.perf_counter() - start)
                assert all(isinstance(e, Wrote) for e in events), events[:3]
        folder = t / "per-file"
        folder.mkdir()
        for src in sources:
            shutil.copy2(src, folder / src.name)
        start = time.perf_counter()
        for p in sorted(folder.iterdir()):
            args_ = ["exiftool", "-q", "-P", "-overwrite_original"]
            for c in TAGS:
                args_ += [f"-XMP-dc:Subject={c.tag}", f"-XMP-lr:HierarchicalSubject=phototag|{c.path.replace('/', '|')}",
                          f"-XMP-digiKam:TagsList=phototag/{c.path}"]  # fmt: skip
            subprocess.run([*args_, str(p)], check=True)
        figures["exiftool per file"] = args.n / (time.perf_counter() - start)
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.machine()}), {platform.system()} {platform.release()}"
    )
    print(
        f"{args.n} JPEGs of 12 MP, 3 tags in 3 fields each (embed mode also reads each file first)"
    )
    for k, v in figures.items():
        print(f"  {k:<20} {v:8.1f} files/s")
    print(
        f"embed (stay_open) / exiftool per file = {figures['embed (stay_open)'] / figures['exiftool per file']:.1f}x"
    )


if __name__ == "__main__":
    main()
