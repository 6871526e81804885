"""phototag similar and phototag duplicates: search by example, and near-identical photos."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import SimilarBy
from . import options as o
from .console import ExitCode, Output, escape, guarded, safe_path

if TYPE_CHECKING:
    from ..index import Index
    from ..library.albums import AlbumQuery
    from ..library.search import Similar


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
        float, typer.Option(min=0.0, max=1.0, help="Only photos at least this similar (0..1).")
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
    from ..config import default_index_path
    from ..errors import ImageError
    from ..index import Index
    from ..index.paths import canonical_path
    from ..library.albums import SimilarQuery
    from ..library.search import similar_to

    out = Output(json_mode=json_out)
    if not photo.exists():
        out.error(f"no such file: {escape(safe_path(photo))}")
        raise typer.Exit(ExitCode.USAGE)
    if photo.is_dir():
        out.error(
            f"{escape(safe_path(photo))} is a folder: name one photo "
            "(to find near-identical photos in the index: phototag duplicates)"
        )
        raise typer.Exit(ExitCode.USAGE)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        o.check_folders(under)
        if model is not None:
            from ..models.catalog import Catalog
            from ..namecheck import check_recognizer

            check_recognizer(model, Catalog.discover(), idx)
        roots = [canonical_path(u) for u in under or ()]
        try:
            found = similar_to(
                idx,
                photo,
                by,
                n=n,
                min_score=min_score,
                under=roots,
                model=model,
                backbone=backbone,
            )
        except ImageError as e:  # the one file failed: exit 1, like a scan with a failure
            out.error(escape(str(e)))
            raise typer.Exit(ExitCode.FILES_FAILED) from None
        q = SimilarQuery(
            str(canonical_path(photo)),
            by.value,
            n,
            min_score,
            tuple(map(str, roots)),
            model,
            backbone,
        )
        report_ranked(out, idx, found, album, q)


def report_ranked(
    out: Output, idx: Index, found: list[Similar], album: str | None, query: AlbumQuery
) -> None:
    """Print ranked photos (``score  path``, or JSON lines) and, asked for, make the album."""
    from ..config import default_albums_dir
    from ..library.albums import album_folder, build_album

    for s in found:
        if out.json_mode:
            out.json(s.as_json())
        else:
            out.result(f"{s.score:.3f}  [filepath]{escape(safe_path(s.path))}[/]")
    if album and not found:
        from ..errors import ConfigError

        # As `album` does: an album that would be empty is refused, not made silently.
        raise ConfigError(
            f"no photo matched, so the album {album!r} would be empty (a lower --min-score, "
            "or another --under, finds more)"
        )
    if album:
        report = build_album(idx, album, album_folder(default_albums_dir(), album), query)
        out.info(
            f"album [tag]{escape(album)}[/]: [num]{len(report.added)}[/] added at "
            f"[filepath]{escape(safe_path(report.folder))}[/]"
        )


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
    """List groups of near-identical photos: exact copies, resized copies, re-saves, bursts.

    Each group says whether its copies are byte-identical and how much keeping one frees;
    its photos show similarity, pixels, bytes and capture date, the suggested keeper first
    (most pixels, then most bytes, then one with a capture date). Groups that free the most
    come first.
    """
    from ..config import default_index_path
    from ..index import Index
    from ..library.duplicates import rank_duplicates
    from ..library.search import default_backbone, duplicate_groups
    from ..models.catalog import Catalog

    out = Output(json_mode=json_out)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        catalog = Catalog.discover()
        with_embeddings = [n for n in catalog.backbones if catalog.backbone(n).embedding_output]
        chosen = backbone or default_backbone(with_embeddings, catalog)
        groups = rank_duplicates(idx, duplicate_groups(idx, chosen, threshold=threshold), chosen)
    for g in groups:
        if json_out:
            out.json(g.as_json())
            continue
        kind = "byte-identical" if g.identical else "near-identical"
        out.result(f"[num]{len(g.copies)}[/] photos, {kind}; keeping the first frees "
                   f"[num]{_size(g.reclaimable)}[/]:")  # fmt: skip
        for i, c in enumerate(g.copies):
            # "=1": the same bytes as the group's first line.
            mark = (
                "keep"
                if i == 0
                else (f"={c.same_as + 1}" if c.same_as is not None else f"{c.similarity:.3f}")
            )
            pixels = f"{c.width}x{c.height}" if c.width and c.height else "?x?"
            taken = c.taken_at or "no date"
            # Two names of one file (hard links, or an index from before one file became one
            # photo) are marked: deleting either frees nothing, and both names go with it.
            twin = (
                f"  [warning](the same file as {escape(safe_path(c.same_file_as))})[/]"
                if c.same_file_as is not None
                else ""
            )
            out.result(f"  {mark:>5}  {pixels:>11}  {_size(c.size):>9}  {escape(taken):19}  "
                       f"[filepath]{escape(safe_path(c.path))}[/]{twin}")  # fmt: skip
    freed = sum(g.reclaimable for g in groups)
    out.info(f"[num]{len(groups)}[/] groups of near-identical photos; keeping the first of "
             f"each frees [num]{_size(freed)}[/]")  # fmt: skip
    raise typer.Exit(ExitCode.OK)


def _size(n: int) -> str:
    """Bytes for people: 950 bytes, 2.4 MB (SI units, as file managers show them)."""
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} TB"
