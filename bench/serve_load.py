"""Load on ``phototag serve``'s /v1/recognize from N concurrent clients, in ONE run.

    python bench/serve_load.py [--clients 16] [--requests 10000]

Starts a real server on a loopback port (the default recognizers, --device cpu), sends
``--requests`` uploads of a real 12 MP photo resized to phone-upload size (1600x1200 JPEG)
from ``--clients`` threads, and prints requests/s, p50/p99 latency, the server's resident
memory before and after, errors, and the inference batches formed. Then, in the same run,
the in-process rate of ``phototag classify`` over the same image (the CLI's path) for the
ratio. Nothing leaves 127.0.0.1, and the run ends by itself.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from serving import start  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photo() -> bytes:
    from skimage import data

    im = Image.fromarray(np.ascontiguousarray(data.coffee())).resize((1600, 1200))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    args = ap.parse_args()
    body = photo()
    tmp = Path(tempfile.mkdtemp(prefix="phototag-serve-bench-"))
    env = {"PHOTOTAG_INDEX": str(tmp / "index.sqlite"), "XDG_DATA_HOME": str(tmp / "data"),
           "PHOTOTAG_CACHE": str(tmp / "cache")}  # fmt: skip
    server = start(
        env, "--device", "cpu", "--batch-wait-ms", str(args.batch_wait_ms), log=tmp / "serve.log"
    )
    try:
        with server.client() as c:  # warm up: load the models, first batches
            for _ in range(3):
                c.post("/v1/recognize", content=body).raise_for_status()
            batches0 = c.get("/v1/health").json()["batches"]
        rss_before = rss_mib(server.proc.pid)
        latencies: list[float] = []
        errors = 0
        counter = iter(range(args.requests))
        lock = threading.Lock()

        def client() -> None:
            nonlocal errors
            with server.client() as c:
                while True:
                    with lock:
                        if next(counter, None) is None:
                            return
                    t = time.perf_counter()
                    try:
                        ok = c.post("/v1/recognize", content=body).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    dt = time.perf_counter() - t
                    with lock:
                        latencies.append(dt)
                        errors += not ok

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss_after = rss_mib(server.proc.pid)
        with server.client() as c:
            batches = c.get("/v1/health").json()["batches"] - batches0
    finally:
        code = server.stop()

    # The CLI's in-process path over the same image, for the ratio.
    from phototag.config import Device
    from phototag.tagging.classify import classify

    files = []
    for i in range(256):
        p = tmp / f"p{i}.jpg"
        p.write_bytes(body)
        files.append(p)
    list(classify(files[:16], device=Device.CPU))  # warm up
    t = time.perf_counter()
    n = sum(1 for _ in classify(files, device=Device.CPU))
    cli_rate = n / (time.perf_counter() - t)

    lat = sorted(latencies)
    rate = len(lat) / wall
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"requests: {len(lat)} from {args.clients} clients, errors: {errors}, server exit {code}")
    print(
        f"requests/s: {rate:.1f}  (CLI classify in-process: {cli_rate:.1f} images/s; ratio {rate / cli_rate:.2f})"
    )
    print(
        f"latency p50: {statistics.median(lat) * 1000:.0f} ms  p99: {lat[int(0.99 * (len(lat) - 1))] * 1000:.0f} ms"
    )
    print(f"inference batches: {batches} ({len(lat) / max(batches, 1):.1f} requests per batch)")
    print(
        f"server RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after ({rss_after - rss_before:+.0f} MiB)"
    )


if __name__ == "__main__":
    main()
