"""phototag catalog: item catalogues (a shop's products) searched by similarity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as o
from .console import ExitCode, Output, escape, guarded, safe_path

app = typer.Typer(
    help="Item catalogues: register images with fields (URL, price, ...) and find the items "
    "most like a photo. Kept apart from the photo library.",
    no_args_is_help=True,
)

Name = Annotated[
    str, typer.Argument(help="Catalogue name (letters, digits, '.', '_', '-').", show_default=False)
]


@app.command("add")
def add_command(
    name: Name,
    images: Annotated[list[Path], typer.Argument(help="Item images.", show_default=False)],
    meta: Annotated[
        Path | None,
        typer.Option(
            "--meta",
            help="CSV with a header: an 'image' column (the image's file name) and any fields.",
            show_default=False,
        ),
    ] = None,
    model: o.Models = None,
    json_out: o.Json = False,
) -> None:
    """Register images as items (re-adding an image's file name replaces the item)."""
    from ..library.catalogs import ItemCatalog, NotRegistered, read_fields, register

    out = Output(json_mode=json_out)
    failed = added = replaced = 0
    with guarded(out):
        fields = read_fields(meta) if meta is not None else {}
        with ItemCatalog.open(name, create=True) as cat:
            for ev in register(cat, images, fields=fields, recognizers=model):
                if isinstance(ev, NotRegistered):
                    failed += 1
                    out.error(f"[filepath]{escape(safe_path(ev.image))}[/]: {escape(ev.reason)}")
                    continue
                added += ev.new
                replaced += not ev.new
                if json_out:
                    out.json({"key": ev.key, "new": ev.new})
            total = len(cat.items())
        missing = sorted(set(fields) - {p.name for p in images})
        if missing:
            out.warning(
                f"{len(missing)} rows of {escape(str(meta))} name no given image, e.g. {escape(missing[0])}"
            )
    out.info(
        f"catalogue {escape(name)}: {added} added, {replaced} replaced, {failed} failed; {total} items"
    )
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)


@app.command("similar")
def similar_command(
    name: Name,
    photo: Annotated[Path, typer.Argument(help="A photo to compare.", show_default=False)],
    n: Annotated[int, typer.Option("-n", min=1, help="How many items.")] = 10,
    weight: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Weight of the embedding against the shared tags."),
    ] = 0.7,
    json_out: o.Json = False,
) -> None:
    """The items most like PHOTO, with their fields."""
    from rich.table import Table

    from ..library.catalogs import ItemCatalog, similar_items

    out = Output(json_mode=json_out)
    with guarded(out):
        with ItemCatalog.open(name) as cat:
            found = similar_items(cat, photo, n=n, weight=weight)
        if json_out:
            for m in found:
                out.json(m.as_json())
        else:
            table = Table(
                title=f"most like {escape(safe_path(photo))} in {escape(name)}",
                title_justify="left",
            )
            for col in ("score", "item", "fields"):
                table.add_column(col)
            for m in found:
                table.add_row(f"{m.score:.3f}", escape(m.item.key),
                              escape(", ".join(f"{k}={v}" for k, v in m.item.fields.items())))  # fmt: skip
            out.result(table)
    raise typer.Exit(ExitCode.OK)


@app.command("list")
def list_command(json_out: o.Json = False) -> None:
    """The catalogues and how many items each holds."""
    from ..library.catalogs import ItemCatalog, list_catalogs

    out = Output(json_mode=json_out)
    with guarded(out):
        for name in list_catalogs():
            with ItemCatalog.open(name) as cat:
                count = len(cat.items())
            if json_out:
                out.json({"name": name, "items": count})
            else:
                out.result(f"{escape(name)}  {count} items")
    raise typer.Exit(ExitCode.OK)


@app.command("remove")
def remove_command(name: Name) -> None:
    """Delete a catalogue (its items; the images themselves are not touched)."""
    from ..library.catalogs import ItemCatalog

    out = Output()
    with guarded(out):
        with ItemCatalog.open(name) as cat:
            path = cat.path
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    out.info(f"removed catalogue {escape(name)}")
    raise typer.Exit(ExitCode.OK)
