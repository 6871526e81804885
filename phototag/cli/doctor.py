"""phototag doctor: what phototag runs on, and whether it can run at all."""

from __future__ import annotations

import typer

from ..config import Device
from . import options as o
from .console import ExitCode, Output, escape, guarded


def doctor_command(
    index: o.IndexPath = None,
    device: o.Device = Device.AUTO,
    json_out: o.Json = False,
) -> None:
    """Print versions, execution providers, model files and the index location, and check them."""
    from ..doctor import diagnose

    out = Output(json_mode=json_out)
    with guarded(out):
        report = diagnose(index, device)
    if json_out:
        out.json(report.as_json())
    else:
        for section, items in report.sections.items():
            out.result(f"[bold]{section}[/]")
            for key, value in items.items():
                out.result(f"  {key}: {escape(str(value))}")
        for p in report.problems:
            out.error(escape(p))
    raise typer.Exit(ExitCode.ERROR if report.problems else ExitCode.OK)
