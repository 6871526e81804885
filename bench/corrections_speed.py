"""What corrections cost the queries that apply them (issue 13, item 6), in ONE run.

    python bench/corrections_speed.py [--n 20000] [--corrected 1000]

Builds an index of N photos with 6 tags each from two recognizers (rows inserted directly,
no model), then times, without corrections and with ``--corrected`` photos corrected (one
tag added, one term removed): ``tags`` (corrected_counts against the index's own GROUP BY)
and an album query (run_query). Prints seconds and the ratio with/without.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phototag.index import Index  # noqa: E402
from phototag.library.corrections import corrected_counts  # noqa: E402
from phototag.library.query import TagQuery, run_query  # noqa: E402

PATHS = [f"group{g}/tag{t}" for g in range(10) for t in range(20)]


def build(idx: Index, n: int) -> None:
    rng = random.Random(0)
    with idx.transaction():
        idx.conn.executemany(
            "INSERT INTO photos (id, path, size, mtime_ns, hash, scanned_at) VALUES (?, ?, 1, ?, ?, 0)",
            [(i, f"/lib/{i:07d}.jpg".encode(), i, f"h{i}") for i in range(1, n + 1)],
        )
        rows = []
        for i in range(1, n + 1):
            for rec in ("a", "b"):
                for p in rng.sample(PATHS, 3):
                    rows.append((i, rec, p, p.rsplit("/", 1)[-1], rng.random()))
        idx.conn.executemany("INSERT OR IGNORE INTO tags VALUES (?, ?, ?, ?, ?)", rows)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--corrected", type=int, default=1_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Index.open(Path(tmp) / "i.sqlite") as idx:
        build(idx, args.n)
        query = TagQuery(tags=("tag7",))
        plain_sql = timed(lambda: idx.tag_counts())
        plain_counts = timed(lambda: corrected_counts(idx))
        plain_album = timed(lambda: run_query(idx, query))
        rng = random.Random(1)
        with idx.transaction():
            for i in rng.sample(range(1, args.n + 1), args.corrected):
                idx.correct(f"h{i}", "user/Grandma", "add")
                idx.correct(f"h{i}", rng.choice(PATHS).rsplit("/", 1)[-1], "remove")
        counts = timed(lambda: corrected_counts(idx))
        album = timed(lambda: run_query(idx, query))
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.machine()}), {platform.system()} {platform.release()}"
    )
    print(f"{args.n} photos, 6 tags each; {args.corrected} of them corrected (+1 tag, -1 term)")
    print(f"  tags, index GROUP BY only:              {plain_sql:.3f} s")
    print(f"  tags, no corrections:                   {plain_counts:.3f} s")
    print(
        f"  tags, with corrections:                 {counts:.3f} s  ({counts / plain_counts:.1f}x)"
    )
    print(f"  album query, no corrections:            {plain_album:.3f} s")
    print(f"  album query, with corrections:          {album:.3f} s  ({album / plain_album:.2f}x)")


if __name__ == "__main__":
    main()
