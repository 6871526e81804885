"""phototag failures: the files a scan could not read, remembered until they change."""

from __future__ import annotations

import typer

from . import options as o
from .console import Output, escape, guarded, safe_path


def failures_command(index: o.IndexPath = None, json_out: o.Json = False) -> None:
    """List the files that failed to be read and are not read again until they change.

    A nightly scan counts them in one line instead of repeating each error; this lists
    them, with the reason, so they can be fixed, moved away or excluded (.phototagignore).
    """
    from ..config import default_index_path
    from ..index import Index
    from ..index.store import decode_path

    out = Output(json_mode=json_out)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        known = sorted(idx.known_failures().items())
    for raw, f in known:
        path = decode_path(raw)
        if json_out:
            out.json({"path": str(path), "error": f.reason, "size": f.size})
        else:
            out.result(f"[filepath]{escape(safe_path(path))}[/]: {escape(f.reason)}")
    if not json_out:
        out.info(f"[num]{len(known)}[/] files failed and are unchanged since")
    raise typer.Exit(0)
