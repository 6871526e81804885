"""Where things live and the defaults a scan starts from."""

from __future__ import annotations

import os
from dataclasses import dataclass
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
GPU_BATCH_SIZE = 128

#: A file whose read and decode take longer than this is skipped and reported (a dead
#: network mount must not stall a nightly run forever).
DEFAULT_READ_TIMEOUT = 120.0

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


def default_albums_dir() -> Path:
    """``$PHOTOTAG_ALBUMS`` if set, else ``albums`` in the user's data directory.

    Outside the photo library on purpose: an album of symlinks inside it would be walked
    by the next scan (album folders carry a marker the walk skips, but a user may move one).
    """
    env = os.environ.get("PHOTOTAG_ALBUMS")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False) / "albums"


def user_weights_dir() -> Path:
    """Where ``phototag train`` saves recognizers: ``weights`` in the user's data directory."""
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False) / "weights"


def cache_dir() -> Path:
    """``$PHOTOTAG_CACHE``, else the user's cache folder: float16 variants, text embeddings,
    downloads in progress. Anything in it can be deleted; it is made again when needed."""
    env = os.environ.get("PHOTOTAG_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_path

    return user_cache_path(APP_NAME, appauthor=False)


def weights_dirs() -> list[Path]:
    """Folders searched for backbones and recognizers, first match wins.

    ``$PHOTOTAG_WEIGHTS`` (a path list) first, then the user's own (trained recognizers),
    then the weights shipped with the package:
    ``phototag/weights`` in an installed wheel, or ``weights/`` at the top of a checkout.
    """
    dirs = [Path(p) for p in os.environ.get("PHOTOTAG_WEIGHTS", "").split(os.pathsep) if p]
    dirs.append(user_weights_dir())
    shipped = shipped_weights_dir()
    if shipped is not None:
        dirs.append(shipped)
    return dirs


def shipped_weights_dir() -> Path | None:
    """The weights shipped with phototag: ``phototag/weights`` in an installed wheel, or
    ``weights/`` at the top of a checkout; None if neither is there."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "weights", here.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return None


def config_path() -> Path:
    """``$PHOTOTAG_CONFIG`` if set, else ``config.toml`` in the user's config folder."""
    env = os.environ.get("PHOTOTAG_CONFIG")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False) / "config.toml"


class WriteMode(StrEnum):
    SIDECAR = "sidecar"
    EMBED = "embed"
    NONE = "none"


class SidecarNaming(StrEnum):
    FULL = "full"  # IMG_0001.jpg.xmp: digiKam, darktable, Immich
    BASENAME = "basename"  # IMG_0001.xmp: Lightroom, Capture One


class Engine(StrEnum):
    LOCAL = "local"  # this machine: decode threads and one inference session
    RAY = "ray"  # a Ray cluster: decode tasks and inference actors (the ray extra)


class SimilarBy(StrEnum):
    EMBEDDING = "embedding"  # cosine similarity of backbone embeddings
    TAGS = "tags"  # overlap of recognition tags weighted by score


class LinkMode(StrEnum):
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    COPY = "copy"


class IptcPolicy(StrEnum):
    EXISTING = "existing"  # only into files that already carry IPTC data
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class WriteSettings:
    """The [write] table of the config file; command-line options override each field."""

    mode: WriteMode = WriteMode.SIDECAR  # the non-destructive default
    sidecar_name: SidecarNaming = SidecarNaming.FULL
    root: str = "phototag"
    flat: bool = True
    hierarchical: bool = True
    iptc: IptcPolicy = IptcPolicy.EXISTING
    backup: bool = False  # keep exiftool's IMG.jpg_original copies
    # The language keywords and album names are written in (ISO 639-1: en, ja); tags stay
    # English in the index. Names come from weights/names/<language>.toml (phototag/names.py).
    language: str = "en"


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """The [scan] table: what a plain ``phototag scan`` (the cron line) runs. Each field is
    overridden by its command-line option; None means phototag's default."""

    recognizers: tuple[str, ...] | None = None  # None: the defaults (catalog.DEFAULT_RECOGNIZERS)
    threshold: float | None = None  # None: DEFAULT_THRESHOLD
    top_k: int | None = None  # None: DEFAULT_TOP_K
    backbone: str | None = None  # None: the first installed zero-shot backbone
    exclude: tuple[str, ...] = ()  # gitignore-style patterns, as in .phototagignore


@dataclass(frozen=True, slots=True)
class Settings:
    write: WriteSettings = WriteSettings()
    scan: ScanSettings = ScanSettings()


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file (missing is fine: the defaults). Raises ConfigError if it is bad.

    ::

        [write]
        mode = "sidecar"          # sidecar | embed | none
        sidecar_name = "full"     # full (IMG.jpg.xmp) | basename (IMG.xmp)
        root = "phototag"         # lr:hierarchicalSubject phototag|scene|seashore
        flat = true               # dc:subject (and IPTC) flat keywords
        hierarchical = true       # lr:hierarchicalSubject and digiKam:TagsList
        iptc = "existing"         # existing | always | never (embed mode)
        backup = false            # keep exiftool's IMG.jpg_original
        language = "en"           # en | ja: keywords, album names and output (or --lang)

        [scan]
        recognizers = ["scene", "animal", "pets"]   # -m; trained ones too
        threshold = 0.4           # --threshold
        top_k = 3                 # --top-k
        backbone = "clip-vit-b-32-openai"          # --backbone
        exclude = ["Screenshots/", "*.tmp.jpg"]    # --exclude; gitignore patterns
    """
    import tomllib

    from .errors import ConfigError

    path = path or config_path()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return Settings()
    except OSError as e:
        raise ConfigError(f"cannot read the config file {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"the config file {path} is not valid TOML: {e}") from None
    unknown = set(data) - {"write", "scan"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s): {', '.join(sorted(unknown))}")
    scan = _scan_settings(data.get("scan", {}), path)
    table = data.get("write", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [write] must be a table")
    defaults = WriteSettings()
    kinds: dict[str, type] = {
        "mode": WriteMode, "sidecar_name": SidecarNaming, "root": str, "flat": bool,
        "hierarchical": bool, "iptc": IptcPolicy, "backup": bool, "language": str,
    }  # fmt: skip
    values: dict[str, object] = {}
    for key, value in table.items():
        kind = kinds.get(key)
        if kind is None:
            raise ConfigError(f"{path}: unknown setting write.{key}")
        if issubclass(kind, StrEnum):
            try:
                values[key] = kind(value)
            except ValueError:
                choices = ", ".join(m.value for m in kind)
                raise ConfigError(
                    f"{path}: write.{key} must be one of {choices}, not {value!r}"
                ) from None
        elif not isinstance(value, kind):
            raise ConfigError(f"{path}: write.{key} must be a {kind.__name__}, not {value!r}")
        else:
            values[key] = value
    root = values.get("root", defaults.root)
    if not isinstance(root, str) or any(c in root for c in "|/\n") or root != root.strip():
        raise ConfigError(f"{path}: write.root may not contain '|', '/' or line breaks")
    return Settings(
        write=WriteSettings(**{**{k: getattr(defaults, k) for k in kinds}, **values}), scan=scan
    )


def _scan_settings(table: object, path: Path) -> ScanSettings:
    from .errors import ConfigError

    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [scan] must be a table")
    values: dict[str, object] = {}
    for key, value in table.items():
        if key in ("recognizers", "exclude"):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{path}: scan.{key} must be a list of strings")
            if key == "recognizers" and not value:
                raise ConfigError(
                    f"{path}: scan.recognizers may not be empty (leave it out for the defaults)"
                )
            values[key] = tuple(value)
        elif key == "threshold":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(
                    f"{path}: scan.threshold must be a number from 0 to 1, not {value!r}"
                )
            values[key] = float(value)
        elif key == "top_k":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"{path}: scan.top_k must be a whole number of at least 1, not {value!r}"
                )
            values[key] = value
        elif key == "backbone":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{path}: scan.backbone must be a backbone's name")
            values[key] = value
        else:
            raise ConfigError(f"{path}: unknown setting scan.{key}")
    return ScanSettings(**values)  # type: ignore[arg-type]
