"""phototag scan: tag every photo under the given folders and record it in the index."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import Device, Engine, WriteMode
from . import options as o
from .console import ExitCode, Output, escape, guarded, index_lock, safe_path

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, TaskID

    from ..scan import ScanReport


def scan_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Folders or files to scan.", show_default=False)
    ],
    model: o.Models = None,
    backbone: o.Backbone = None,
    threshold: o.Threshold = o.DEFAULT_THRESHOLD,
    top_k: o.TopK = o.DEFAULT_TOP_K,
    index: o.IndexPath = None,
    device: o.Device = Device.AUTO,
    batch_size: o.BatchSize = None,
    workers: o.Workers = None,
    follow_symlinks: Annotated[
        bool,
        typer.Option(
            help="Also follow symlinks that lead outside the scanned folders (loops are detected)."
        ),
    ] = False,
    read_timeout: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Skip (and report) a file whose reading takes longer than this many seconds.",
        ),
    ] = 120.0,
    engine: Annotated[
        Engine,
        typer.Option(
            help="local (this machine) or ray (a Ray cluster; pip install 'phototag[ray]')."
        ),
    ] = Engine.LOCAL,
    address: Annotated[
        str | None,
        typer.Option(
            help="With --engine ray: the cluster's address (e.g. ray://head:10001) [default: RAY_ADDRESS, else a local Ray].",
            show_default=False,
        ),
    ] = None,
    wait: o.Wait = False,
    log_file: o.LogFile = None,
    write: o.WriteModeOpt = None,
    sidecar_name: o.SidecarName = None,
    iptc: o.Iptc = None,
    backup: o.Backup = None,
    config: o.Config = None,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Tag every photo under PATHS, record the tags in the index, and write them into sidecars.

    Incremental: unchanged files are not read again, moved or copied files keep their
    results (by content), and files that vanished are dropped from the index. Tags go
    into XMP sidecars by default (--write embed|none to change; see phototag write).
    """
    from ..config import default_index_path
    from ..index import Index
    from ..models.catalog import Catalog
    from ..scan import Failed, Finished, Planned, ScanOptions, Tagged, scan

    out = Output(quiet=quiet, json_mode=json_out, log_file=log_file)
    for p in paths:
        try:
            os.stat(p)
        except FileNotFoundError:
            if not os.path.lexists(p):
                out.error(f"no such file or folder: {escape(safe_path(p))}")
                raise typer.Exit(ExitCode.USAGE) from None
        except OSError:
            pass  # unreadable or a broken link: the scan reports it as a failed path
    opts = ScanOptions(
        recognizers=model, threshold=threshold, top_k=top_k, batch_size=batch_size,
        workers=workers, device=device, follow_symlinks=follow_symlinks, read_timeout=read_timeout,
        engine=engine, address=address, backbone=backbone,
    )  # fmt: skip
    report = None
    write_failed = 0
    with guarded(out):
        settings = o.write_settings(config, write, sidecar_name, iptc, backup)
    index_path = index or default_index_path()
    counts = {"tagged": 0, "failed": 0}
    with guarded(out), index_lock(out, index_path, "scan", wait), Index.open(index_path) as idx:
        progress = _Progress(out)
        out.log("start", command="scan", paths=[str(p) for p in paths])
        try:
            catalog = Catalog.discover()
            catalog.notify = lambda message: out.info(escape(message))
            for ev in scan(paths, idx, opts, catalog):
                if isinstance(ev, Planned):
                    progress.start(ev.todo)
                elif isinstance(ev, Tagged):
                    progress.advance()
                    counts["tagged"] += 1
                    out.log("tagged", path=ev.path, reused=ev.reused,
                            tags={r: [c.as_json() for c in cs] for r, cs in ev.tags.items()})  # fmt: skip
                    if json_out:
                        out.json({
                            "path": str(ev.path),
                            "tags": {r: [c.as_json() for c in cs] for r, cs in ev.tags.items()},
                            "reused": ev.reused,
                        })  # fmt: skip
                elif isinstance(ev, Failed):
                    counts["failed"] += 1
                    out.log("failed", path=ev.path, reason=ev.reason, known=ev.known)
                    if not ev.known:
                        progress.advance()
                    if json_out:
                        out.json({"path": str(ev.path), "error": ev.reason, "known": ev.known})
                elif isinstance(ev, Finished):
                    report = ev.report
        except KeyboardInterrupt:
            progress.stop()
            out.error(
                f"stopped after {counts['tagged']} photos tagged and {counts['failed']} failed; the batch "
                "in flight was rolled back; run the same command again to continue"
            )
            raise
        finally:
            progress.stop()
        assert report is not None
        _summary(out, report)
        out.log("summary", command="scan", **report.as_json())
        if settings.mode is not WriteMode.NONE:
            from ..write import write_tags
            from .write import report_writes, written_what

            events = write_tags(idx, paths, settings, recognizers=model)
            write_failed = report_writes(out, events, False, written_what(settings))
    assert report is not None
    raise typer.Exit(ExitCode.FILES_FAILED if report.failed or write_failed else ExitCode.OK)


def _summary(out: Output, r: ScanReport) -> None:
    for w in r.warnings:
        out.warning(escape(w))
    if not out.json_mode:  # with --json the failures are records on stdout already
        for f in sorted(r.failures, key=lambda f: str(f.path)):
            why = escape(f.reason) + (" [muted](unchanged since it failed)[/]" if f.known else "")
            out.error(f"[filepath]{escape(safe_path(f.path))}[/]: {why}")
    # No provider here: the models ran elsewhere (the Ray engine's actors).
    on = ", ".join(p.removesuffix("ExecutionProvider") for p in r.providers) or "the cluster"
    speed = f" ({r.tagged / r.seconds:.1f} images/s on {on})" if r.tagged and r.seconds > 0 else ""
    out.info(
        f"[num]{r.found}[/] photos: [num]{r.tagged}[/] tagged, [num]{r.reused}[/] reused, "
        f"[num]{r.unchanged}[/] unchanged, [num]{r.removed}[/] removed, "
        f"[num]{r.failed}[/] failed in [num]{r.seconds:.1f}[/] s{speed}"
    )
    if r.same_file:
        out.info(f"[num]{r.same_file}[/] other names (hard links, symlinks) of photos counted once")


class _Progress:
    """A Rich progress bar with images/s and ETA, only on a terminal."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self, total: int) -> None:
        if not self.out.interactive or total == 0:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )  # fmt: skip

        self.bar = Progress(
            TextColumn("tagging"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            _RateColumn(), TimeRemainingColumn(), console=self.out.err, transient=True,
        )  # fmt: skip
        self.task = self.bar.add_task("scan", total=total)
        self.bar.start()

    def advance(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _RateColumn() -> ProgressColumn:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} images/s" if speed else "- images/s")

    return RateColumn()
