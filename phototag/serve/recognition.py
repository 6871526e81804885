"""Recognition of uploaded images, with concurrent requests batched into one inference call.

An HTTP request decodes and preprocesses its image on a worker thread, then hands the
model inputs to a :class:`Batcher`, which waits up to ``max_wait`` seconds for more requests
(at most ``max_batch``) and tags them together. The tagging is the library's one path
(:mod:`phototag.tagging.tagger`): each request's :class:`~phototag.tagging.tagger.Tagger` is resolved from
the server's catalog with its recognizers, threshold and top-k, on backbones shared by every
request, and :func:`~phototag.tagging.tagger.tag_each` runs every backbone once over the batch, as
a scan does, so throughput under load approaches the scan rate and the tags are a scan's.
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

from ..config import DEFAULT_MAX_PIXELS, DEFAULT_THRESHOLD, DEFAULT_TOP_K, Device
from ..media.imaging import decode
from ..models.backbones import Backbone
from ..models.catalog import Catalog
from ..models.recognizers import Candidate
from ..tagging.tagger import Tagger, tag_each

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Job:
    """One image's model inputs and what to compute from them."""

    inputs: dict[str, np.ndarray]  # backbone name -> CHW float32, as ``imaging.preprocess``
    tagger: Tagger  # the request's recognizers (in the order asked), threshold and top-k
    embed: tuple[str, ...] = ()  # backbones whose embedding the caller wants back


@dataclass(frozen=True, slots=True)
class Recognized:
    """A job's answer: candidates per recognizer (in the order asked), embeddings per backbone."""

    candidates: dict[str, list[Candidate]]
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)


class Recognition:
    """Installed models, resolved and loaded once and shared by every request.

    ``tagger`` resolves a request's recognizers into a :class:`~phototag.tagging.tagger.Tagger`
    (raises ``UnknownModelError``); ``prepare`` turns image bytes into a :class:`Job`
    (raises ``ImageError``); ``run`` answers a batch of jobs with one ``predict`` per
    backbone (:func:`~phototag.tagging.tagger.tag_each`). ``run`` is called from one thread at a time.
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
        # The catalog (it binds vocabularies on first use) and the backbones are shared by
        # requests on several threads: one at a time resolves, and opens a session.
        self._lock = threading.Lock()
        self._backbones: dict[str, Backbone] = {}  # every backbone asked for so far

    def tagger(
        self,
        names: Sequence[str] | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        top_k: int = DEFAULT_TOP_K,
        embed: Sequence[str] = (),
    ) -> Tagger:
        """The recognizers ``names`` (default: a scan's) and the backbones they and
        ``embed`` need, the server's own (unopened the first time). Raises
        ``UnknownModelError``."""
        with self._lock:
            tagger = Tagger.resolve(
                list(names) if names else None,
                catalog=self.catalog,
                threshold=threshold,
                top_k=top_k,
                device=self.device,
                embed=embed,
                reuse=self._backbones,
            )
            for name, b in tagger.backbones.items():
                self._backbones.setdefault(name, b)
            return tagger

    def default_names(self) -> tuple[str, ...]:
        """The recognizers a plain scan runs."""
        return tuple(r.name for r in self.tagger().recognizers)

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
        pixels, corrupt), ``UnknownModelError`` or ``ModelError`` (a damaged model)."""
        from ..media.imaging import preprocess

        tagger = self.tagger(recognizers, threshold=threshold, top_k=top_k, embed=embed)
        with self._lock:
            tagger.load()  # once per backbone in the server's life
        backbones = list(tagger.backbones.values())
        min_side = max(b.manifest.preprocess.resize for b in backbones)
        photo = decode(data, min_side=min_side, max_pixels=self.max_pixels)
        inputs = {b.name: preprocess(photo.image, b.manifest.preprocess) for b in backbones}
        return Job(inputs, tagger, tuple(embed))

    def run(self, jobs: Sequence[Job]) -> list[Recognized]:
        """One ``predict`` per backbone over every job that needs it; candidates per job."""
        results = tag_each([(job.tagger, job.inputs) for job in jobs])
        return [
            Recognized(result.tags, {name: result.embeddings[name] for name in job.embed})
            for job, result in zip(jobs, results, strict=True)
        ]


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
