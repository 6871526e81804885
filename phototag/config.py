"""Where things live and the defaults a scan starts from."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

APP_NAME = "phototag"


class Device(StrEnum):
    """Where models run. ``auto``: the GPU when one is really usable, else the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


#: Recognition defaults shared by scan and classify, so both mean the same thing.
DEFAULT_THRESHOLD = 0.25
DEFAULT_TOP_K = 5
DEFAULT_BATCH_SIZE = 16

#: Pillow refuses anything larger than this many pixels (a decompression-bomb guard).
#: 200 MP admits every camera on the market, panoramas included.
DEFAULT_MAX_PIXELS = 200_000_000


def default_index_path() -> Path:
    """``$PHOTOTAG_INDEX`` if set, else ``index.sqlite`` in the user's data directory."""
    env = os.environ.get("PHOTOTAG_INDEX")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False) / "index.sqlite"


def weights_dirs() -> list[Path]:
    """Folders searched for backbones and recognizers, first match wins.

    ``$PHOTOTAG_WEIGHTS`` (a path list) first, then the weights shipped with the package:
    ``phototag/weights`` in an installed wheel, or ``weights/`` at the top of a checkout.
    """
    dirs = [Path(p) for p in os.environ.get("PHOTOTAG_WEIGHTS", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    for candidate in (here / "weights", here.parent / "weights"):
        if candidate.is_dir():
            dirs.append(candidate)
            break
    return dirs
