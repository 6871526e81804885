"""Retagging stored embeddings: photos/s for `phototag retag`, in ONE run, no decoding.

    python bench/retag_speed.py [--n 100000]

Reuses (or builds) the index of bench/similar_speed.py: N photos with 1280-d float16
embeddings, copies it, and times `retag` with the shipped recognizers (their scores come
from the classifier head applied to the stored embeddings) twice: the first run writes
every photo's tags, the second finds nothing changed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from similar_speed import build  # noqa: E402

from phototag.index import Index  # noqa: E402
from phototag.tagging.retag import retag  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("-m", "--model", action="append", default=None)
    args = ap.parse_args()
    source = ROOT / "bench" / "out" / f"similar-{args.n}.sqlite"
    source.parent.mkdir(parents=True, exist_ok=True)
    build(source, args.n)
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        copy = Path(tmp) / "i.sqlite"
        shutil.copy(source, copy)
        with Index.open(copy) as idx:
            first = retag(idx, args.model)
            second = retag(idx, args.model)
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.machine()}), {platform.system()} {platform.release()}"
    )
    print(f"{first.photos} stored embeddings, recognizers: {', '.join(first.recognizers)}")
    print(
        f"  first retag (writes every photo's tags): {first.seconds:.1f} s, {first.photos / first.seconds:,.0f} photos/s"
    )
    print(
        f"  second retag (nothing changed):          {second.seconds:.1f} s, {second.photos / second.seconds:,.0f} photos/s"
    )


if __name__ == "__main__":
    main()
