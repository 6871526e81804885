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
    config: o.Config = None,
    index: o.IndexPath = None,
    wait: o.Wait = False,
) -> None:
    """Remove a recognizer you trained (shipped ones cannot be removed), and its tags.

    Its tags are deleted from the index, and the keywords phototag wrote for them are taken
    out of the photos' sidecars or files at once (a user's own keywords stay).
    """
    from ..config import default_index_path
    from ..index import Index
    from ..metadata.write import write_tags
    from ..training.train import remove_recognizer
    from .console import ExitCode, index_lock
    from .write import report_writes

    out = Output()
    index_path = index or default_index_path()
    failed = 0
    with guarded(out):
        settings = o.write_settings(config, None, None)
        manifest = remove_recognizer(name, to)
        out.info(f"removed [tag]{escape(name)}[/] ([filepath]{escape(safe_path(manifest))}[/])")
        if index_path.exists():
            with (
                index_lock(out, index_path, "recognizers remove", wait),
                Index.open(index_path, create=False) as idx,
            ):
                had = idx.drop_recognizer(name)
                out.info(f"its tags deleted from [num]{len(had)}[/] photos in the index")
                # Only files phototag wrote hold its keywords: each is rewritten the way it
                # was written, and a photo never written gets no file now.
                written = [pid for pid in had if idx.last_write_mode(pid) is not None]
                if written:
                    events = write_tags(idx, [], settings, photo_ids=written, keep_modes=True)
                    failed = report_writes(out, events, False, None)
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)
