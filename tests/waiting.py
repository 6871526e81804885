"""Waiting on what a child process visibly does (bytes on disk, lines it wrote, bytes a local
server sent), never for a fixed time: a kill test then kills at the same point of the work on
a fast machine and on a slow or busy one (issue 15)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

#: Seconds between two looks: short, so that a kill lands soon after the progress it waits for.
POLL = 0.002


def wait_until(
    done: Callable[[], bool],
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 60.0,
) -> None:
    """Return as soon as ``done()`` holds. Fails the test, naming ``what`` (the progress
    waited for), if ``proc`` ends without it or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc is not None and proc.poll() is not None:
            if done():  # it got there between the two looks, then ended
                return
            pytest.fail(f"the child process ended (exit code {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no sign of {what} within {timeout:.0f} s: stuck, or not observable?")
        time.sleep(POLL)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL (no handler runs, nothing is flushed or cleaned up) and reap."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def written_since(folder: Path, since_ns: int) -> int:
    """Bytes of the regular files under ``folder`` written, extracted or moved there at
    ``since_ns`` (``time.time_ns()``) or later, by their status-change time: tar and copy2 set
    the mtime back, nothing sets the ctime. Links are not followed; a file that vanishes while
    being counted counts 0."""
    total = 0
    for root, _dirs, files in os.walk(folder):  # a folder gone meanwhile: nothing
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_ctime_ns >= since_ns:
                total += st.st_size
    return total


def changed_since(path: Path, since_ns: int) -> bool:
    """``path`` (a link itself, not what it points to) was made, replaced or changed at
    ``since_ns`` or later; False where there is none."""
    try:
        return os.lstat(path).st_ctime_ns >= since_ns
    except FileNotFoundError:
        return False
