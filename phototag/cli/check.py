"""phototag check: sidecar conflicts and orphans in a library."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from . import options as o
from .console import ExitCode, Output, escape, guarded, safe_path


def check_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Folders (or photos) to check.", show_default=False)
    ],
    json_out: o.Json = False,
) -> None:
    """List sidecar conflicts and orphans: two conventions for one photo (IMG.jpg.xmp and
    IMG.xmp), one IMG.xmp claimed by two photos, upper/lower-case twins (IMG.xmp and IMG.XMP),
    and sidecars whose photo is gone. Only lists: changes nothing. Exit code 1 when it finds any.
    """
    from ..metadata.sidecars import check_sidecars

    out = Output(json_mode=json_out)
    with guarded(out):
        problems = check_sidecars(paths)
    for p in problems:
        if json_out:
            out.json(p.as_json())
        else:
            where = os.path.dirname(p.sidecars[0])
            out.result(
                f"[warning]{p.kind.value}[/] in [filepath]{escape(safe_path(Path(where)))}[/]: "
                f"{escape(p.message)}"
            )
    out.info(f"[num]{len(problems)}[/] sidecar problems")
    raise typer.Exit(ExitCode.FILES_FAILED if problems else ExitCode.OK)
