"""Checks behind ``phototag doctor``: versions, providers, model files, the index."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, config
from .errors import PhototagError


@dataclass
class Diagnosis:
    sections: dict[str, dict[str, object]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"sections": self.sections, "problems": self.problems}


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def diagnose(index_path: Path | None, device: config.Device) -> Diagnosis:
    """Look at everything a scan depends on; never raises for a problem, lists it."""
    d = Diagnosis()
    d.sections["phototag"] = {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **{
            dist: _version(dist)
            for dist in ("onnxruntime-gpu", "onnxruntime", "numpy", "pillow", "pillow-heif")
        },
    }
    runtime: dict[str, object] = {}
    try:
        import onnxruntime as ort

        from .models.session import choose_providers, nvidia_driver_problem

        runtime["available providers"] = ", ".join(ort.get_available_providers())
        runtime["NVIDIA driver"] = nvidia_driver_problem() or "found"
        runtime["providers asked for"] = ", ".join(
            choose_providers(device, ort.get_available_providers())
        )
    except (ImportError, PhototagError) as e:
        d.problems.append(str(e))
    d.sections["runtime"] = runtime

    from .models.backbones import Backbone
    from .models.catalog import Catalog

    models: dict[str, object] = {
        "weights folders": ", ".join(str(p) for p in config.weights_dirs())
    }
    try:
        catalog = Catalog.discover()
        for name in sorted(catalog.backbones):
            b = Backbone(catalog.backbone(name), device=device)
            try:
                models[f"backbone {name}"] = (
                    f"ok, sha256 verified, running on {', '.join(b.providers)}"
                )
            except PhototagError as e:
                models[f"backbone {name}"] = "BROKEN"
                d.problems.append(str(e))
        for name in sorted(catalog.recognizers):
            try:
                r = catalog.recognizer(name)
                models[f"recognizer {name}"] = f"{len(r.paths)} tags on {r.backbone}"
            except PhototagError as e:
                models[f"recognizer {name}"] = "BROKEN"
                d.problems.append(str(e))
    except PhototagError as e:
        d.problems.append(str(e))
    d.sections["models"] = models

    from .index import Index

    path = index_path or config.default_index_path()
    info: dict[str, object] = {"path": str(path)}
    if path.exists():
        try:
            with Index.open(path, create=False) as idx:
                info["photos"] = idx.count_photos()
                info["integrity"] = idx.integrity()
                info["size"] = f"{path.stat().st_size / 2**20:.1f} MiB"
        except PhototagError as e:
            d.problems.append(str(e))
    else:
        info["state"] = "not created yet (the first scan creates it)"
    d.sections["index"] = info
    return d
