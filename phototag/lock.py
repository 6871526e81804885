"""One writer at a time: an advisory lock next to the index, released when the process dies.

``flock`` locks belong to the open file description, so the kernel drops them when the
holder exits for any reason, SIGKILL included: a crashed nightly scan never leaves a stale
lock behind. Readers (show, tags, similar) take no lock: SQLite's WAL mode lets them read
while a scan writes.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from .errors import IndexFileError, LockedError


class IndexLock:
    def __init__(self, index_path: Path, command: str) -> None:
        self.path = Path(str(index_path) + ".lock")
        self.command = command
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock, as the holder wrote it (best effort)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
            return (
                f"phototag {info.get('command', '?')} (pid {info.get('pid', '?')}, since {started})"
            )
        except (OSError, ValueError):
            return "another phototag"

    def acquire(self, *, wait: bool = False, timeout: float | None = None) -> IndexLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as e:
            raise IndexFileError(
                f"cannot create the lock file {self.path}: {e.strerror} "
                "(the index folder must be writable; --index or PHOTOTAG_INDEX to choose another)"
            ) from None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or (deadline is not None and time.monotonic() >= deadline):
                    holder = self.holder()
                    os.close(fd)
                    raise LockedError(
                        f"{holder} is using the index {str(self.path)[: -len('.lock')]}; "
                        "run again later, or with --wait to wait for it"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(
            fd,
            json.dumps(
                {"pid": os.getpid(), "command": self.command, "since": time.time()}
            ).encode(),
        )
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> IndexLock:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
