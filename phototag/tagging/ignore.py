"""Paths a scan leaves out: gitignore-style patterns (issue 14).

Patterns come from ``.phototagignore`` at the top of each scanned folder, from the config
file's ``[scan] exclude`` and from ``--exclude``; all of them are read relative to the
scanned folder they apply to, with git's own rules (``dir/`` only folders, ``/x`` only at
the top, ``**``, ``!`` to take a pattern back), as implemented by the ``pathspec`` library
(``GitIgnoreSpec``, which follows git's edge cases where the older ``gitwildmatch`` did not).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ConfigError

#: The file, at the top of a scanned folder, whose patterns that folder's scan leaves out.
IGNORE_FILE = ".phototagignore"
#: A bigger ignore file is not a list of patterns (and is not read whole).
MAX_IGNORE_BYTES = 1 << 20


class Excludes:
    """Which paths under a set of scan roots are excluded."""

    def __init__(self, roots: Sequence[Path], patterns: Iterable[str] = ()) -> None:
        """``roots``: absolute scan roots; ``patterns``: from the config and the command line.

        Raises ConfigError for a pattern or an ignore file pathspec refuses, or an ignore
        file that cannot be read (a file left out by mistake is a silent surprise)."""
        import pathspec

        common = list(patterns)
        self._specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
        for root in roots:
            lines = common + _read_ignore_file(Path(root) / IGNORE_FILE)
            if not lines:
                continue
            try:
                spec = pathspec.GitIgnoreSpec.from_lines(lines)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"bad exclude pattern for {root}: {e}") from None
            self._specs.append((os.fspath(root).rstrip(os.sep) or os.sep, spec))
        # Deepest root first: a file under two roots follows the closer one's file.
        self._specs.sort(key=lambda rs: -len(rs[0]))

    def __bool__(self) -> bool:
        return bool(self._specs)

    def excluded(self, path: Path | str, is_dir: bool = False) -> bool:
        """Whether ``path`` (absolute, under a root) is left out; folders end their relative
        path with '/', so that 'Screenshots/' matches the folder and all below it."""
        text = os.fspath(path)
        for root, spec in self._specs:
            prefix = root if root.endswith(os.sep) else root + os.sep
            if text.startswith(prefix):
                rel = text[len(prefix) :].replace(os.sep, "/")
                return bool(rel) and spec.match_file(rel + ("/" if is_dir else ""))
        return False


def _read_ignore_file(path: Path) -> list[str]:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_IGNORE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):  # no file, or the root is a file itself
        return []
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a file of patterns") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_IGNORE_BYTES:
        raise ConfigError(f"{path} is over {MAX_IGNORE_BYTES >> 20} MiB: not a list of patterns")
    return data.decode("utf-8", "surrogateescape").splitlines()
