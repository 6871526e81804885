"""All terminal output: one place that knows about --quiet, --json and colour.

Human-readable results go to stdout; progress, summaries, warnings and errors go to
stderr, so ``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ..errors import ConfigError, LockedError, PhototagError

if TYPE_CHECKING:
    from rich.console import Console


class ExitCode(IntEnum):
    """Documented in docs/cli.md; scripts and cron rely on them."""

    OK = 0
    FILES_FAILED = 1  # the run finished, but some files could not be read
    USAGE = 2  # bad options or arguments (also click's own usage errors)
    ERROR = 3  # the run could not be done: model, index or device problem
    LOCKED = 75  # another phototag is writing the index (EX_TEMPFAIL: try again later)
    INTERRUPTED = 130  # SIGINT; SIGTERM gives 143 (128 + the signal)


THEME = {
    "filepath": "cyan",
    "tag": "bold green",
    "num": "bold",
    "warning": "yellow",
    "error": "bold red",
    "muted": "dim",
}


def safe_path(path: object) -> str:
    """A path printable on one line: newlines and undecodable bytes made visible."""
    text = os.fspath(path) if isinstance(path, os.PathLike | str) else str(path)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\n", "\\n").replace("\r", "\\r")


class Output:
    """The CLI's view of the terminal (and the log file) for one command run."""

    def __init__(
        self, *, quiet: bool = False, json_mode: bool = False, log_file: Path | None = None
    ) -> None:
        self.quiet = quiet
        self.json_mode = json_mode
        self._out: Console | None = None
        self._err: Console | None = None
        self._log: logging.Logger | None = None
        if log_file is not None:
            try:
                self._log = _json_logger(log_file)
            except ConfigError as e:  # made before any guarded() block: say it here
                self.error(escape(str(e)))
                raise typer.Exit(ExitCode.USAGE) from None

    def log(self, event: str, **data: object) -> None:
        """Append one structured event to --log-file (one JSON object per line)."""
        if self._log is not None:
            record = {
                "time": datetime.now().astimezone().isoformat(timespec="seconds"),
                "pid": os.getpid(),
                "event": event,
            }
            record.update({k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()})
            self._log.info(json.dumps(record, ensure_ascii=False, default=str))

    @property
    def out(self) -> Console:
        if self._out is None:
            from rich.console import Console
            from rich.theme import Theme

            self._out = Console(theme=Theme(THEME), highlight=False, soft_wrap=True)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            from rich.console import Console
            from rich.theme import Theme

            self._err = Console(theme=Theme(THEME), stderr=True, highlight=False, soft_wrap=True)
        return self._err

    def json(self, obj: Any) -> None:
        # A path that is not valid UTF-8 holds lone surrogates: written as \udcXX escapes,
        # the line stays valid JSON (and jq shows the name with replacement characters).
        text = json.dumps(obj, ensure_ascii=False) + "\n"
        data = text.encode("utf-8", "backslashreplace")
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:  # a text-only stream (tests)
            sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()

    def info(self, message: str) -> None:
        """Progress and summaries: stderr, silenced by --quiet."""
        if not self.quiet:
            self.err.print(message)

    def result(self, renderable: Any) -> None:
        """What the user asked to see: stdout."""
        self.out.print(renderable)

    def warning(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[warning]warning:[/] {message}")

    def error(self, message: str) -> None:
        """Always shown, even with --quiet."""
        self.err.print(f"[error]error:[/] {message}", markup=True)

    @property
    def interactive(self) -> bool:
        return not self.quiet and self.err.is_terminal


LOG_MAX_BYTES = 10 * 2**20
LOG_BACKUPS = 5


def _json_logger(path: Path) -> logging.Logger:
    """A logger writing bare lines to ``path``, rotated at 10 MiB, five old files kept."""
    from logging.handlers import RotatingFileHandler

    from ..errors import ConfigError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    except OSError as e:
        raise ConfigError(f"cannot open the log file {path}: {e.strerror}") from None
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"phototag.events.{path}")
    for old in logger.handlers:  # a second command in the same process (tests, scripts)
        old.close()
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def guarded(output: Output) -> Iterator[None]:
    """Turn library exceptions into a message and a documented exit code."""
    try:
        yield
    except ConfigError as e:
        output.error(escape(str(e)))
        output.log("error", message=str(e))
        raise typer.Exit(ExitCode.USAGE) from None
    except LockedError as e:
        output.error(escape(str(e)))
        output.log("locked", message=str(e))
        raise typer.Exit(ExitCode.LOCKED) from None
    except PhototagError as e:
        output.error(escape(str(e)))
        output.log("error", message=str(e))
        raise typer.Exit(ExitCode.ERROR) from None
    except sqlite3.DatabaseError as e:
        # A query found the index file damaged (a bad disk, a copy taken mid-write): the
        # library's queries do not wrap every read, so the one message is given here.
        text = (f"the index cannot be read: {e}; 'phototag doctor' checks it. Restore a backup, "
                "or move the file aside and scan again to rebuild it")  # fmt: skip
        output.error(escape(text))
        output.log("error", message=text)
        raise typer.Exit(ExitCode.ERROR) from None
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        output.error(f"interrupted by {signal.Signals(signum).name}")
        output.log("interrupted", signal=signal.Signals(signum).name)
        raise typer.Exit(128 + signum) from None


@contextmanager
def index_lock(
    output: Output, index_path: Path, command: str, wait: bool, *, can_wait: bool = True
) -> Iterator[None]:
    """Hold the index's writer lock for a command (released even on SIGKILL: see lock.py).
    ``can_wait``: whether the command has ``--wait`` (the message names it only then)."""
    from ..lock import IndexLock

    lock = IndexLock(index_path, command)
    if wait and lock.held_by_another():
        output.info(f"waiting for {escape(lock.holder())} to finish with the index")
    try:
        lock.acquire(wait=wait)
    except LockedError as e:
        raise e.with_hint(
            "--wait waits for it" if can_wait else "try again when it has finished"
        ) from None
    with lock:
        yield


def install_signal_handlers() -> None:
    """SIGTERM (systemd, kill) stops like Ctrl-C: the batch in flight is rolled back."""
    from ..errors import Interrupted

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, stop)


@contextmanager
def counting_bar(output: Output, what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for long library calls that report ``(done, total)``: a Rich bar with
    the count and a time estimate on a terminal, nothing otherwise (cron, pipes, tests)."""
    if not output.interactive:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn(escape(what)), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=output.err, transient=True)  # fmt: skip
    task = bar.add_task(what, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update
