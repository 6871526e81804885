"""phototag search: photos ranked by how well they fit a text (zero-shot embeddings)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import options as o
from .console import Output, guarded
from .similar import report_ranked


def search_command(
    text: Annotated[
        str,
        typer.Argument(help="What to look for, in words: 'kids playing on the beach at sunset'."),
    ],
    n: Annotated[int, typer.Option("-n", min=1, help="How many photos to return.")] = 20,
    min_score: Annotated[
        float,
        typer.Option(
            min=-1.0,
            max=1.0,
            help="Only photos whose cosine similarity to the text is at least this "
            "(CLIP's text-photo cosines are small: good matches are often 0.25-0.35).",
        ),
    ] = -1.0,
    under: o.Under = None,
    album: o.AlbumOfResult = None,
    backbone: Annotated[
        str | None,
        typer.Option(help="Zero-shot backbone [default: the one with most photos in the index]."),
    ] = None,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """List the indexed photos that best fit TEXT, best first (needs a zero-shot backbone)."""
    from ..config import default_index_path
    from ..index import Index
    from ..index.paths import canonical_path
    from ..library.albums import TextQuery
    from ..library.search import by_text

    out = Output(json_mode=json_out)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        o.check_folders(under)
        roots = [canonical_path(u) for u in under or ()]
        found = by_text(idx, text, backbone=backbone, n=n, min_score=min_score, under=roots)
        if not found:
            out.info("no photo matched")
        q = TextQuery(text, n, min_score, tuple(map(str, roots)), backbone)
        report_ranked(out, idx, found, album, q)
