"""phototag recognizers: list the recognizers (shipped, zero-shot and your own) and remove
the ones you trained."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as o
from .console import Output, escape, guarded, safe_path

app = typer.Typer(
    help="List recognizers and remove the ones you trained (phototag train).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

WeightsFolder = Annotated[
    Path | None,
    typer.Option(
        "--to",
        help="The weights folder trained recognizers are in [default: the user's weights folder].",
        show_default=False,
    ),
]


@app.command("list")
def list_command(json_out: o.Json = False) -> None:
    """Show every recognizer: its origin (shipped, zero-shot vocabulary, trained by you),
    the backbone it runs on, its number of tags and its manifest."""
    from rich.table import Table

    from ..models.recognizer_list import list_recognizers

    out = Output(json_mode=json_out)
    with guarded(out):
        rows = list_recognizers()
    if json_out:
        for r in rows:
            out.json(r.as_json())
        return
    table = Table(box=None)
    for col in ("name", "origin", "runs on", "tags", "manifest"):
        table.add_column(col, justify="right" if col == "tags" else "left", overflow="fold")
    for r in rows:
        table.add_row(f"[tag]{escape(r.name)}[/]", r.origin.value, escape(r.backbone),
                      str(r.tags), f"[filepath]{escape(safe_path(r.manifest))}[/]")  # fmt: skip
    out.result(table)


@app.command("remove")
def remove_command(
    name: Annotated[
        str, typer.Argument(help="The trained recognizer to remove.", show_default=False)
    ],
    to: WeightsFolder = None,
) -> None:
    """Remove a recognizer you trained (shipped ones cannot be removed).

    Its tags stay in the index and in sidecars until a scan or retag without it replaces
    them; 'phototag clean' takes back what phototag wrote.
    """
    from ..training.train import remove_recognizer

    out = Output()
    with guarded(out):
        manifest = remove_recognizer(name, to)
    out.info(f"removed [tag]{escape(name)}[/] ([filepath]{escape(safe_path(manifest))}[/])")
