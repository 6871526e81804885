"""Recognition of uploaded images, with concurrent requests batched into one inference call.

An HTTP request decodes and preprocesses its image on a worker thread, then hands the
model inputs to a :class:`Batcher`, which waits up to ``max_wait`` seconds for more requests
(at most ``max_batch``) and runs every backbone once over all of them: the same batched
``Backbone.predict`` a scan uses, so throughput under load approaches the scan rate.
This is the dynamic batching of inference servers (Triton's ``max_queue_delay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from ..config import DEFAULT_MAX_PIXELS, Device
from ..media.imaging import decode
from ..models.backbones import Backbone, BackboneOutput
from ..models.catalog import Catalog
from ..models.recognizers import Candidate, Recognizer

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Job:
    """One image's model inputs and what to compute from them."""

    inputs: dict[str, np.ndarray]  # backbone name -> CHW float32, as ``imaging.preprocess``
    recognizers: tuple[str, ...]
    threshold: float
    top_k: int
    embed: tuple[str, ...] = ()  # backbones whose embedding the caller wants back


@dataclass(frozen=True, slots=True)
class Recognized:
    """A job's answer: candidates per recognizer (in the order asked), embeddings per backbone."""

    candidates: dict[str, list[Candidate]]
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)


def _row(out: BackboneOutput, i: int) -> BackboneOutput:
    return BackboneOutput(
        None if out.probs is None else out.probs[i : i + 1],
        out.embeddings[i : i + 1],
        None if out.detections is None else out.detections[i : i + 1],
    )


class Recognition:
    """Installed models, loaded once and shared by every request.

    ``recognizers`` resolves and caches names (raises ``UnknownModelError``); ``prepare``
    turns image bytes into a :class:`Job` (raises ``ImageError``); ``run`` answers a batch
    of jobs with one ``predict`` per backbone. ``run`` is called from one thread at a time.
    """

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        device: Device = Device.AUTO,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.catalog = catalog or Catalog.discover()
        self.device = device
        self.max_pixels = max_pixels
        self._lock = threading.Lock()  # the catalog and the backbone dict are built lazily
        self._recognizers: dict[str, Recognizer] = {}
        self._backbones: dict[str, Backbone] = {}
        self._defaults: tuple[str, ...] | None = None

    def default_names(self) -> tuple[str, ...]:
        with self._lock:
            if self._defaults is None:
                recs = self.catalog.resolve(None)
                for r in recs:
                    self._recognizers.setdefault(r.name, r)
                self._defaults = tuple(r.name for r in recs)
            return self._defaults

    def recognizers(self, names: Sequence[str]) -> list[Recognizer]:
        with self._lock:
            for n in names:
                if n not in self._recognizers:
                    self._recognizers[n] = self.catalog.recognizer(n)
            return [self._recognizers[n] for n in names]

    def backbone(self, name: str) -> Backbone:
        with self._lock:
            b = self._backbones.get(name)
            if b is None:
                b = Backbone(self.catalog.backbone(name), device=self.device)
                b.load()
                self._backbones[name] = b
            return b

    def prepare(
        self,
        data: bytes,
        recognizers: Sequence[str],
        *,
        threshold: float,
        top_k: int,
        embed: Sequence[str] = (),
    ) -> Job:
        """Decode ``data`` (any format ``scan`` reads) and preprocess it for every backbone
        the recognizers and ``embed`` need. Raises ``ImageError`` (not an image, too many
        pixels, corrupt) or ``UnknownModelError``."""
        from ..media.imaging import preprocess

        recs = self.recognizers(recognizers)
        names = list(dict.fromkeys([r.backbone for r in recs] + list(embed)))
        backbones = [self.backbone(n) for n in names]
        min_side = max(b.manifest.preprocess.resize for b in backbones)
        photo = decode(data, min_side=min_side, max_pixels=self.max_pixels)
        inputs = {b.name: preprocess(photo.image, b.manifest.preprocess) for b in backbones}
        return Job(inputs, tuple(recognizers), threshold, top_k, tuple(embed))

    def run(self, jobs: Sequence[Job]) -> list[Recognized]:
        """One ``predict`` per backbone over every job that needs it; candidates per job."""
        outs: dict[str, tuple[list[int], BackboneOutput]] = {}
        for name in dict.fromkeys(n for j in jobs for n in j.inputs):
            rows = [i for i, j in enumerate(jobs) if name in j.inputs]
            batch = np.stack([jobs[i].inputs[name] for i in rows])
            outs[name] = (rows, self.backbone(name).predict(batch))
        answers = []
        for i, job in enumerate(jobs):
            cands: dict[str, list[Candidate]] = {}
            for r in self.recognizers(job.recognizers):
                rows, out = outs[r.backbone]
                cands[r.name] = r.candidates(
                    _row(out, rows.index(i)), threshold=job.threshold, top_k=job.top_k
                )[0]
            embeddings = {}
            for name in job.embed:
                rows, out = outs[name]
                embeddings[name] = out.embeddings[rows.index(i)]
            answers.append(Recognized(cands, embeddings))
        return answers


class Batcher(Generic[J, R]):
    """Gathers submitted items into batches for ``run`` (called on a worker thread).

    The first item of a batch waits at most ``max_wait`` seconds for company; a full
    batch (``max_batch`` items) goes at once. One batch runs at a time: inference already
    uses every core, and running two would only make both slower.
    """

    def __init__(
        self, run: Callable[[list[J]], list[R]], *, max_batch: int = 32, max_wait: float = 0.01
    ) -> None:
        self._run = run
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait)
        self._queue: asyncio.Queue[tuple[J, asyncio.Future[R]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # how many batches ran (tests and the load benchmark read it)

    async def submit(self, item: J) -> R:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            pending = [first]
            deadline = loop.time() + self.max_wait
            while len(pending) < self.max_batch:
                left = deadline - loop.time()
                try:
                    pending.append(
                        self._queue.get_nowait() if left <= 0 else
                        await asyncio.wait_for(self._queue.get(), left)
                    )  # fmt: skip
                except (TimeoutError, asyncio.QueueEmpty):
                    break
            live = [(item, fut) for item, fut in pending if not fut.cancelled()]
            if not live:
                continue
            self.batches += 1
            try:
                results = await asyncio.to_thread(self._run, [item for item, _ in live])
            except Exception as e:  # handed to every waiting request, which maps it
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, fut), res in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(res)
