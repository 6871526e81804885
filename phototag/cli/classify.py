"""phototag classify: print what the models see in some images (the index is not touched)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..config import Device
from ..tagpath import leaf
from . import options as o
from .console import ExitCode, Output, escape, guarded, safe_path


def classify_command(
    paths: Annotated[list[Path], typer.Argument(help="Image files.", show_default=False)],
    model: o.Models = None,
    backbone: o.Backbone = None,
    threshold: o.Threshold = o.DEFAULT_THRESHOLD,
    top_k: o.TopK = o.DEFAULT_TOP_K,
    device: o.Device = Device.AUTO,
    json_out: o.Json = False,
) -> None:
    """Print what the models recognize in each image (the index is not touched).

    With --json: one {"path", "model", "candidates": [{"tag", "score", "path"}]} document
    per image and recognizer, candidates best first.
    """
    from rich.table import Table

    from ..tagging.classify import Classification, classify
    from ..tagging.scan import Failed

    out = Output(json_mode=json_out)
    failed = 0
    from ..names import tag_names

    for p in paths:
        if not os.path.lexists(p):  # a typo, not a file that vanished mid-run: a usage error
            out.error(f"[filepath]{escape(safe_path(p))}[/]: no such file")
            raise typer.Exit(ExitCode.USAGE)
        if p.is_dir():
            out.error(f"[filepath]{escape(safe_path(p))}[/] is a folder: classify takes image "
                      f"files; 'phototag scan {escape(safe_path(p))}' tags every photo in it")  # fmt: skip
            raise typer.Exit(ExitCode.USAGE)
    with guarded(out):
        names = tag_names(o.language(None))
        for res in classify(
            paths,
            recognizers=model,
            threshold=threshold,
            top_k=top_k,
            device=device,
            backbone=backbone,
        ):
            if isinstance(res, Failed):
                failed += 1
                if json_out:
                    out.json({"path": str(res.path), "error": res.reason})
                out.error(f"[filepath]{escape(safe_path(res.path))}[/]: {escape(res.reason)}")
                continue
            assert isinstance(res, Classification)
            if json_out:
                for doc in res.documents():
                    out.json(doc)
                continue
            table = Table(title=escape(safe_path(res.path)), title_justify="left", expand=False)
            table.add_column("model")
            table.add_column("tag", style="tag")
            table.add_column("score", justify="right")
            table.add_column("path", style="muted")
            for name, cands in res.candidates.items():
                if not cands:
                    table.add_row(name, "[muted]-[/]", "", "")
                for i, c in enumerate(cands):
                    local = names.path(c.path)  # --lang: the user's language
                    tag = leaf(local) if names.names else c.tag
                    table.add_row(
                        name if i == 0 else "", escape(tag), f"{c.score:.3f}", escape(local)
                    )
            out.result(table)
    raise typer.Exit(ExitCode.FILES_FAILED if failed else ExitCode.OK)
