"""Similar-photo search over a large index: query time and memory, in ONE run.

    python bench/similar_speed.py [--n 100000]

Builds (once, cached under bench/out/) an index of N photos with random 1280-d float16
embeddings (a realistic size for EfficientNet-Lite0; the values do not matter to the
cost), then times `similar` by embedding (exact cosine search in chunks) and the peak
memory the process gained while searching, and the near-duplicate grouping (LSH).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phototag.index import Index  # noqa: E402
from phototag.library.search import by_embedding, duplicate_groups  # noqa: E402

BACKBONE = "efficientnet-lite0"


def build(path: Path, n: int, dim: int = 1280) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(0)
    with Index.open(path) as idx:
        for start in range(0, n, 10_000):
            with idx.transaction():
                rows = []
                vecs = rng.standard_normal((min(10_000, n - start), dim)).astype("<f2")
                for i in range(start, start + len(vecs)):
                    rows.append(
                        (
                            f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg".encode(),
                            1,
                            1,
                            f"{i:032x}",
                            time.time(),
                        )
                    )
                idx.conn.executemany(
                    "INSERT INTO photos (path, size, mtime_ns, hash, scanned_at) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                first = idx.conn.execute("SELECT MAX(id) FROM photos").fetchone()[0] - len(rows) + 1
                idx.conn.executemany(
                    "INSERT INTO embeddings (photo_id, backbone, fingerprint, vector) VALUES (?, ?, ?, ?)",
                    [(first + k, BACKBONE, "bench", v.tobytes()) for k, v in enumerate(vecs)],
                )
            print(f"built {min(start + 10_000, n)}/{n}", file=sys.stderr)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=5)
    args = ap.parse_args()
    path = ROOT / "bench" / "out" / f"similar-{args.n}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    build(path, args.n)
    rng = np.random.default_rng(1)
    with Index.open(path) as idx:
        base = peak_rss_mib()
        by_embedding(idx, rng.standard_normal(1280), BACKBONE, n=20)  # warm the page cache
        times = []
        for _ in range(args.queries):
            t = time.perf_counter()
            found = by_embedding(idx, rng.standard_normal(1280), BACKBONE, n=20)
            times.append(time.perf_counter() - t)
            assert len(found) == 20
        grew = peak_rss_mib() - base
        t = time.perf_counter()
        groups = duplicate_groups(idx, BACKBONE)
        dup_s = time.perf_counter() - t
        dup_grew = peak_rss_mib() - base
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.machine()}), {platform.system()} {platform.release()}"
    )
    print(
        f"index: {args.n} photos, 1280-d float16 embeddings ({path.stat().st_size / 2**20:.0f} MiB)"
    )
    print(
        f"  similar --by embedding: median {np.median(times):.3f} s, max {max(times):.3f} s over {args.queries} queries"
    )
    print(
        f"  peak memory growth while searching: {grew:.0f} MiB (chunks of 8192 rows; the index file is {path.stat().st_size / 2**20:.0f} MiB)"
    )
    print(
        f"  duplicates (LSH, 16 tables x 12 bits): {dup_s:.1f} s, {len(groups)} groups, "
        f"peak memory growth {dup_grew:.0f} MiB"
    )


if __name__ == "__main__":
    main()
