"""Checks behind ``phototag doctor``: versions, providers, model files, the index."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sqlite3
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

        from .models.session import choose_providers, cuda_problems, nvidia_driver_problem

        runtime["available providers"] = ", ".join(ort.get_available_providers())
        runtime["NVIDIA driver"] = nvidia_driver_problem() or "found"
        problems = cuda_problems()
        runtime["CUDA"] = "usable" if not problems else "cannot be used: " + "; ".join(problems)
        if problems and device is config.Device.CUDA:
            d.problems.extend(problems)
        runtime["providers asked for"] = ", ".join(
            choose_providers(device, ort.get_available_providers())
        )
    except (ImportError, PhototagError) as e:
        d.problems.append(str(e))
    d.sections["runtime"] = runtime

    from .models.backbones import Backbone
    from .models.catalog import Catalog
    from .models.zeroshot import TextEncoder, load_vocabulary

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
                if b.manifest.zero_shot:
                    TextEncoder(b.manifest, verify=False).session  # noqa: B018 - loads it
            except PhototagError as e:
                models[f"backbone {name}"] = "BROKEN"
                d.problems.append(str(e))
        zero_shot = catalog.zero_shot_backbone()
        for name in catalog.names():
            try:
                if name in catalog.vocabularies and (zero_shot or name not in catalog.recognizers):
                    # Checked as a file: binding it could mean seconds of text encoding.
                    vocab = load_vocabulary(catalog.vocabularies[name])
                    on = zero_shot or "no zero-shot backbone installed"
                    models[f"recognizer {name}"] = f"{len(vocab.members())} tags on {on}"
                    continue
                r = catalog.recognizer(name)
                models[f"recognizer {name}"] = f"{len(r.paths)} tags on {r.backbone}"
            except PhototagError as e:
                models[f"recognizer {name}"] = "BROKEN"
                d.problems.append(str(e))
        from .models.availability import inactive_vocabularies

        for needed in inactive_vocabularies(catalog):
            models[f"vocabulary {needed.vocabulary}"] = f"inactive: {needed.sentence()}"
    except PhototagError as e:
        d.problems.append(str(e))
    d.sections["models"] = models

    from .index import Index

    path = index_path or config.default_index_path()
    info: dict[str, object] = {"path": str(path)}
    if path.exists():
        try:
            with Index.open(path, create=False) as idx:
                from .index.schema import LATEST, schema_version

                info["schema version"] = f"{schema_version(idx.conn)} (this phototag: {LATEST})"
                info["photos"] = idx.count_photos()
                info["integrity"] = integrity = idx.integrity()
                if integrity != "ok":
                    d.problems.append(
                        f"the index {path} is damaged ({integrity.splitlines()[0]}): restore a "
                        "backup, or move it aside and scan again to rebuild it"
                    )
                info["size"] = f"{path.stat().st_size / 2**20:.1f} MiB"
        except (PhototagError, sqlite3.DatabaseError) as e:
            d.problems.append(
                f"the index {path} cannot be read: {e}"
                if isinstance(e, sqlite3.DatabaseError)
                else str(e)
            )
    else:
        info["state"] = "not created yet (the first scan creates it)"
    from .lock import IndexLock

    lock = IndexLock(path, "doctor")
    if lock.path.exists():
        from .errors import LockedError

        try:
            lock.acquire(wait=False).release()
            info["lock"] = "free"
        except LockedError:
            info["lock"] = f"held by {lock.holder()}"
    else:
        info["lock"] = "free"
    d.sections["index"] = info
    paths: dict[str, object] = {}
    for label, folder in (
        ("index folder", path.parent),
        ("albums folder", config.default_albums_dir()),
    ):
        paths[label] = f"{folder}: {_writable(folder)}"
        if not _writable(folder).startswith("writable"):
            d.problems.append(f"the {label} {folder} is not writable")
    cfg = config.config_path()
    try:
        config.load_settings(cfg)
        paths["config file"] = f"{cfg}: {'ok' if cfg.exists() else 'none (defaults)'}"
    except PhototagError as e:
        paths["config file"] = f"{cfg}: BROKEN"
        d.problems.append(str(e))
    d.sections["paths"] = paths
    return d


def _writable(folder: Path) -> str:
    """Whether phototag could create files in ``folder`` (or create it), checked for real."""
    import os
    import tempfile

    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=".phototag-doctor-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
        return "writable" if probe == folder else f"writable (will be created under {probe})"
    except OSError as e:
        return f"NOT writable ({e.strerror})"
