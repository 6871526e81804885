"""The Ray engine, on a local Ray instance with 2 CPUs: the same results as a local scan, and a
worker killed in the middle of a run is retried without losing or double-counting a photo."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray

from phototag.config import Device, Engine
from phototag.index import Index
from phototag.tagging import distributed
from phototag.tagging.loader import make_loader
from phototag.tagging.scan import Finished, ScanOptions, ScanReport, scan

# Starts a local Ray instance and runs the real models on it.
pytestmark = pytest.mark.slow

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 * 2**20,
             configure_logging=False)  # fmt: skip
    yield
    ray.shutdown()


@pytest.fixture
def photos(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    for i in range(40):
        make_photo(
            f"lib/{i // 10}/p{i:02d}.jpg", "coffee" if i % 2 else "chelsea", size=(120 + i, 90)
        )
    (tmp_path / "lib" / "broken.jpg").write_bytes(b"not a photo")
    return tmp_path / "lib"


def tags(index: Path) -> dict[bytes, list[tuple[str, str, float]]]:
    conn = sqlite3.connect(index)
    rows = conn.execute(
        "SELECT p.path, t.recognizer, t.path, round(t.score, 3) FROM tags t JOIN photos p ON p.id = t.photo_id"
    )
    out: dict[bytes, list[tuple[str, str, float]]] = {}
    for path, rec, tpath, score in rows:
        out.setdefault(path, []).append((rec, tpath, score))
    conn.close()
    return {k: sorted(v) for k, v in out.items()}


def run(lib: Path, index: Path, engine: Engine) -> ScanReport:
    with Index.open(index) as idx:
        # faces=False: the face step runs on the local engine only (scan warns with Ray), so
        # both engines are compared on the recognizers' results.
        options = ScanOptions(device=Device.CPU, engine=engine, faces=False)
        events = list(scan([lib], idx, options))
    last = events[-1]
    assert isinstance(last, Finished)
    return last.report


def test_a_ray_scan_gives_the_same_results_as_a_local_scan(
    local_ray: None, photos: Path, tmp_path: Path
) -> None:
    ray_report = run(photos, tmp_path / "ray.sqlite", Engine.RAY)
    local_report = run(photos, tmp_path / "local.sqlite", Engine.LOCAL)
    assert (
        (ray_report.tagged, ray_report.failed)
        == (local_report.tagged, local_report.failed)
        == (40, 1)
    )
    assert tags(tmp_path / "ray.sqlite") == tags(tmp_path / "local.sqlite")
    again = run(photos, tmp_path / "ray.sqlite", Engine.RAY)  # incremental, as a local scan
    assert again.unchanged == 40 and again.decoded == 0


def crash_once(marker: str) -> Callable[..., object]:
    """A loader factory whose worker process dies (os._exit) the first time it loads p05.jpg."""

    def factory(*args: object) -> Callable[..., object]:
        load = make_loader(*args)  # type: ignore[arg-type]

        def maybe_die(entry):  # type: ignore[no-untyped-def]
            if entry.path.name == "p05.jpg" and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)  # the worker process dies mid-block, as if the node went away
            return load(entry)

        return maybe_die

    return factory


def test_a_worker_killed_mid_run_is_retried_and_no_photo_is_lost_or_counted_twice(
    local_ray: None, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "died"
    real = distributed.ray_batches
    monkeypatch.setattr(
        distributed, "ray_batches",
        lambda *a, **kw: real(*a, loader_factory=crash_once(str(marker)), **kw),
    )  # fmt: skip
    report = run(photos, tmp_path / "ray.sqlite", Engine.RAY)
    assert marker.exists()  # a worker really died
    assert report.tagged == 40 and report.failed == 1
    with Index.open(tmp_path / "ray.sqlite") as idx:
        assert idx.count_photos() == 40
    monkeypatch.undo()
    run(photos, tmp_path / "local.sqlite", Engine.LOCAL)
    assert tags(tmp_path / "ray.sqlite") == tags(tmp_path / "local.sqlite")
