"""Options shared by several commands, defined once."""

from __future__ import annotations

import os
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
# The same, where the config file's [scan] table may set them (scan, retag).
ScanThreshold = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        min=0.0,
        max=1.0,
        help="Keep candidates scoring at least this much [default: [scan] threshold in the "
        "config file, else 0.25].",
        show_default=False,
    ),
]
ScanTopK = Annotated[
    int | None,
    typer.Option(
        "--top-k",
        min=1,
        help="Keep at most this many candidates per recognizer [default: [scan] top_k in the "
        "config file, else 5].",
        show_default=False,
    ),
]
ScanModels = Annotated[
    list[str] | None,
    typer.Option(
        "--model", "-m",
        help="Recognizer to run (repeatable) [default: [scan] recognizers in the config file, "
        "else scene, food, flower, animal; and mushroom when a zero-shot backbone is installed; "
        "the raw ImageNet classes only with -m imagenet]. 'phototag recognizers list' shows all.",
        show_default=False,
    ),
]  # fmt: skip
ScanBackbone = Annotated[
    str | None,
    typer.Option(
        "--backbone",
        help="The zero-shot backbone that scene, food, flower, mushroom and fashion-* run on "
        "[default: [scan] backbone in the config file, else the first installed]; naming a "
        "classifier (efficientnet-lite0) runs the ImageNet-mapped recognizers instead.",
        show_default=False,
    ),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        help="Leave out paths matching this gitignore-style pattern, relative to each scanned "
        "folder (repeatable; added to [scan] exclude and each folder's .phototagignore).",
        show_default=False,
    ),
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


#: The root command's --lang (or $PHOTOTAG_LANG), for the commands below it; None: the config's.
chosen_language: list[str | None] = [None]


def language(config_file: Path | None) -> str:
    """The language tags are shown and written in: --lang, else the config's write.language."""
    return chosen_language[0] or config.load_settings(config_file).write.language


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
        language=chosen_language[0] or s.language,
    )


def scan_settings(
    config_file: Path | None,
    models: list[str] | None,
    threshold: float | None,
    top_k: int | None,
    backbone: str | None,
    exclude: list[str] | None = None,
) -> config.ScanSettings:
    """The config file's [scan] settings with the command line's overrides; excludes add up."""
    s = config.load_settings(config_file).scan
    return config.ScanSettings(
        recognizers=tuple(models) if models else s.recognizers,
        threshold=s.threshold if threshold is None else threshold,
        top_k=s.top_k if top_k is None else top_k,
        backbone=backbone or s.backbone,
        exclude=(*s.exclude, *(exclude or ())),
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


def check_folders(folders: list[Path] | None) -> None:
    """Refuse an --under folder that does not exist: it would select nothing, silently."""
    from ..errors import ConfigError

    for f in folders or ():
        if not os.path.isdir(f):
            what = "not a folder" if os.path.lexists(f) else "no such folder"
            raise ConfigError(f"--under {f}: {what}")
