"""phototag write and phototag clean: keywords into files, and back out."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import WriteMode, WriteSettings
from . import options as o
from .console import ExitCode, Output, escape, guarded, index_lock, safe_path

if TYPE_CHECKING:
    from ..metadata.write import TargetKind, WriteEvent

Paths = Annotated[
    list[Path], typer.Argument(help="Photos or folders (as scanned).", show_default=False)
]


def write_command(
    paths: Paths,
    write: o.WriteModeOpt = None,
    sidecar_name: o.SidecarName = None,
    iptc: o.Iptc = None,
    backup: o.Backup = None,
    model: o.Models = None,
    dry_run: o.DryRun = False,
    index: o.IndexPath = None,
    config: o.Config = None,
    wait: o.Wait = False,
    log_file: o.LogFile = None,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Write the tags the index holds into the photos' sidecars or files, without running the models.

    A user's own keywords are never removed; tags phototag wrote earlier and no longer
    has are; running it again with nothing new changes no file.
    """
    from ..config import default_index_path
    from ..index import Index
    from ..library.lookup import check_known
    from ..metadata.write import write_tags

    out = Output(quiet=quiet, json_mode=json_out, log_file=log_file)
    index_path = index or default_index_path()
    with guarded(out):
        settings = o.write_settings(config, write, sidecar_name, iptc, backup)
        with (
            index_lock(out, index_path, "write", wait) if not dry_run else nullcontext(),
            Index.open(index_path, create=False) as idx,
        ):
            check_known(idx, paths)
            events = write_tags(idx, paths, settings, recognizers=model, dry_run=dry_run)
            failed = report_writes(out, events, dry_run, written_what(settings))
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)


def written_what(settings: WriteSettings) -> TargetKind:
    """The kind of file a write in these settings mostly writes (its summary line when nothing
    was written at all)."""
    from ..metadata.write import TargetKind

    return TargetKind.SIDECAR if settings.mode is WriteMode.SIDECAR else TargetKind.EMBEDDED


def clean_command(
    paths: Paths,
    dry_run: o.DryRun = False,
    index: o.IndexPath = None,
    wait: o.Wait = False,
    log_file: o.LogFile = None,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Remove exactly what phototag wrote from sidecars and files, and nothing else.

    Sidecars that phototag created and that hold nothing else are deleted.
    """
    from ..config import default_index_path
    from ..index import Index
    from ..library.lookup import check_known
    from ..metadata.write import clean

    out = Output(quiet=quiet, json_mode=json_out, log_file=log_file)
    index_path = index or default_index_path()
    with (
        guarded(out),
        index_lock(out, index_path, "clean", wait),
        Index.open(index_path, create=False) as idx,
    ):
        check_known(idx, paths)
        events = clean(idx, paths, dry_run=dry_run)
        failed = report_writes(out, events, dry_run, None, cleaning=True)
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)


def report_writes(
    out: Output,
    events: Iterable[WriteEvent],
    dry_run: bool,
    usual: TargetKind | None,
    *,
    cleaning: bool = False,
) -> int:
    """Print (or stream as JSON) write events; returns how many failed.

    One summary line per kind of target handled (sidecars, photos with embedded keywords),
    so the counts add up to the files really looked at; ``usual``: the kind whose line is
    printed (all zeros) when there were no events at all, None for no line then.
    """
    from ..metadata.write import TargetKind, Unchanged, WriteFailed, Wrote

    counts = {k: {"changed": 0, "unchanged": 0, "failed": 0} for k in TargetKind}
    verb = "would change" if dry_run else ("cleaned" if cleaning else "written")
    for ev in events:
        if isinstance(ev, WriteFailed):
            counts[ev.kind]["failed"] += 1
            out.log("write-failed", path=ev.photo, reason=ev.reason)
            if out.json_mode:
                out.json({"path": str(ev.photo), "error": ev.reason})
            out.error(f"[filepath]{escape(safe_path(ev.photo))}[/]: {escape(ev.reason)}")
        elif isinstance(ev, Unchanged):
            counts[ev.kind]["unchanged"] += 1
            for w in ev.warnings:  # a sidecar moved with its photo, or taken back
                out.warning(f"{escape(safe_path(ev.target))}: {escape(w)}")
        elif isinstance(ev, Wrote):
            counts[ev.kind]["changed"] += 1
            out.log("wrote", path=ev.photo, target=ev.target, added=ev.added, removed=ev.removed,
                    deleted=ev.deleted, dry_run=dry_run)  # fmt: skip
            if out.json_mode:
                out.json({"path": str(ev.photo), "target": str(ev.target), "added": ev.added,
                          "removed": ev.removed, "deleted": ev.deleted, "dry_run": dry_run})  # fmt: skip
            elif dry_run:  # the point of a dry run is the list; a real run just says how many
                change = (
                    "delete"
                    if ev.deleted
                    else f"+{sum(map(len, ev.added.values()))} -{sum(map(len, ev.removed.values()))}"
                )
                out.result(f"{verb}: {escape(safe_path(ev.target))} ({change})")
            for w in ev.warnings:
                out.warning(f"{escape(safe_path(ev.target))}: {escape(w)}")
    labels = {TargetKind.SIDECAR: "sidecars", TargetKind.EMBEDDED: "photos (embedded)"}
    used = [k for k in TargetKind if any(counts[k].values())]
    if not used and usual is not None:
        used = [usual]
    for kind in used:
        c = counts[kind]
        out.info(
            f"{labels[kind]}: [num]{c['changed']}[/] {verb}, [num]{c['unchanged']}[/] unchanged, "
            f"[num]{c['failed']}[/] failed"
        )
    out.log(
        "summary",
        command="clean" if cleaning else "write",
        dry_run=dry_run,
        **{f"{k}_{what}": n for k in TargetKind for what, n in counts[k].items()},
        changed=sum(c["changed"] for c in counts.values()),
        unchanged=sum(c["unchanged"] for c in counts.values()),
        failed=sum(c["failed"] for c in counts.values()),
    )
    return sum(c["failed"] for c in counts.values())
