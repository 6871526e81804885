"""Tag paths: a tag's hierarchy as one string, ``animal/dog/Golden Retriever``.

The parts are joined by ``/``. A part that itself holds a ``/`` (a keyword ``AC/DC``, kept
verbatim: issue 13, item 5) is written with it escaped as ``\\/``, and a backslash as
``\\\\``, so ``mine/AC\\/DC`` is the tag ``AC/DC`` under ``mine``. Paths without either
character read exactly as before, so every path stored by an older phototag keeps its
meaning. Every place that splits a path into parts or takes its leaf goes through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

SEP = "/"
ESCAPE = "\\"


def escape_part(part: str) -> str:
    """One hierarchy level as it is written inside a path."""
    return part.replace(ESCAPE, ESCAPE * 2).replace(SEP, ESCAPE + SEP)


def join(parts: Iterable[str]) -> str:
    """The path of these levels (each taken verbatim)."""
    return SEP.join(escape_part(p) for p in parts)


def split(path: str) -> list[str]:
    """The levels of ``path``, unescaped: ``'mine/AC\\\\/DC'`` -> ``['mine', 'AC/DC']``.

    Empty levels are kept (``'a//b'`` -> ``['a', '', 'b']``); a lone trailing backslash is
    taken literally.
    """
    if ESCAPE not in path:
        return path.split(SEP)  # nearly every path: as fast as before escapes existed
    parts: list[str] = []
    buf: list[str] = []
    it = iter(path)
    for ch in it:
        if ch == ESCAPE:
            nxt = next(it, None)
            buf.append(ESCAPE if nxt is None else nxt)
        elif ch == SEP:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


@lru_cache(maxsize=65536)
def _folded(text: str) -> tuple[str, ...]:
    """Levels, case-folded (queries compare the same few tag paths over and over)."""
    return tuple(p.casefold() for p in split(text))


def leaf(path: str) -> str:
    """The last level, unescaped: what a tag is called (``Golden Retriever``, ``AC/DC``)."""
    return split(path)[-1]


def parent_paths(path: str) -> list[str]:
    """Every proper ancestor below the root: ``a/b/c/d`` -> ``['a/b', 'a/b/c']``."""
    parts = split(path)
    return [join(parts[:d]) for d in range(2, len(parts))]


def term_matches(term: str, path: str) -> bool:
    """Whether a query term names ``path`` or one of its levels, ignoring case.

    The term matches a run of consecutive levels read with ``/`` between them, so
    ``animal`` and ``animal/dog`` match ``animal/dog/Golden Retriever``, and ``AC/DC``
    matches both the one level ``AC/DC`` (a keyword kept verbatim) and two levels ``AC``,
    ``DC``. A term with ``\\/`` names only the single level.
    """
    want_parts = [p for p in _folded(term.strip().strip(SEP)) if p]
    if not want_parts:
        return False
    have = _folded(path)
    n = len(want_parts)
    if any(list(have[i : i + n]) == want_parts for i in range(len(have) - n + 1)):
        return True
    if ESCAPE + SEP in term or not any(SEP in h for h in have):
        return False
    # A level that holds '/' itself (a keyword kept verbatim) is matched by its text.
    want_one = SEP.join(want_parts)
    for i in range(len(have)):
        run = ""
        for j in range(i, len(have)):
            run = have[j] if j == i else f"{run}{SEP}{have[j]}"
            if len(run) > len(want_one):
                break
            if run == want_one:
                return True
    return False
