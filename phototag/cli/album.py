"""phototag album: gather the photos a tag query matches into a folder, kept up to date."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import LinkMode
from . import options as o
from .console import ExitCode, Output, escape, guarded, index_lock, safe_path

if TYPE_CHECKING:
    from ..albums import AlbumReport


def album_command(
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            "-t",
            help="Tag to match (repeatable; case-insensitive; 'animal' matches animal/dog/...).",
        ),
    ] = None,
    any_: Annotated[
        bool,
        typer.Option("--any/--all", help="Photos with any of the tags, or (default) all of them."),
    ] = False,
    not_: Annotated[
        list[str] | None, typer.Option("--not", help="Leave out photos with this tag (repeatable).")
    ] = None,
    min_score: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Only tags scoring at least this much count.")
    ] = 0.0,
    since: Annotated[
        str | None,
        typer.Option(help="Taken on or after this date (YYYY-MM-DD); EXIF date, else file time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Taken on or before this date (YYYY-MM-DD).")
    ] = None,
    under: Annotated[
        list[Path] | None, typer.Option(help="Only photos under this folder (repeatable).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only this recognizer's tags.")
    ] = None,
    min_count: Annotated[
        int,
        typer.Option(
            "--min-count",
            min=0,
            help="At least this many detected boxes of each tag's object: --tag person --min-count 3.",
        ),
    ] = 0,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="The album folder [default: the albums folder / the query]."),
    ] = None,
    link: Annotated[
        LinkMode,
        typer.Option(
            "--link", help="symlink (default), hardlink or copy (keeps metadata and mtime)."
        ),
    ] = LinkMode.SYMLINK,
    html: Annotated[
        bool, typer.Option("--html", help="Also write an index.html contact sheet with thumbnails.")
    ] = False,
    list_: Annotated[
        bool, typer.Option("--list", help="List the albums phototag manages, with their queries.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Bring every managed album up to date.")
    ] = False,
    dry_run: o.DryRun = False,
    index: o.IndexPath = None,
    wait: o.Wait = False,
    log_file: o.LogFile = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the matching photos as JSON lines instead of making an album."
        ),
    ] = False,
    quiet: o.Quiet = False,
) -> None:
    """Gather the photos carrying a tag into an album folder, e.g. --tag "wedding ceremony".

    Running the same command again adds new matches and removes entries that no longer
    match; nothing in the folder that phototag did not create is ever touched.
    """
    from ..albums import album_folder, album_name, build_album, refresh_all
    from ..config import default_albums_dir, default_index_path
    from ..errors import ConfigError
    from ..index import Index
    from ..query import TagQuery

    out = Output(quiet=quiet, json_mode=json_out, log_file=log_file)
    failed = False
    index_path = index or default_index_path()
    writes = not (list_ or json_out or dry_run)
    with (
        guarded(out),
        index_lock(out, index_path, "album", wait) if writes else nullcontext(),
        Index.open(index_path, create=False) as idx,
    ):
        if list_:
            for a in idx.albums():
                from ..albums import query_from_json

                q = query_from_json(a.query)
                if json_out:
                    out.json(
                        {
                            "name": a.name,
                            "folder": str(a.folder),
                            "query": q.describe(),
                            "link": a.link,
                            "html": a.html,
                        }
                    )
                else:
                    out.result(
                        f"[tag]{escape(a.name)}[/]  {escape(q.describe())}  [filepath]{escape(safe_path(a.folder))}[/] ({a.link})"
                    )
            return
        if refresh:
            for report in refresh_all(idx, dry_run=dry_run):
                failed |= _report(out, report, dry_run)
            raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)
        if not tag:
            raise ConfigError("an album needs at least one --tag")
        query = TagQuery(tags=tuple(tag or ()), any=any_, exclude=tuple(not_ or ()), min_score=min_score,
                         since=since, until=until, under=tuple(os.path.abspath(u) for u in under or ()), model=model,
                         min_count=min_count)  # fmt: skip
        if json_out:
            for m in query.matches(idx):
                out.json(m.as_json())
            return
        if out_dir is not None:
            folder = Path(os.path.abspath(out_dir))
            name = folder.name
        else:
            name = album_name(query)
            folder = album_folder(default_albums_dir(), name)
        report = build_album(idx, name, folder, query, link, html=html, dry_run=dry_run)
        failed = _report(out, report, dry_run)
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)


def _report(out: Output, r: AlbumReport, dry_run: bool) -> bool:
    out.log("album", dry_run=dry_run, **r.as_json())
    if out.json_mode:
        out.json({**r.as_json(), "dry_run": dry_run})
    else:
        if dry_run:
            for e in r.added:
                out.result(f"would add {escape(e)}")
            for e in r.removed:
                out.result(f"would remove {escape(e)}")
        for entry, why in r.failed:
            out.error(f"{escape(r.name)}: {escape(entry)}: {escape(why)}")
        verb = "would change" if dry_run else "album"
        out.info(
            f"{verb} [tag]{escape(r.name)}[/] ([filepath]{escape(safe_path(r.folder))}[/]): "
            f"[num]{r.matches}[/] photos, [num]{len(r.added)}[/] added, [num]{len(r.removed)}[/] removed"
            + (f", {len(r.left_alone)} changed by you and left alone" if r.left_alone else "")
        )
    return bool(r.failed)
