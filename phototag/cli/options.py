"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import config

IndexPath = Annotated[
    Path | None,
    typer.Option(
        "--index",
        envvar="PHOTOTAG_INDEX",
        help="Index file [default: index.sqlite in the user data folder].",
        show_default=False,
    ),
]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model", "-m",
        help="Recognizer to run (repeatable) [default: scene, food, flower, animal, imagenet].",
        show_default=False,
    ),
]  # fmt: skip
Threshold = Annotated[
    float,
    typer.Option(min=0.0, max=1.0, help="Keep candidates scoring at least this much."),
]
TopK = Annotated[
    int, typer.Option("--top-k", min=1, help="Keep at most this many candidates per recognizer.")
]
Json = Annotated[
    bool, typer.Option("--json", help="Machine-readable JSON on stdout (one object per line).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors (for cron).")]
Device = Annotated[
    config.Device,
    typer.Option(
        "--device", help="Where to run the models: auto (GPU if usable, else CPU), cpu or cuda."
    ),
]
BatchSize = Annotated[
    int, typer.Option("--batch-size", min=1, max=4096, help="Images per inference call.")
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        max=256,
        help="Decode threads [default: one per CPU core].",
        show_default=False,
    ),
]

DEFAULT_THRESHOLD = config.DEFAULT_THRESHOLD
DEFAULT_TOP_K = config.DEFAULT_TOP_K
DEFAULT_BATCH_SIZE = config.DEFAULT_BATCH_SIZE
