"""One writer at a time: a lock file next to the index, released when the process dies.

The lock is the ``filelock`` library's: ``flock`` on Linux and macOS (the kernel drops it
when the holder exits for any reason, SIGKILL included, so a crashed nightly scan never
leaves a stale lock behind) and ``msvcrt.locking`` on Windows. Who holds it (command,
pid, since when) is written by the holder to a record beside it, ``<index>.lock.json``,
after it got the lock: filelock may truncate the lock file itself when others try it.
Never a "soft" (file-existence) lock: that would outlive a killed scan and block the next.
Readers (show, tags, similar) take no lock: SQLite's WAL mode lets them read while a
scan writes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from .errors import IndexFileError, LockedError
from .fsutil import atomic_write

#: How often a waiting command tries the lock again, and the length of one round of waiting
#: (seconds).
POLL_SECONDS = 0.2
WAIT_ROUND = 5.0


class IndexLock:
    """The index's writer lock for one ``command`` (named in what others are told)."""

    def __init__(self, index_path: Path, command: str) -> None:
        self.path = Path(str(index_path) + ".lock")
        self.record = Path(str(index_path) + ".lock.json")
        self.command = command
        self._lock: FileLock | None = None

    def holder(self) -> str:
        """Who holds the lock, as the holder recorded it (best effort)."""
        try:
            info = json.loads(self.record.read_text(encoding="utf-8") or "{}")
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
            return (
                f"phototag {info.get('command', '?')} (pid {info.get('pid', '?')}, since {started})"
            )
        except (OSError, ValueError, AttributeError):
            return "another phototag"

    def held_by_another(self) -> bool:
        """Whether some other process holds the lock now (tried without waiting)."""
        probe = FileLock(self.path, timeout=0, thread_local=False, fallback_to_soft=False)
        try:
            probe.acquire()
        except Timeout:
            return True
        except OSError:
            return False
        probe.release()
        return False

    def acquire(self, *, wait: bool = False, timeout: float | None = None) -> IndexLock:
        """Take the lock; with ``wait``, wait for it (at most ``timeout`` seconds if given).

        Raises LockedError naming the holder when it is taken, IndexFileError when the
        lock file cannot be made.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # thread_local=False: the lock belongs to the process (any thread may release
            # it). Waiting "forever" is done in rounds of finite waits: filelock refuses an
            # unbounded wait for a lock another instance holds in this same thread, as
            # a deadlock, although another thread may release it.
            lock = FileLock(self.path, thread_local=False, fallback_to_soft=False)
            while True:
                left = (
                    0.0
                    if not wait
                    else WAIT_ROUND
                    if deadline is None
                    else deadline - time.monotonic()
                )
                try:
                    lock.acquire(
                        timeout=max(0.0, min(left, WAIT_ROUND)), poll_interval=POLL_SECONDS
                    )
                    break
                except Timeout:
                    if not wait or (deadline is not None and time.monotonic() >= deadline):
                        raise
        except Timeout:
            raise LockedError(
                f"{self.holder()} is using the index {str(self.path)[: -len('.lock')]}; "
                "run again when it has finished, or wait for it"
            ) from None
        except OSError as e:
            raise IndexFileError(
                f"cannot create the lock file {self.path}: {e.strerror} (the index folder "
                "must be writable; choose another index with PHOTOTAG_INDEX)"
            ) from None
        self._lock = lock
        try:
            record = {"pid": os.getpid(), "command": self.command, "since": time.time()}
            atomic_write(self.record, json.dumps(record).encode())
        except OSError:
            pass  # the record only names the holder; the lock is what counts
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> IndexLock:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
