"""phototag scan: tag every photo under the given folders and record it in the index."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from ..config import Device, Engine, WriteMode
from ..media.kinds import FileKind
from ..media.pairs import CompanionRole
from . import options as o
from .console import ExitCode, Output, escape, guarded, index_lock, safe_path

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, TaskID

    from ..tagging.scan import FileCounts, ScanOptions, ScanReport

T = TypeVar("T")


def scan_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Folders or files to scan.", show_default=False)
    ],
    model: o.ScanModels = None,
    backbone: o.ScanBackbone = None,
    threshold: o.ScanThreshold = None,
    top_k: o.ScanTopK = None,
    exclude: o.Exclude = None,
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
    faces: Annotated[
        bool | None,
        typer.Option(
            "--faces/--no-faces",
            help="Find faces and group them into people (see phototag people) [default: on "
            "when no --model is given, unless 'phototag people forget' turned faces off].",
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
    from ..tagging.scan import Failed, Finished, Planned, Read, ScanOptions, Tagged, scan

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
    report = None
    write_failed = 0
    with guarded(out):
        settings = o.write_settings(config, write, sidecar_name, iptc, backup)
        chosen = o.scan_settings(config, model, threshold, top_k, backbone, exclude)
    opts = ScanOptions(
        recognizers=chosen.recognizers, threshold=_or(chosen.threshold, o.DEFAULT_THRESHOLD),
        top_k=_or(chosen.top_k, o.DEFAULT_TOP_K), batch_size=batch_size, workers=workers,
        device=device, follow_symlinks=follow_symlinks, read_timeout=read_timeout, engine=engine,
        address=address, backbone=chosen.backbone, exclude=chosen.exclude, faces=faces,
    )  # fmt: skip
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
                elif isinstance(ev, Read):
                    progress.advance()
                elif isinstance(ev, Tagged):
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
        _summary(out, report, opts)
        out.log("summary", command="scan", **report.as_json())
        if json_out:
            out.json({"summary": report.as_json()})
        if settings.mode is not WriteMode.NONE:
            from ..metadata.write import write_tags
            from .write import report_writes, written_what

            rec = list(opts.recognizers) if opts.recognizers else None
            events = write_tags(idx, paths, settings, recognizers=rec)
            write_failed = report_writes(out, events, False, written_what(settings))
    assert report is not None
    # Known failures (unchanged since they failed) alone do not fail a nightly run again:
    # 'phototag failures' lists them.
    new_failures = report.failed - report.known_failed
    raise typer.Exit(ExitCode.FILES_FAILED if new_failures or write_failed else ExitCode.OK)


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


def _summary(out: Output, r: ScanReport, opts: ScanOptions) -> None:
    for w in r.warnings:
        out.warning(escape(w))
    if not out.json_mode:  # with --json the failures are records on stdout already
        # New failures are errors (shown even with --quiet); failures met before, on files
        # unchanged since, are one line that --quiet silences, so cron stays quiet (issue 14).
        for f in sorted(r.failures, key=lambda f: str(f.path)):
            if not f.known:
                out.error(f"[filepath]{escape(safe_path(f.path))}[/]: {escape(f.reason)}")
        if r.rescored:
            # Said every time: a one-off --threshold is undone by the next plain scan.
            out.info(
                f"[num]{r.rescored}[/] unchanged photos tagged again from their stored "
                f"embeddings (threshold {opts.threshold:g}, top-k {opts.top_k}), nothing decoded; "
                "\\[scan] in the config file keeps settings for every scan"
            )
        if r.known_failed:
            out.info(
                f"[num]{r.known_failed}[/] files that failed before are unchanged and were not "
                "read again ('phototag failures' lists them)"
            )
    # No provider here: the models ran elsewhere (the Ray engine's actors).
    on = ", ".join(p.removesuffix("ExecutionProvider") for p in r.providers) or "the cluster"
    speed = f" ({r.tagged / r.seconds:.1f} images/s on {on})" if r.tagged and r.seconds > 0 else ""
    if out.json_mode:
        # The summary is a JSON line on stdout (with the counts by kind in it); the files
        # not tagged, by kind and path, are a line of their own.
        out.json({"files": r.files.as_json()})
        return
    out.info(files_line(r.files))
    # found = unchanged + tagged + reused + rescored + failed; removed counts index entries.
    out.info(
        f"[num]{r.found}[/] files: [num]{r.tagged}[/] tagged, [num]{r.reused}[/] reused, "
        + (f"[num]{r.rescored}[/] rescored, " if r.rescored else "")
        + f"[num]{r.unchanged}[/] unchanged, [num]{r.failed}[/] failed; [num]{r.removed}[/] "
        "removed from the index; "
        + (f"[num]{r.offline}[/] offline (kept); " if r.offline else "")
        + (f"[num]{r.excluded}[/] excluded (kept); " if r.excluded else "")
        + f"in [num]{r.seconds:.1f}[/] s{speed}"
    )
    if r.same_file:
        out.info(f"[num]{r.same_file}[/] other names (hard links, symlinks) of photos counted once")
    if r.faces or r.new_people:
        # New people are grouped from every face not yet in a person, found now or before.
        found = f"[num]{r.faces}[/] faces found in the photos tagged; " if r.faces else ""
        out.info(
            f"{found}[num]{r.new_people}[/] new people grouped from the faces not yet in one"
            " (phototag people)"
        )


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"[num]{count}[/] {one if count == 1 else (many or one + 's')}"


def files_line(f: FileCounts) -> str:
    """``14 files: 6 photos, 2 RAW, 3 videos, 1 sidecar, 0 ignored, 2 unsupported (1 .PSD,
    1 .XCF)``: every file the walk saw, in one kind each, adding up to the first number."""
    k = f.kinds
    parts = [
        _n(k[FileKind.PHOTO], "photo"),
        _n(k[FileKind.RAW], "RAW", "RAW"),
        _n(k[FileKind.VIDEO], "video"),
        _n(k[FileKind.SIDECAR], "sidecar"),
        f"[num]{k[FileKind.IGNORED]}[/] ignored",
        f"[num]{k[FileKind.UNSUPPORTED]}[/] unsupported",
    ]
    if f.unsupported_by_extension:
        parts[-1] += " (" + ", ".join(
            f"{n} {escape(ext)}" for ext, n in sorted(
                f.unsupported_by_extension.items(), key=lambda kv: (-kv[1], kv[0])
            )
        ) + ")"  # fmt: skip
    if f.unreadable:
        parts.append(f"[num]{f.unreadable}[/] unreadable")
    line = f"[num]{f.files}[/] files: " + ", ".join(parts)
    pairs = []
    if n := f.companions.get(CompanionRole.RAW.value, 0):
        pairs.append(_n(n, "RAW+JPEG pair"))
    if n := f.companions.get(CompanionRole.MOTION.value, 0):
        pairs.append(_n(n, "Live Photo"))
    if pairs:
        line += "; " + " and ".join(pairs) + " counted as one item each"
    return line


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
        """The mean rate since the start, once a second has passed: Rich's own estimate
        over its short window read 86730.8 images/s when a whole batch landed at once."""

        def render(self, task: Task) -> Text:
            elapsed = task.finished_time or task.elapsed or 0.0
            if elapsed < 1.0 or not task.completed:
                return Text("- images/s")
            return Text(f"{task.completed / elapsed:.1f} images/s")

    return RateColumn()
