"""phototag album: gather the photos a tag query matches into a folder, kept up to date."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import LinkMode
from ..tagpath import split
from . import options as o
from .console import ExitCode, Output, counting_bar, escape, guarded, index_lock, safe_path

if TYPE_CHECKING:
    from ..index import Index
    from ..library.albums import AlbumReport
    from ..library.query import TagQuery


def album_command(
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            "-t",
            help="Tag to match (repeatable; case-insensitive; 'animal' matches animal/dog/...).",
        ),
    ] = None,
    person: Annotated[
        list[str] | None,
        typer.Option(
            "--person",
            "-p",
            help="A person named with 'phototag people name' (repeatable; with the tags, "
            "--all or --any applies to all of them).",
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
        typer.Option(
            help="Taken on or after this date (YYYY, YYYY-MM or YYYY-MM-DD); EXIF date, else file time."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Taken on or before this date (YYYY, YYYY-MM or YYYY-MM-DD, inclusive)."),
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
    remove: Annotated[
        str | None,
        typer.Option(
            "--remove",
            help="Remove the album of this name: the entries phototag made and its record "
            "(your own files in the folder stay).",
            show_default=False,
        ),
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty", help="Make the album even if no photo matches yet (kept by --refresh)."
        ),
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
    from ..config import default_albums_dir, default_index_path
    from ..errors import ConfigError
    from ..index import Index
    from ..index.paths import canonical_path
    from ..library.albums import album_folder, album_name, build_album, refresh_all, remove_album
    from ..library.query import TagQuery

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
            _list_albums(out, idx)
            return
        if remove is not None:
            gone = remove_album(idx, remove, dry_run=dry_run)
            for entry, why in gone.failed:
                out.error(f"{escape(gone.name)}: {escape(entry)}: {escape(why)}")
            kept = (
                f"; {len(gone.left_alone)} changed by you and left alone" if gone.left_alone else ""
            )
            out.info(f"{'would remove' if dry_run else 'removed'} album [tag]{escape(gone.name)}[/]: "
                     f"[num]{len(gone.removed)}[/] entries{kept}")  # fmt: skip
            raise typer.Exit(ExitCode.FILES_FAILED if gone.failed else ExitCode.OK)
        if refresh:
            for report in refresh_all(idx, dry_run=dry_run):
                failed |= _report(out, report, dry_run)
            raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)
        if not tag and not person:
            raise ConfigError("an album needs at least one --tag or --person")
        from dataclasses import replace

        from ..names import tag_names

        # Tags may be typed in the user's language (--tag 結婚式); the index holds English.
        names = tag_names(o.language(None))
        typed = list(tag or ())  # as the user wrote them, for messages
        if names.names:
            known = {n for c in idx.tag_counts() for n in (c.tag, *split(c.path))}
            tag = [names.english(t, known) for t in tag or ()]
            not_ = [names.english(t, known) for t in not_ or ()]
        o.check_folders(under)
        query = TagQuery(tags=tuple(tag or ()), any=any_, exclude=tuple(not_ or ()), min_score=min_score,
                         since=since, until=until, under=tuple(str(canonical_path(u)) for u in under or ()), model=model,
                         min_count=min_count, people=tuple(person or ()))  # fmt: skip
        _check_names(idx, query, expect_matches=not (allow_empty or json_out))
        matches = query.matches(idx)
        if json_out:
            for m in matches:
                out.json(m.as_json())
            return
        if not matches and not allow_empty:
            from ..errors import ConfigError

            raise ConfigError(
                f"no photo matches {query.describe()}, so the album would be empty: "
                "--allow-empty makes it anyway"
            )
        if out_dir is not None:
            folder = Path(os.path.abspath(out_dir))
            name = folder.name
        else:
            # The album's name in the user's language: "wedding ceremony" -> 結婚式 with --lang ja.
            name = album_name(replace(query, tags=tuple(names.paths(query.tags)),
                                      exclude=tuple(names.paths(query.exclude))))  # fmt: skip
            folder = album_folder(default_albums_dir(), name)
        _refuse_to_replace(idx, name, query)
        with counting_bar(out, "contact sheet") as progress:
            report = build_album(idx, name, folder, query, link, html=html, dry_run=dry_run,
                                 progress=progress, matches=matches)  # fmt: skip
        failed = _report(out, report, dry_run)
        if report.matches == 0:  # say why, when the installed models cannot make the tag
            from ..models.availability import needed_for_tag
            from ..models.catalog import Catalog

            catalog = Catalog.discover()
            for t, shown in zip(query.tags, typed, strict=False):
                if (needed := needed_for_tag(catalog, t, names.language)) is not None:
                    out.warning(f"no photo has '{escape(shown)}': {escape(needed.sentence())}")
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)


def _refuse_to_replace(idx: Index, name: str, query: TagQuery) -> None:
    """An album of this name made from another query (its name comes from the tags alone, so
    'cat' and 'cat --under Trips' share one) is not silently replaced by this one."""
    from ..errors import ConfigError
    from ..library.albums import query_from_json

    existing = idx.album(name)
    if existing is None or existing.query == query.to_json():
        return
    try:
        saved = query_from_json(existing.query).describe()
    except (ValueError, KeyError, TypeError):
        saved = "another query"
    raise ConfigError(
        f"an album named {name!r} already exists, made from {saved}: '--out FOLDER' makes this "
        f"one elsewhere, or 'phototag album --remove {name}' first"
    )


def _check_names(idx: Index, query: TagQuery, *, expect_matches: bool) -> None:
    """Unknown recognizers and tags are usage errors, with the closest names (issue 14)."""
    from ..models.catalog import Catalog
    from ..namecheck import EmptyAlbumError, check_recognizer, check_tags

    catalog = Catalog.discover()
    if query.model is not None:
        check_recognizer(query.model, catalog, idx)
    try:
        check_tags(query.tags, idx, catalog, model=query.model, expect_matches=expect_matches)
    except EmptyAlbumError as e:
        raise e.with_hint("--allow-empty makes it anyway (scan -m RECOGNIZER runs one)") from None
    check_tags(query.exclude, idx, catalog, model=query.model, expect_matches=False)


def _list_albums(out: Output, idx: Index) -> None:
    from rich.table import Table

    from ..library.albums import query_from_json

    albums = idx.albums()
    table = Table(box=None)
    for col in ("album", "photos", "query", "link", "folder"):
        table.add_column(col, justify="right" if col == "photos" else "left", overflow="fold")
    for a in albums:
        q = query_from_json(a.query)
        photos = len(idx.album_entries(a.name))
        if out.json_mode:
            out.json({"name": a.name, "folder": str(a.folder), "query": q.describe(),
                      "photos": photos, "link": a.link, "html": a.html})  # fmt: skip
            continue
        # An album named after its query (the default) would show the same words twice.
        query = "" if q.describe() == a.name else escape(q.describe())
        table.add_row(f"[tag]{escape(a.name)}[/]", str(photos), query, a.link,
                      f"[filepath]{escape(safe_path(a.folder))}[/]")  # fmt: skip
    if not out.json_mode:
        if albums:
            out.result(table)
        out.info(f"[num]{len(albums)}[/] albums")


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
            f"[num]{r.matches}[/] photos"
            + (f" (+[num]{r.companions}[/] RAW/Live Photo files)" if r.companions else "")
            + f", [num]{len(r.added)}[/] entries added, [num]{len(r.removed)}[/] removed"
            + (f", {len(r.left_alone)} changed by you and left alone" if r.left_alone else "")
        )
    return bool(r.failed)
