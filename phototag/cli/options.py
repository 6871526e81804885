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
        help="Recognizer to run (repeatable) [default: scene, food, flower, animal; "
        "and mushroom when a zero-shot backbone is installed; the raw ImageNet classes only "
        "with -m imagenet]. 'phototag models list' shows all.",
        show_default=False,
    ),
]  # fmt: skip
Backbone = Annotated[
    str | None,
    typer.Option(
        "--backbone",
        help="The zero-shot backbone that scene, food, flower, mushroom and fashion-* run on "
        "[default: the first installed]; naming a classifier (efficientnet-lite0) runs the "
        "ImageNet-mapped recognizers instead.",
        show_default=False,
    ),
]
Under = Annotated[
    list[Path] | None, typer.Option(help="Only photos under this folder (repeatable).")
]
AlbumOfResult = Annotated[
    str | None, typer.Option(help="Also make an album of the result, with this name.")
]
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
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        max=4096,
        help="Images per inference call [default: 16 on the CPU, 128 on a GPU].",
        show_default=False,
    ),
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

WriteModeOpt = Annotated[
    config.WriteMode | None,
    typer.Option(
        "--write",
        help="Where tags go: sidecar (IMG.jpg.xmp, the default), embed (into the file, via exiftool) or none.",
        show_default=False,
    ),
]
SidecarName = Annotated[
    config.SidecarNaming | None,
    typer.Option(
        "--sidecar-name",
        help="Sidecar names: full (IMG_0001.jpg.xmp: digiKam, darktable, Immich) or basename (IMG_0001.xmp: Lightroom).",
        show_default=False,
    ),
]
Iptc = Annotated[
    config.IptcPolicy | None,
    typer.Option(
        "--iptc",
        help="IPTC Keywords in embed mode: existing (only where IPTC data is), always, never.",
        show_default=False,
    ),
]
Backup = Annotated[
    bool | None,
    typer.Option(
        "--backup/--no-backup",
        help="Keep exiftool's IMG.jpg_original copies in embed mode.",
        show_default=False,
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List the changes without making them.")]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="PHOTOTAG_CONFIG",
        help="Config file [default: config.toml in the user config folder].",
        show_default=False,
    ),
]


def write_settings(
    config_file: Path | None,
    mode: config.WriteMode | None = None,
    sidecar_name: config.SidecarNaming | None = None,
    iptc: config.IptcPolicy | None = None,
    backup: bool | None = None,
) -> config.WriteSettings:
    """The config file's [write] settings with the command line's overrides."""
    from dataclasses import replace

    s = config.load_settings(config_file).write
    return replace(
        s,
        mode=mode or s.mode,
        sidecar_name=sidecar_name or s.sidecar_name,
        iptc=iptc or s.iptc,
        backup=s.backup if backup is None else backup,
    )


Wait = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="If another phototag is writing the index, wait for it instead of exiting with code 75.",
    ),
]
LogFile = Annotated[
    Path | None,
    typer.Option(
        "--log-file",
        help="Append a JSON line per event (and a final summary) to this file; rotated at 10 MiB.",
        show_default=False,
    ),
]
