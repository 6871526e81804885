"""A million photos: the index and the queries at scale, measured in ONE run.

    python bench/million.py                  # 1,000,000 photos, 100,000 real files
    python bench/million.py --n 50000 --files 5000   # a quick run
    python bench/million.py --only queries --only album   # no rescan

Builds once (cached under bench/out/, reused by later runs):
- a tree of ``--files`` small real JPEGs on disk (the photos a nightly rescan walks), and
- an index of ``--n`` photos made through phototag's own API (Index.upsert_photo,
  set_results, set_embedding, set_detections): the tree's files as a scan would have
  recorded them (same size, mtime, content hash and fingerprints, so a rescan finds them
  unchanged), the rest synthetic: 1280-d EfficientNet-Lite0 embeddings, 512-d CLIP
  embeddings, 5-7 tags per photo from a vocabulary of ~2,000 paths, person boxes on a
  third of them, the face step's result (no faces) as a default scan records it, capture
  dates over 20 years. Nothing is decoded.

Then prints: the nightly rescan of the tree against a bare os.scandir + stat walk of it,
similar (1280-d) and text search (512-d, a fixed query vector: encoding the text is
separate) with and without a folder filter, an album refresh of a 10 % tag (100,000 photos
at 1M), tags and show, the index's size per photo and the time to open it, peak RSS.
Each timing is the median of several runs after one warm-up, unless said otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phototag.config import LinkMode  # noqa: E402
from phototag.faces.analyzer import RECOGNIZER as FACES  # noqa: E402
from phototag.faces.step import FaceStep  # noqa: E402
from phototag.index import Index  # noqa: E402
from phototag.index.store import PhotoRecord  # noqa: E402
from phototag.index.vectors import folder as vectors_folder  # noqa: E402
from phototag.index.vectors import vector_table  # noqa: E402
from phototag.library.albums import build_album  # noqa: E402
from phototag.library.query import TagQuery  # noqa: E402
from phototag.library.search import by_embedding, similar_to  # noqa: E402
from phototag.models.catalog import Catalog  # noqa: E402
from phototag.models.recognizers import Candidate  # noqa: E402
from phototag.tagging.loader import content_hash  # noqa: E402
from phototag.tagging.scan import Finished, ScanOptions, scan  # noqa: E402
from phototag.tagging.tagger import Tagger  # noqa: E402

CLASSIFIER, CLIP = "efficientnet-lite0", "clip-vit-b-32"
SECTIONS = ("rescan", "queries", "album")
BATCH = 5000


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory() -> str:
    """Peak RSS, and what is resident now split into the process's own memory (anonymous)
    and mapped files (the embedding copy: page cache, shared and reclaimable)."""
    fields = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0]) / 1024 if value.strip().endswith("kB") else 0
    except OSError:
        return f"peak RSS {rss_mb():.0f} MiB"
    return (f"peak RSS {rss_mb():.0f} MiB; now {fields.get('RssAnon', 0):.0f} MiB anonymous + "
            f"{fields.get('RssFile', 0):.0f} MiB of mapped files")  # fmt: skip


def median(fn: Callable[[], object], runs: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_tree(tree: Path, files: int) -> None:
    done = tree / ".complete"
    if done.exists():
        return
    from PIL import Image

    rng = np.random.default_rng(1)
    t = time.perf_counter()
    for i in range(files):
        path = tree / f"{2015 + i // 20000}" / f"{(i // 250) % 80:02d}" / f"IMG_{i:06d}.jpg"
        if i % 250 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path, quality=80)
    done.write_text("ok")
    print(f"made {files} files in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def vocabulary(rng: np.random.Generator) -> list[str]:
    paths = [f"imagenet/{g}/class {k}" for g in range(40) for k in range(25)]  # 1000
    paths += [f"scene/{g}/place {k}" for g in range(20) for k in range(20)]  # 400
    paths += [f"animal/{g}/kind {k}" for g in range(10) for k in range(30)]  # 300
    paths += [f"food/{g}/dish {k}" for g in range(10) for k in range(30)]  # 300
    return paths


def build(index_path: Path, tree: Path, n: int, files: int) -> None:
    if index_path.exists():
        return
    tagger = Tagger.resolve(verify=False)  # what a default scan runs
    recognizers = tagger.recognizers
    bfp = tagger.backbone_fingerprints[CLASSIFIER]
    # A default scan also looks for faces: without the face step's result every photo would
    # be decoded again by the first rescan (a photo with no faces records an empty result).
    faces = FaceStep(Catalog.discover())
    fps = tagger.fingerprints
    rng = np.random.default_rng(0)
    vocab = vocabulary(rng)
    beach = "scene/outdoor/beach"  # on exactly 10 % of the photos: the album
    real = sorted(p for p in tree.rglob("*.jpg"))[:files]
    t0 = time.perf_counter()
    idx = Index.open(index_path)
    person = np.array([[0.1, 0.1, 0.5, 0.9, 0.8, 0.0]], np.float32)
    for start in range(0, n, BATCH):
        count = min(BATCH, n - start)
        emb = rng.standard_normal((count, 1280)).astype(np.float32)
        clip = rng.standard_normal((count, 512)).astype(np.float32)
        with idx.transaction():
            for k in range(count):
                i = start + k
                if i < len(real):
                    st = real[i].stat()
                    rec = PhotoRecord(real[i], st.st_size, st.st_mtime_ns,
                                      content_hash(real[i].read_bytes()), 8, 8, None)  # fmt: skip
                else:
                    year = 2005 + (i * 20) // n
                    day = (i // 300) % 365
                    rec = PhotoRecord(Path(f"/photos/{year}/{day:03d}/IMG_{i:07d}.jpg"),
                                      3_000_000, 1_600_000_000 * 10**9 + i, f"{i:032x}", 4000, 3000,
                                      f"{year}-{1 + day // 31:02d}-{1 + day % 28:02d}T12:00:00")  # fmt: skip
                pid = idx.upsert_photo(rec)
                picks = rng.choice(len(vocab), 6, replace=False)
                tags = [Candidate(vocab[j].rsplit("/", 1)[-1], float(rng.uniform(0.1, 1)), vocab[j])
                        for j in picks]  # fmt: skip
                if i % 10 == 0:
                    tags.append(Candidate("beach", 0.9, beach))
                for r in recognizers:
                    mine = [c for c in tags if c.path.split("/", 1)[0] == r.name]
                    idx.set_results(pid, r.name, fps[r.name], mine)
                idx.set_embedding(pid, CLASSIFIER, bfp, emb[k])
                idx.set_embedding(pid, CLIP, "bench", clip[k])
                if i % 3 == 0:
                    idx.set_embedding(pid, "centernet", "bench", np.zeros(0, np.float32))
                    idx.set_detections(pid, "centernet", person, ["person"])
                faces.store(idx, pid, [], rec.path)
        if start % 100_000 == 0:
            print(f"built {start + count}/{n} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    idx.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    idx.close()
    print(f"index built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def bare_walk(root: Path) -> int:
    """os.scandir with stat of every file: the floor for finding what changed."""
    n = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    e.stat(follow_symlinks=False)
                    n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument(
        "--build-only", action="store_true", help="make the tree and index, measure nothing"
    )
    ap.add_argument("--only", action="append", choices=SECTIONS, default=[],
                    help="run only this section (repeatable): rescan, queries (similar, search), "
                         "album (album, tags, show); default: all three")  # fmt: skip
    a = ap.parse_args()
    sections = set(a.only or SECTIONS)
    tree = a.out / f"tree-{a.files}"
    index_path = a.out / f"million-{a.n}-{a.files}.sqlite"
    make_tree(tree, a.files)
    build(index_path, tree, a.n, a.files)
    if a.build_only:
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
          f"Python {platform.python_version()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print(f"index: {a.n:,} photos, of which {a.files:,} real files on disk")

    t = time.perf_counter()
    Index.open(index_path).close()  # applies any migration the index is missing (once)
    print(f"first open (with migrations, if any): {time.perf_counter() - t:.1f} s")
    opened = median(lambda: Index.open(index_path).close())
    size = sum(
        p.stat().st_size for p in index_path.parent.glob(index_path.name + "*") if p.is_file()
    )
    print(f"open the index: {opened * 1000:.1f} ms; size on disk {size / 2**30:.2f} GiB "
          f"= {size / a.n / 1024:.2f} KiB per photo (SQLite, WAL checkpointed)")  # fmt: skip

    idx = Index.open(index_path)
    some = idx.path_of(a.files + (a.n - a.files) // 2)
    assert some is not None
    if "rescan" in sections:
        measure_rescan(idx, a.files, tree, index_path)
    if "queries" in sections:
        measure_queries(idx, index_path, some)
    if "album" in sections:
        measure_album(idx, a.n, a.out, some)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    idx.close()


def measure_rescan(idx: Index, files: int, tree: Path, index_path: Path) -> None:
    """1. Nightly rescan of unchanged files, against a bare scandir + stat walk of the tree."""
    # An index built before the face step was part of a default scan holds no face results
    # for the tree's photos (or, rescanned with faces since, only some): rescanned with faces
    # on, those files would be decoded; then it is measured without the face step.
    stem = os.fsencode(tree)
    with_faces = idx.conn.execute(
        "SELECT count(*) FROM results r JOIN photos p ON p.id = r.photo_id"
        " WHERE r.recognizer = ? AND p.path >= ? AND p.path < ?",
        (FACES, stem + b"/", stem + b"0"),
    ).fetchone()[0] == files  # fmt: skip
    opts = ScanOptions() if with_faces else ScanOptions(faces=False)
    if not with_faces:
        print("note: not every file of the tree has its face result in this index (built before "
              "faces): rescanned without the face step")  # fmt: skip

    def rescan() -> None:
        with Index.open(index_path) as i:
            report = next(e for e in scan([tree], i, opts) if isinstance(e, Finished)).report
        assert report.unchanged == files and report.tagged == 0, report

    def timed(fn: Callable[[], object]) -> tuple[float, float]:
        """Wall and CPU seconds (CPU: every thread of the process)."""
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - wall, time.process_time() - cpu

    t = time.perf_counter()
    rescan()  # the first: checks each photo's results once and marks it complete
    first_s = time.perf_counter() - t
    bare_walk(tree)  # warm-up
    # Interleaved, so that a change in the machine's load weighs on both alike.
    pairs = [(timed(lambda: bare_walk(tree)), timed(rescan)) for _ in range(5)]
    walk_s, walk_cpu = (statistics.median(p[0][k] for p in pairs) for k in (0, 1))
    scan_s, scan_cpu = (statistics.median(p[1][k] for p in pairs) for k in (0, 1))
    print(f"rescan of {files:,} unchanged files: {scan_s:.2f} s; bare scandir+stat walk "
          f"{walk_s:.2f} s (medians of 5 runs, one of each in turn); ratio {scan_s / walk_s:.2f}x "
          f"(goal <= 1.5x; CPU time {scan_cpu:.2f} s against {walk_cpu:.2f} s, "
          f"{scan_cpu / walk_cpu:.2f}x); the first rescan after an upgrade or a change of models "
          f"(each photo's results looked up once): {first_s:.2f} s")  # fmt: skip


def measure_queries(idx: Index, index_path: Path, some: Path) -> None:
    """2. Similar and search."""
    t = time.perf_counter()
    tables = [vector_table(idx, b) for b in (CLASSIFIER, CLIP)]  # made, or opened and mapped
    build_s = time.perf_counter() - t
    vec_size = sum(p.stat().st_size for p in vectors_folder(index_path).iterdir())
    assert all(tb is not None for tb in tables)
    print(f"memory-mapped float16 copy of the embeddings: ready in {build_s:.1f} s (made once per "
          f"change to the index), {vec_size / 2**30:.2f} GiB beside the index")  # fmt: skip
    rng = np.random.default_rng(5)
    q1280, q512 = rng.standard_normal(1280), rng.standard_normal(512)
    day, year = some.parent, some.parent.parent  # ~300 and ~n/20 photos
    rows = [
        ("similar (1280-d)", lambda: by_embedding(idx, q1280, CLASSIFIER, n=20)),
        ("similar --under a day folder", lambda: by_embedding(idx, q1280, CLASSIFIER, n=20, under=[day])),
        ("similar --under a year folder", lambda: by_embedding(idx, q1280, CLASSIFIER, n=20, under=[year])),
        ("similar PHOTO (query read from the index)", lambda: similar_to(idx, some, n=20)),
        ("search (512-d)", lambda: by_embedding(idx, q512, CLIP, n=20)),
        ("search --under a day folder", lambda: by_embedding(idx, q512, CLIP, n=20, under=[day])),
    ]  # fmt: skip
    t = time.perf_counter()
    by_embedding(idx, q1280, CLASSIFIER, n=20)
    print(f"similar (1280-d), the first in this process: {time.perf_counter() - t:.3f} s")
    assert len(by_embedding(idx, q1280, CLASSIFIER, n=20, under=[day])) == 20
    for label, fn in rows:
        print(f"{label}: {median(fn, 7):.3f} s median warm (goal < 0.5 s)")
    print(f"memory after searching: {memory()}")


def measure_album(idx: Index, n: int, out: Path, some: Path) -> None:
    """3. Album refresh, tags, show."""
    albums = out / f"albums-{n}"
    q = TagQuery(tags=("beach",))
    t = time.perf_counter()
    first = build_album(idx, "beach", albums / "beach", q, LinkMode.SYMLINK)
    print(f"album of {first.matches:,} photos made in {time.perf_counter() - t:.1f} s "
          f"(first time: {len(first.added):,} links)")  # fmt: skip
    refresh_s = median(lambda: build_album(idx, "beach", albums / "beach", q, LinkMode.SYMLINK), 3)
    print(f"album --refresh of {first.matches:,} photos: {refresh_s:.2f} s (goal < 5 s)")
    print(f"tags (counts of every tag): {median(lambda: idx.tag_counts(), 3):.2f} s (goal < 1 s)")
    print(f"show PHOTO: {median(lambda: idx.photo(some), 7) * 1000:.2f} ms (goal < 1 s)")
    print(f"memory at the end: {memory()}")


if __name__ == "__main__":
    main()
