"""phototag train, phototag retag and phototag tag: recognizers of your own, and corrections."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import Device
from . import options as o
from .console import ExitCode, Output, counting_bar, escape, guarded, index_lock, safe_path

if TYPE_CHECKING:
    from ..training.train import TrainReport


def train_command(
    folder: Annotated[
        Path | None,
        typer.Argument(help="A folder with one sub-folder of photos per tag.", show_default=False),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="The recognizer's name (use it with --model).")
    ] = "",
    from_keywords: Annotated[
        bool,
        typer.Option(
            "--from-keywords", help="Learn the keywords already in your photos' files and sidecars."
        ),
    ] = False,
    from_corrections: Annotated[
        bool,
        typer.Option(
            "--from-corrections", help="Learn the tags you added with 'phototag tag add'."
        ),
    ] = False,
    backbone: Annotated[
        str, typer.Option(help="The backbone whose embeddings the head is trained on.")
    ] = "efficientnet-lite0",
    augment: Annotated[
        bool,
        typer.Option(help="Also train on flipped, cropped and recoloured copies of each photo."),
    ] = True,
    copies: Annotated[int, typer.Option(min=1, max=32, help="Augmented copies per photo.")] = 4,
    holdout: Annotated[
        float,
        typer.Option(
            min=0.05, max=0.5, help="Share of photos held out to measure precision and recall."
        ),
    ] = 0.2,
    folds: Annotated[
        int | None,
        typer.Option(
            min=2,
            max=20,
            help="k-fold cross-validation instead of a held-out share.",
            show_default=False,
        ),
    ] = None,
    multi_label: Annotated[
        bool,
        typer.Option(
            "--multi-label", help="Tags can co-occur (one-vs-rest) rather than one tag per photo."
        ),
    ] = False,
    min_examples: Annotated[
        int,
        typer.Option(min=2, help="With --from-keywords: keywords on fewer photos are left out."),
    ] = 10,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same photos and seed give the same recognizer.")
    ] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a recognizer of the same name (yours, or a shipped one)."
        ),
    ] = False,
    device: o.Device = Device.AUTO,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """Train a recognizer on your own photos: DIR/cat/*.jpg, DIR/dog/*.jpg -> tags cat, dog.

    Nested sub-folders become hierarchical tags. Reports precision and recall per tag
    measured on photos held out of training, and saves the recognizer next to the shipped
    ones, for scan, classify, retag and album.
    """
    from ..config import default_index_path
    from ..index import Index
    from ..training.train import (
        TrainingError,
        TrainOptions,
        train_from_corrections,
        train_from_folder,
        train_from_keywords,
    )

    out = Output(json_mode=json_out)
    with guarded(out), _naming_hints():
        if not name:
            raise TrainingError("--name is required: what to call the new recognizer")
        if sum(map(bool, (folder, from_keywords, from_corrections))) != 1:
            raise TrainingError("give either a FOLDER, --from-keywords or --from-corrections")
        opts = TrainOptions(name=name, backbone=backbone, augment=augment, copies=copies, holdout=holdout,
                            folds=folds, multi_label=multi_label, seed=seed, device=device,
                            force=force)  # fmt: skip
        if folder is not None:
            with counting_bar(out, "reading photos") as progress:
                report = train_from_folder(folder, opts, progress=progress)
        else:
            index_path = index or default_index_path()
            with (
                index_lock(out, index_path, "train", False, can_wait=False),
                Index.open(index_path, create=False) as idx,
            ):
                if from_keywords:
                    report = train_from_keywords(idx, opts, min_examples=min_examples)
                else:
                    report = train_from_corrections(idx, opts)
    _print_report(out, report)


@contextlib.contextmanager
def _naming_hints() -> Iterator[None]:
    """A taken name, with the two ways on in this command's own options."""
    from ..training.train import RecognizerExistsError

    try:
        yield
    except RecognizerExistsError as e:
        raise e.with_hint(
            "--force replaces it, or choose another --name ('phototag recognizers list' shows them)"
            if e.existing is not None
            else "choose another --name, or --force to replace it on purpose"
        ) from None


def _print_report(out: Output, r: TrainReport) -> None:
    from rich.table import Table

    if out.json_mode:
        out.json({
            "name": r.name, "manifest": str(r.manifest), "accuracy": r.accuracy, "evaluated_on": r.evaluated_on,
            "examples": r.examples,
            "tags": [{"tag": m.path, "examples": m.examples, "precision": m.precision, "recall": m.recall,
                      "support": m.support} for m in r.tags],
            "confusions": [{"true": a, "predicted": b, "photos": n} for a, b, n in r.confusions],
            "warnings": r.warnings,
            "suggestions": [{"path": os.fsdecode(p), "tag": t, "score": round(s, 4)} for p, t, s in r.suggestions],
        })  # fmt: skip
        return
    table = Table(
        title=f"{r.name}: accuracy {r.accuracy:.1%} on {r.evaluated_on}", title_justify="left"
    )
    for col in ("tag", "photos", "precision", "recall", "tested on"):
        table.add_column(col, justify="left" if col == "tag" else "right")
    for m in r.tags:
        table.add_row(
            escape(m.path), str(m.examples), f"{m.precision:.2f}", f"{m.recall:.2f}", str(m.support)
        )
    out.result(table)
    for a, b, n in r.confusions[:10]:
        out.result(f"  confused: {n} x [tag]{escape(a)}[/] taken for [tag]{escape(b)}[/]")
    for w in r.warnings:
        out.warning(escape(w))
    for p, t, s in r.suggestions[:20]:
        out.result(f"  suggest [tag]{escape(t)}[/] {s:.2f} for [filepath]{escape(safe_path(p))}[/]")
    if len(r.suggestions) > 20:
        out.result(f"  ... and {len(r.suggestions) - 20} more suggestions (--json lists them all)")
    out.info(f"saved [filepath]{escape(safe_path(r.manifest))}[/]; "
             f"'phototag retag -m {escape(r.name)}' tags your library with it, no decoding needed")  # fmt: skip


def retag_command(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Recognizer to apply (repeatable) [default: [scan] recognizers in the config "
            "file, else every installed one].",
            show_default=False,
        ),
    ] = None,
    backbone: o.ScanBackbone = None,
    threshold: o.ScanThreshold = None,
    top_k: o.ScanTopK = None,
    write: o.WriteModeOpt = None,
    sidecar_name: o.SidecarName = None,
    config: o.Config = None,
    index: o.IndexPath = None,
    wait: o.Wait = False,
    log_file: o.LogFile = None,
    quiet: o.Quiet = False,
) -> None:
    """Apply recognizers to the embeddings stored in the index, without decoding a single image.

    Updates the tags in the index and, where tags are written (sidecar or embed), the files.
    """
    from ..config import WriteMode, default_index_path
    from ..index import Index
    from ..metadata.write import write_tags
    from ..tagging.retag import retag
    from .write import report_writes

    out = Output(quiet=quiet, log_file=log_file)
    index_path = index or default_index_path()
    failed = 0
    with guarded(out):
        settings = o.write_settings(config, write, sidecar_name)
        # The same recognizers and cut-offs as a plain scan, so the two never fight.
        chosen = o.scan_settings(config, model, threshold, top_k, backbone)
        with (
            index_lock(out, index_path, "retag", wait),
            Index.open(index_path, create=False) as idx,
        ):
            report = retag(
                idx,
                chosen.recognizers,
                threshold=o.DEFAULT_THRESHOLD if chosen.threshold is None else chosen.threshold,
                top_k=o.DEFAULT_TOP_K if chosen.top_k is None else chosen.top_k,
                backbone=chosen.backbone,
            )
            out.info(f"[num]{report.photos}[/] photos retagged with {', '.join(report.recognizers)}: "
                     f"[num]{report.changed}[/] changed in [num]{report.seconds:.1f}[/] s")  # fmt: skip
            out.log(
                "summary",
                command="retag",
                photos=report.photos,
                changed=report.changed,
                seconds=report.seconds,
            )
            changed = report.changed_ids
            keep = write is None
            if keep:
                # Each photo keeps the mode it was written with (a photo written embedded gets
                # no sidecar). A photo never written gets no file: the index cannot tell a
                # 'scan --write none' from a scan that had no tags to write, and the first
                # must stay untouched; so say how many, and how to write them.
                written = {pid for pid in changed if idx.last_write_mode(pid) is not None}
                unwritten = [pid for pid in changed if pid not in written]
                changed = [pid for pid in changed if pid in written]
                if unwritten:
                    out.info(
                        f"[num]{len(unwritten)}[/] of them have never been written into a file "
                        "(scanned with --write none, or with no tags then): 'phototag write' "
                        "writes them, or retag --write sidecar|embed"
                    )
            if changed and (keep or settings.mode is not WriteMode.NONE):
                events = write_tags(idx, [], settings, photo_ids=changed, keep_modes=keep)
                failed = report_writes(out, events, False, None)
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)


def tag_command(
    action: Annotated[str, typer.Argument(help="add or remove", show_default=False)],
    photo: Annotated[
        Path,
        typer.Argument(
            help="The photo (as indexed, or an album entry that links to it).", show_default=False
        ),
    ],
    tag: Annotated[
        str,
        typer.Argument(
            help="A tag ('beach') or a path ('scene/nature/seashore'); '\\/' for a '/' "
            "inside a tag ('AC\\/DC').",
            show_default=False,
        ),
    ],
    config: o.Config = None,
    index: o.IndexPath = None,
    wait: o.Wait = False,
) -> None:
    """Correct a photo's tags by hand, and write the correction into its files at once.

    Every query (album and its contact sheet, tags, show, similar --by tags) sees the
    corrected tags; corrections follow the photo's content wherever it moves, and 'phototag
    train --from-corrections' learns from them. The files are written the way the photo was
    written before (sidecar or embedded), else as the configuration says.
    """
    from ..config import default_index_path
    from ..errors import ConfigError
    from ..index import Index
    from ..library import corrections
    from ..metadata.write import write_tags
    from .write import report_writes, written_what

    out = Output()
    index_path = index or default_index_path()
    failed = 0
    with guarded(out):
        if action not in ("add", "remove"):
            raise ConfigError("the action is 'add' or 'remove'")
        settings = o.write_settings(config, None, None)
        with (
            index_lock(out, index_path, "tag", wait),
            Index.open(index_path, create=False) as idx,
        ):
            from ..library.lookup import indexed_path

            # An album entry stands for its photo (docs/albums.md).
            which = indexed_path(idx, photo)
            done = (corrections.add if action == "add" else corrections.remove)(idx, which, tag)
            verb = "added" if action == "add" else "removed"
            note = "" if done.changed else " (it had it already; the correction is recorded)"
            out.info(f"{verb} [tag]{escape(done.path)}[/]{note}")
            events = write_tags(idx, [], settings, photo_ids=[done.photo_id], keep_modes=True)
            failed = report_writes(out, events, False, written_what(settings))
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)
