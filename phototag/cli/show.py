"""phototag show and phototag tags: what the index holds."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..tagpath import leaf
from . import options as o
from .console import ExitCode, Output, escape, guarded, index_lock, safe_path

if TYPE_CHECKING:
    from ..index import Index


def show_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Photos to look up (album entries lead to their photos).", show_default=False
        ),
    ],
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """Print what the index holds for each photo: size, capture time and tags with scores."""
    from rich.table import Table

    from ..config import default_index_path
    from ..errors import ConfigError
    from ..index import Index
    from ..index.paths import canonical_path
    from ..library.corrections import correct_view
    from ..library.lookup import indexed_path
    from ..metadata.read import keywords_in_files

    out = Output(json_mode=json_out)
    missing = 0
    from ..names import tag_names

    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        names = tag_names(o.language(None))
        for p in paths:
            view, why = None, f"{p} is not in the index: scan it first"
            try:
                view = idx.photo(indexed_path(idx, p))
            except ConfigError as e:  # no such file, or not indexed: say which, go on
                why = str(e)
                here = canonical_path(p)
                if os.path.lexists(here) and (owner := idx.companion_owner(here)):
                    # A RAW+JPEG pair's RAW, a Live Photo's MOV: shown as the item they belong to.
                    out.info(
                        f"[filepath]{escape(safe_path(p))}[/] goes with {escape(safe_path(owner))}"
                    )
                    view = idx.photo(owner)
            if view is not None:
                view = correct_view(idx, view)
            if view is None:
                missing += 1
                if json_out:
                    out.json({"path": str(p), "error": why})
                out.error(escape(safe_path(why)))
                continue
            in_files = keywords_in_files(view.path)
            fixes = idx.stored_corrections(view.hash).get(view.hash, [])
            offline = idx.photo_id(view.path) in idx.offline_ids()
            faces = _faces(idx, view.path)
            if json_out:
                out.json({
                    **view.as_json(),
                    "offline": offline,
                    "corrections": [{"path": c.path, "action": c.action, "source": c.source}
                                    for c in fixes],
                    "faces": faces,
                    "keywords_in_files": [
                        {"source": str(k.source), "fields": {f.value: v for f, v in k.fields.items()},
                         **({"error": k.error} if k.error else {})}
                        for k in in_files
                    ],
                })  # fmt: skip
                continue
            taken = view.taken_at or "unknown"
            scanned = datetime.fromtimestamp(view.scanned_at).isoformat(timespec="seconds")
            out.result(f"[filepath]{escape(safe_path(view.path))}[/]")
            what = {"raw": "RAW, ", "video": "video, "}.get(view.kind, "")
            if view.duration is not None:
                what += f"{view.duration:.1f} s, "
            out.result(
                f"  {what}{view.width}x{view.height}, {view.size} bytes, taken {taken}, "
                f"scanned {scanned}"
                + (
                    "  [warning]offline: its folder was missing at the last scan[/]"
                    if offline
                    else ""
                )
            )
            for path, role in view.companions:
                with_what = "its RAW" if role == "raw" else "Live Photo video"
                out.result(f"  {with_what}: [filepath]{escape(safe_path(path))}[/]")
            table = Table(show_edge=False, pad_edge=False, box=None)
            for col in ("model", "tag", "score", "path"):
                table.add_column(col, justify="right" if col == "score" else "left")
            for rec, cands in view.tags.items():
                if not cands:
                    table.add_row(rec, "[muted]-[/]", "", "")
                for i, c in enumerate(cands):
                    local = names.path(c.path)  # --lang: the user's language
                    table.add_row(
                        rec if i == 0 else "",
                        f"[tag]{escape(leaf(local) if names.names else c.tag)}[/]",
                        f"{c.score:.3f}",
                        f"[muted]{escape(local)}[/]",
                    )
            out.result(table)
            if fixes:
                said = [
                    ("+ " if c.action == "add" else "- ") + escape(c.path)
                    + (" (deleted from a file by you)" if c.source == "file" else "")
                    for c in fixes
                ]  # fmt: skip
                out.result("  corrections: " + "; ".join(said))
            found = [(label, s) for _, label, s, _ in view.detections if s >= 0.3]
            if found:
                counts: dict[str, int] = {}
                for label, _ in found:
                    counts[label] = counts.get(label, 0) + 1
                out.result("  detected: " + ", ".join(f"{n} x {escape(label)}" for label, n in counts.items())
                           + "  [muted](boxes scoring >= 0.3; --json lists every box)[/]")  # fmt: skip
            for face in faces:
                who = (
                    f"[tag]{escape(str(face['name']))}[/]"
                    if face["name"]
                    else f"person {face['person']}"
                )
                who = who if face["person"] is not None else "[muted]no person (too small)[/]"
                box = ", ".join(f"{v:.3f}" for v in face["box"])  # type: ignore[attr-defined]
                out.result(
                    f"  face [num]{face['face']}[/]: {who}  box {box}  quality {face['quality']:.2f}"
                )
            for k in in_files:
                out.result(f"  keywords in [filepath]{escape(safe_path(k.source))}[/]:")
                if k.error:
                    out.result(f"    [warning]{escape(k.error)}[/]")
                for f, values in k.fields.items():
                    out.result(f"    {f.value}: {escape(', '.join(values))}")
                if not k.fields and not k.error:
                    out.result("    [muted]none[/]")
    raise typer.Exit(ExitCode.FILES_FAILED if missing else ExitCode.OK)


def _faces(idx: Index, path: Path) -> list[dict[str, object]]:
    """The photo's faces with their people (phototag.index.faces), for show."""
    from ..index import faces as db

    pid = idx.photo_id(path)
    if pid is None:
        return []
    out: list[dict[str, object]] = []
    for f in db.faces_of(idx, pid):
        p = db.person(idx, f.person_id) if f.person_id is not None else None
        out.append({"face": f.id, "person": f.person_id, "name": p.name if p else None,
                    "ignored": bool(p and p.ignored), "box": [round(v, 4) for v in f.box],
                    "score": round(f.score, 4), "quality": round(f.quality, 4)})  # fmt: skip
    return out


def tags_command(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only this recognizer's tags.")
    ] = None,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """List every tag in the index with the number of photos that carry it."""
    from rich.table import Table

    from ..config import default_index_path
    from ..index import Index
    from ..library.corrections import corrected_counts
    from ..names import tag_names

    out = Output(json_mode=json_out)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        if model is not None:
            from ..models.catalog import Catalog
            from ..namecheck import check_recognizer

            check_recognizer(model, Catalog.discover(), idx)
        counts = corrected_counts(idx, model)
        names = tag_names(o.language(None))
    if json_out:
        for c in counts:
            local = (
                {"name": leaf(names.path(c.path)), "name_path": names.path(c.path)}
                if names.names
                else {}
            )
            out.json({"model": c.recognizer, "tag": c.tag, "path": c.path, "photos": c.photos,
                      **local})  # fmt: skip
        return
    table = Table(box=None)
    for col in ("photos", "tag", "model", "path"):
        table.add_column(col, justify="right" if col == "photos" else "left")
    for c in counts:
        table.add_row(
            str(c.photos),
            f"[tag]{escape(leaf(names.path(c.path)))}[/]",
            c.recognizer,
            f"[muted]{escape(names.path(c.path))}[/]",
        )
    out.result(table)
    from ..models.availability import inactive_vocabularies
    from ..models.catalog import Catalog

    with guarded(out):  # once, after the list: the tags no installed model can make
        missing = inactive_vocabularies(Catalog.discover(), names.language)
        if model is not None:  # with -m, only what concerns that recognizer
            missing = [m for m in missing if m.vocabulary == model]
        if missing:
            n = sum(m.tags for m in missing)
            out.info(f"{n} more tags ({', '.join(m.vocabulary for m in missing)}) need an "
                     f"open-vocabulary model: {escape(missing[0].command)} "
                     f"(~{missing[0].download_bytes / 1e9:.1f} GB download), then scan again")  # fmt: skip


def forget_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders to drop.", show_default=False)
    ],
    index: o.IndexPath = None,
    wait: o.Wait = False,
    quiet: o.Quiet = False,
) -> None:
    """Drop photos under PATHS from the index (their files are not touched).

    A scan never drops photos under a folder that is missing or has become empty (an
    unmounted disk or an offline share looks the same): it keeps them as offline. forget is
    how to drop them on purpose.
    """
    from ..config import default_index_path
    from ..index import Index
    from ..index.paths import canonical_path
    from ..library.lookup import check_known

    out = Output(quiet=quiet)
    index_path = index or default_index_path()
    with (
        guarded(out),
        index_lock(out, index_path, "forget", wait),
        Index.open(index_path, create=False) as idx,
    ):
        check_known(idx, paths)  # a typo drops nothing and says so, before anything is dropped
        n = idx.forget([canonical_path(p) for p in paths])
    out.info(f"dropped [num]{n}[/] photos from the index")
