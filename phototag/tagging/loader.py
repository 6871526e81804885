"""The bounded decode stage: files in, model inputs out, in order, on a pool of threads.

Threads rather than processes: Pillow releases the GIL while it decodes and resizes,
hashlib while it hashes, and onnxruntime while it infers, so on the consumer side the
main thread runs inference and index writes while the workers decode the next batch.
At most ``window`` photos are in flight (read, decoded or waiting), whatever the size
of the library, and each worker holds at most one file's bytes at a time.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import threading
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..errors import ImageError, UnreadableFile
from ..media.imaging import DecodedPhoto, Preprocess, decode, preprocess
from ..media.kinds import FileKind
from .walk import FileEntry

T = TypeVar("T")
R = TypeVar("R")

#: Files above this size are not read (no photo format needs more; a multi-GB file
#: named .jpg is an accident or an attack).
MAX_FILE_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class Loaded:
    """A file read and hashed; decoded into ``inputs`` unless its content was known."""

    entry: FileEntry
    size: int
    mtime_ns: int
    hash: str
    # backbone name -> CHW float32 (a video: FCHW, one row per frame); None = not decoded
    inputs: dict[str, np.ndarray] | None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    kind: FileKind = FileKind.PHOTO
    duration: float | None = None  # seconds, for videos
    # The decoded photo itself (HWC uint8 RGB, upright, at the decoded size), kept only when a
    # step after inference needs pixels (faces): so that it costs no second decode.
    image: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class LoadFailed:
    entry: FileEntry
    reason: str
    # True when the file could not be *read* (vanished, changed, unreadable, stalled), as
    # opposed to read and found broken: such a file is tried again on the next run even
    # if its size and mtime have not changed.
    transient: bool = False


#: The reason a file that may not be opened is recorded with (read again once it may be).
UNREADABLE_REASON = "permission denied"


def content_hash(data: bytes) -> str:
    """SHA-256 of the file's bytes, first 128 bits in hex.

    SHA-256 rather than BLAKE2b: with the SHA extensions of current x86 and Arm CPUs it
    hashes at about 1.8 GB/s here, twice BLAKE2b's speed (bench figures in docs/performance.md).
    """
    return hashlib.sha256(data).hexdigest()[:32]


def read_file(entry: FileEntry, max_bytes: int = MAX_FILE_BYTES) -> tuple[bytes, int, int]:
    """The file's bytes and the (size, mtime_ns) they belong to. Raises ImageError."""
    try:
        fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError("vanished before it could be read") from None
    except PermissionError:
        raise UnreadableFile(UNREADABLE_REASON) from None
    except OSError as e:
        raise ImageError(f"cannot open: {e.strerror}") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise ImageError("not a regular file")
        if before.st_size > max_bytes:
            raise ImageError(f"file too large ({before.st_size / 2**20:.0f} MiB)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
        after = os.fstat(fd)
    except OSError as e:
        raise ImageError(f"read error: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) != after.st_size or (after.st_size, after.st_mtime_ns) != (
        before.st_size,
        before.st_mtime_ns,
    ):
        raise ImageError("changed while being read (it will be read again next run)")
    return data, after.st_size, after.st_mtime_ns


#: Videos up to this size are hashed whole; larger ones by :data:`SAMPLES` chunks.
FULL_HASH_BYTES = 64 << 20
SAMPLES = 16
SAMPLE_BYTES = 1 << 20


def hash_file(entry: FileEntry, chunk: int = 1 << 20) -> tuple[str, int, int]:
    """A video's content hash, and the (size, mtime_ns) it belongs to. Raises ImageError.

    Up to :data:`FULL_HASH_BYTES` it is :func:`content_hash` of the whole file, streamed.
    Larger files are hashed from their size and :data:`SAMPLES` chunks of 1 MiB spread
    evenly from the first byte to the last: reading a 10 GB clip whole from a NAS takes
    minutes (past the per-file read timeout), and the hash only has to recognise a moved or
    copied file, for which a clip's size and 16 MiB of its compressed data are ample.
    """
    h = hashlib.sha256()
    try:
        with open(entry.path, "rb") as f:
            before = os.fstat(f.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise ImageError("not a regular file")
            size = before.st_size
            if size <= FULL_HASH_BYTES:
                while block := f.read(chunk):
                    h.update(block)
            else:
                h.update(b"phototag sampled video hash v1 %d" % size)
                last = size - SAMPLE_BYTES
                for i in range(SAMPLES):
                    f.seek(last * i // (SAMPLES - 1))
                    h.update(f.read(SAMPLE_BYTES))
            after = os.fstat(f.fileno())
    except FileNotFoundError:
        raise ImageError("vanished before it could be read") from None
    except PermissionError:
        raise UnreadableFile(UNREADABLE_REASON) from None
    except OSError as e:
        raise ImageError(f"read error: {e.strerror}") from None
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise ImageError("changed while being read (it will be read again next run)")
    return h.hexdigest()[:32], after.st_size, after.st_mtime_ns


def make_loader(
    preprocesses: Mapping[str, Preprocess],
    known_hashes: Container[str],
    max_pixels: int,
    *,
    keep_image: bool = False,
    min_side: int = 1,
) -> Callable[[FileEntry], Loaded | LoadFailed]:
    """The per-file work of a scan: read, hash, and unless the content is known, decode
    (and with ``keep_image``, keep a photo's decoded pixels in :attr:`Loaded.image`).

    Photos are decoded by Pillow (HEIC from an embedded thumbnail when it is at least the
    model's crop size), RAW files from their preview or by LibRaw (:mod:`.media.raw`),
    videos into a few frames (:mod:`.media.video`; their ``inputs`` have a frame axis).
    JPEGs are decoded with a short side of at least ``min_side`` and every backbone's
    ``resize``; RAW previews and HEIC thumbnails are used when they satisfy the backbones
    (a larger ``min_side`` for faces does not send a RAW to LibRaw's slower rendering).
    """
    model_side = max([1, *(p.resize for p in preprocesses.values())])
    min_side = max(min_side, model_side)
    thumb_side = max(p.crop for p in preprocesses.values()) if preprocesses else 1

    def load(entry: FileEntry) -> Loaded | LoadFailed:
        if entry.kind is FileKind.VIDEO:
            # Videos give no pixels to later steps (faces): frames at the models' size only.
            return _load_video(entry, preprocesses, known_hashes, model_side, max_pixels)
        try:
            data, size, mtime_ns = read_file(entry)
        except ImageError as e:
            return LoadFailed(entry, str(e), transient=not isinstance(e, UnreadableFile))
        try:
            h = content_hash(data)
            if h in known_hashes:
                return Loaded(entry, size, mtime_ns, h, None, kind=entry.kind)
            photo: DecodedPhoto
            if entry.kind is FileKind.RAW:
                photo = _decode_raw_or_image(data, model_side, max_pixels, thumb_side)
            else:
                photo = decode(
                    data, min_side=min_side, max_pixels=max_pixels, thumb_side=thumb_side
                )
            del data
            inputs = {name: preprocess(photo.image, p) for name, p in preprocesses.items()}
            pixels = np.asarray(photo.image, dtype=np.uint8) if keep_image else None
            return Loaded(
                entry, size, mtime_ns, h, inputs, photo.width, photo.height, photo.taken_at,
                kind=entry.kind, image=pixels,
            )  # fmt: skip
        except ImageError as e:
            return LoadFailed(entry, str(e))
        except Exception as e:  # a bug or an exotic file must not stop the scan
            return LoadFailed(entry, f"unexpected error: {type(e).__name__}: {e}")

    return load


def _decode_raw_or_image(
    data: bytes, min_side: int, max_pixels: int, thumb_side: int
) -> DecodedPhoto:
    """A RAW by LibRaw; if LibRaw cannot read it, by Pillow (a JPEG or TIFF under a RAW's
    name is still a photo); if neither can, LibRaw's reason."""
    from ..media.raw import decode_raw

    try:
        return decode_raw(data, min_side=min_side, max_pixels=max_pixels)
    except ImageError as raw_error:
        try:
            return decode(data, min_side=min_side, max_pixels=max_pixels, thumb_side=thumb_side)
        except ImageError:
            raise raw_error from None


def _load_video(
    entry: FileEntry,
    preprocesses: Mapping[str, Preprocess],
    known_hashes: Container[str],
    min_side: int,
    max_pixels: int,
) -> Loaded | LoadFailed:
    from ..media.video import decode_video

    try:
        h, size, mtime_ns = hash_file(entry)
    except ImageError as e:
        return LoadFailed(entry, str(e), transient=not isinstance(e, UnreadableFile))
    try:
        if h in known_hashes:
            return Loaded(entry, size, mtime_ns, h, None, kind=FileKind.VIDEO)
        clip = decode_video(entry.path, min_side=min_side, max_pixels=max_pixels)
        inputs = {
            name: np.stack([preprocess(im, p) for im in clip.frames])
            for name, p in preprocesses.items()
        }
        try:
            st = os.stat(entry.path)
        except OSError:
            return LoadFailed(entry, "vanished while being read", transient=True)
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            return LoadFailed(
                entry, "changed while being read (it will be read again next run)", transient=True
            )
        return Loaded(
            entry, size, mtime_ns, h, inputs, clip.width, clip.height, clip.taken_at,
            kind=FileKind.VIDEO, duration=clip.duration,
        )  # fmt: skip
    except ImageError as e:
        return LoadFailed(entry, str(e))
    except Exception as e:  # a bug or an exotic file must not stop the scan
        return LoadFailed(entry, f"unexpected error: {type(e).__name__}: {e}")


class _DaemonPool:
    """Worker threads that never keep the process alive.

    ``ThreadPoolExecutor`` joins its threads at exit, so one read stuck on a dead network
    mount would hang phototag forever. These are daemon threads; a worker given up on
    (see ``timeout`` in :func:`ordered_map`) is replaced so the pool keeps its size.
    """

    def __init__(self, workers: int) -> None:
        self.tasks: queue.SimpleQueue[tuple[Callable[[Any], Any], Any, Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self.threads: list[threading.Thread] = []
        for _ in range(workers):
            self.add_worker()

    def add_worker(self) -> None:
        t = threading.Thread(target=self._run, name="phototag-decode", daemon=True)
        t.start()
        self.threads.append(t)

    def _run(self) -> None:
        while (task := self.tasks.get()) is not None:
            fn, item, fut = task
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(item))
            except BaseException as e:  # handed to the consumer, who decides
                fut.set_exception(e)

    def submit(self, fn: Callable[[T], R], item: T) -> Future[R]:
        fut: Future[R] = Future()
        self.tasks.put((fn, item, fut))
        return fut

    def close(self) -> None:
        for _ in self.threads:
            self.tasks.put(None)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    window: int,
    timeout: float | None = None,
    on_timeout: Callable[[T], R] | None = None,
) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, in order, with at most ``window`` in flight.

    With ``timeout``, an item whose work takes longer than that many seconds (counted from
    when the consumer starts waiting for it) yields ``on_timeout(item)`` instead; its
    thread is abandoned and replaced, so a stalled mount cannot stall the whole run.
    """
    if workers <= 1 and timeout is None:
        yield from map(fn, items)
        return
    pool = _DaemonPool(max(1, workers))
    pending: deque[tuple[T, Future[R]]] = deque()

    def take() -> R:
        item, fut = pending.popleft()
        try:
            return fut.result(timeout=timeout)
        except FutureTimeout:
            if not fut.cancel():  # running: stuck in I/O; leave it and add a fresh worker
                pool.add_worker()
            assert on_timeout is not None
            return on_timeout(item)

    try:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= window:
                yield take()
        while pending:
            yield take()
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.close()


def read_ahead(entries: Iterable[FileEntry]) -> Iterator[FileEntry]:
    """Tell the kernel which files are coming (posix_fadvise WILLNEED) as they enter the window,
    so that storage latency (a spinning disk, a network mount) overlaps with decoding."""
    advise = getattr(os, "posix_fadvise", None)
    for entry in entries:
        if advise is not None:
            try:
                fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            except OSError:
                pass  # the worker will report it
            else:
                try:
                    advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                except OSError:
                    pass
                finally:
                    os.close(fd)
        yield entry


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def default_workers() -> int:
    """Decode threads: one per core the process may use, at least two."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        n = os.cpu_count() or 2
    return max(2, n)
