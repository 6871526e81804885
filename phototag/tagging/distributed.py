"""Scanning on a Ray cluster (``phototag scan --engine ray``): decode on CPU workers,
infer in actors that keep the ONNX session loaded, stream results back to the driver.

The driver does everything else exactly as a local scan does -- the walk, deciding what is
new, the index, sidecars -- so results, incremental behaviour and the error report are the
same. What travels: the file list out (in blocks), embeddings and class probabilities back;
photos are read by the workers from the shared library path, never sent through Ray.

Failures: a decode task whose worker dies is retried by Ray (``max_retries``); an actor
that dies is restarted and its calls retried (``max_restarts``, ``max_task_retries``).
Results are written by path, so a retried block can never count a photo twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..models.backbones import Backbone, BackboneOutput
from .loader import Loaded, LoadFailed, make_loader
from .tagger import run_backbones
from .walk import FileEntry

if TYPE_CHECKING:
    from .scan import ScanOptions

#: Blocks of files per decode task; blocks in flight per inference actor.
BLOCK = 32
IN_FLIGHT_PER_ACTOR = 3


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray: pip install 'phototag[ray]'") from None
    return ray


def decode_block(entries: Sequence[FileEntry], preprocesses: dict[str, Any], known: set[str],
                 max_pixels: int, loader_factory: Callable[..., Any] = make_loader) -> list[Loaded | LoadFailed]:  # fmt: skip
    """The per-file work of a scan, for one block, on a Ray worker."""
    load = loader_factory(preprocesses, known, max_pixels)
    return [load(e) for e in entries]


class Inferer:
    """A Ray actor holding the backbones' sessions; one per GPU (or CPU slot)."""

    def __init__(self, manifests: dict[str, Any], device: str) -> None:
        from ..config import Device

        self.backbones = {name: Backbone(m, device=Device(device)) for name, m in manifests.items()}
        for b in self.backbones.values():
            b.load()

    def infer(
        self, block: list[Loaded | LoadFailed]
    ) -> tuple[list[Loaded | LoadFailed], dict[str, BackboneOutput]]:
        decoded = [x.inputs for x in block if isinstance(x, Loaded) and x.inputs is not None]
        # The backbones' half of the tagging path; the driver's Tagger does the rest
        # (Tagger.from_outputs), so results are the same as a local scan's.
        outputs = run_backbones(self.backbones, decoded)
        # The inputs stay here: only the results travel back to the driver.
        slim = [Loaded(x.entry, x.size, x.mtime_ns, x.hash, {} if x.inputs is not None else None,
                       x.width, x.height, x.taken_at, x.kind, x.duration)
                if isinstance(x, Loaded) else x for x in block]  # fmt: skip
        return slim, outputs


def ray_batches(
    todo: Sequence[FileEntry],
    backbones: dict[str, Backbone],
    known: set[str],
    options: ScanOptions,
    batch_size: int,
    *,
    loader_factory: Callable[..., Any] | None = None,
) -> Iterator[tuple[list[Loaded | LoadFailed], dict[str, BackboneOutput]]]:
    """Results of decoding and inference on Ray, a block at a time, in completion order."""
    ray = _ray()
    loader_factory = loader_factory or make_loader
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, ignore_reinit_error=True)  # fmt: skip
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        device = "cuda" if gpus and options.device != "cpu" else "cpu"
        n_actors = max(1, gpus) if device == "cuda" else 1
        actor_cls = ray.remote(num_gpus=1 if device == "cuda" else 0, num_cpus=1, max_restarts=3,
                               max_task_retries=3)(Inferer)  # fmt: skip
        manifests = {name: b.manifest for name, b in backbones.items()}
        actors = [actor_cls.remote(manifests, device) for _ in range(n_actors)]
        remote_decode = ray.remote(num_cpus=1, max_retries=3)(decode_block)
        preprocesses = {name: b.manifest.preprocess for name, b in backbones.items()}
        known_ref = ray.put(known)
        block = min(BLOCK, batch_size)
        blocks = [list(todo[i : i + block]) for i in range(0, len(todo), block)]
        pending: list[Any] = []
        next_block = 0
        limit = IN_FLIGHT_PER_ACTOR * len(actors)
        while next_block < len(blocks) or pending:
            while next_block < len(blocks) and len(pending) < limit:
                decoded = remote_decode.remote(
                    blocks[next_block], preprocesses, known_ref, options.max_pixels, loader_factory
                )
                pending.append(actors[next_block % len(actors)].infer.remote(decoded))
                next_block += 1
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()
