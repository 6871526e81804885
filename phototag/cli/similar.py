"""phototag similar and phototag duplicates: search by example, and near-identical photos."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import SimilarBy
from . import options as o
from .console import ExitCode, Output, escape, guarded, safe_path

if TYPE_CHECKING:
    from ..albums import AlbumQuery
    from ..index import Index
    from ..search import Similar


def similar_command(
    photo: Annotated[
        Path,
        typer.Argument(help="The example photo (it need not be in the index).", show_default=False),
    ],
    by: Annotated[
        SimilarBy,
        typer.Option(
            "--by",
            help="embedding (cosine of backbone embeddings) or tags (overlap of tags weighted by score).",
        ),
    ] = SimilarBy.EMBEDDING,
    n: Annotated[int, typer.Option("-n", min=1, help="How many photos to return.")] = 20,
    min_score: Annotated[
        float, typer.Option(help="Only photos at least this similar (0..1).")
    ] = 0.0,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="With --by tags: only this recognizer's tags."),
    ] = None,
    under: o.Under = None,
    album: o.AlbumOfResult = None,
    backbone: Annotated[
        str | None,
        typer.Option(help="Whose embeddings to compare [default: the classifier's]."),
    ] = None,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """List the indexed photos most similar to PHOTO, best first, with a similarity score."""
    from ..albums import SimilarQuery
    from ..config import default_index_path
    from ..index import Index
    from ..search import similar_to

    out = Output(json_mode=json_out)
    if not photo.exists():
        out.error(f"no such file: {escape(safe_path(photo))}")
        raise typer.Exit(ExitCode.USAGE)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        roots = [Path(os.path.abspath(u)) for u in under or ()]
        found = similar_to(
            idx, photo, by, n=n, min_score=min_score, under=roots, model=model, backbone=backbone
        )
        q = SimilarQuery(
            os.path.abspath(photo), by.value, n, min_score, tuple(map(str, roots)), model, backbone
        )
        report_ranked(out, idx, found, album, q)


def report_ranked(
    out: Output, idx: Index, found: list[Similar], album: str | None, query: AlbumQuery
) -> None:
    """Print ranked photos (``score  path``, or JSON lines) and, asked for, make the album."""
    from ..albums import album_folder, build_album
    from ..config import default_albums_dir

    for s in found:
        if out.json_mode:
            out.json(s.as_json())
        else:
            out.result(f"{s.score:.3f}  [filepath]{escape(safe_path(s.path))}[/]")
    if album:
        report = build_album(idx, album, album_folder(default_albums_dir(), album), query)
        out.info(
            f"album [tag]{escape(album)}[/]: [num]{len(report.added)}[/] added at "
            f"[filepath]{escape(safe_path(report.folder))}[/]"
        )


def _same_file_as(paths: list[Path]) -> dict[int, Path]:
    """Position -> an earlier path in ``paths`` that is the same file (st_dev, st_ino)."""
    seen: dict[tuple[int, int], Path] = {}
    out: dict[int, Path] = {}
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            out[i] = seen[key]
        else:
            seen[key] = p
    return out


def duplicates_command(
    threshold: Annotated[
        float,
        typer.Option(
            min=0.5, max=1.0, help="Embedding cosine similarity that counts as a duplicate."
        ),
    ] = 0.90,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="Whose embeddings to compare [default: the classifier's; the default "
            "threshold was measured on EfficientNet-Lite0's]."
        ),
    ] = None,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """List groups of near-identical photos: exact copies, resized copies, re-saves, bursts."""
    from ..config import default_index_path
    from ..index import Index
    from ..models.catalog import Catalog
    from ..search import default_backbone, duplicate_groups

    out = Output(json_mode=json_out)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        catalog = Catalog.discover()
        with_embeddings = [n for n in catalog.backbones if catalog.backbone(n).embedding_output]
        chosen = backbone or default_backbone(with_embeddings, catalog)
        groups = duplicate_groups(idx, chosen, threshold=threshold)
    for g in groups:
        # Two names of one file (an index from before one file became one photo, or a
        # file linked since the scan) are marked: deleting either loses both.
        same = _same_file_as([p for p, _ in g])
        if json_out:
            out.json({"photos": [
                {"path": os.fsdecode(p), "similarity": round(s, 4),
                 **({"same_file_as": os.fsdecode(same[i])} if i in same else {})}
                for i, (p, s) in enumerate(g)
            ]})  # fmt: skip
        else:
            out.result(f"[num]{len(g)}[/] photos:")
            for i, (p, s) in enumerate(g):
                mark = (
                    f"  [warning](the same file as {escape(safe_path(same[i]))})[/]"
                    if i in same
                    else ""
                )
                out.result(f"  {s:.3f}  [filepath]{escape(safe_path(p))}[/]{mark}")
    out.info(f"[num]{len(groups)}[/] groups of near-identical photos")
    raise typer.Exit(ExitCode.OK)
