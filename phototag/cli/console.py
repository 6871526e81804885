"""All terminal output: one place that knows about --quiet, --json and colour.

Human-readable results go to stdout; progress, summaries, warnings and errors go to
stderr, so ``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ..errors import ConfigError, PhototagError

if TYPE_CHECKING:
    from rich.console import Console


class ExitCode(IntEnum):
    """Documented in docs/cli.md; scripts and cron rely on them."""

    OK = 0
    FILES_FAILED = 1  # the run finished, but some files could not be read
    USAGE = 2  # bad options or arguments (also click's own usage errors)
    ERROR = 3  # the run could not be done: model, index or device problem
    INTERRUPTED = 130


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
    """The CLI's view of the terminal for one command run."""

    def __init__(self, *, quiet: bool = False, json_mode: bool = False) -> None:
        self.quiet = quiet
        self.json_mode = json_mode
        self._out: Console | None = None
        self._err: Console | None = None

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
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
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
        raise typer.Exit(ExitCode.USAGE) from None
    except PhototagError as e:
        output.error(escape(str(e)))
        raise typer.Exit(ExitCode.ERROR) from None
    except KeyboardInterrupt:
        output.error("interrupted")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
