"""Which backbones and recognizers are installed, found by looking in the weights folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import weights_dirs
from ..errors import ModelError, UnknownModelError
from .manifest import BackboneManifest, load_backbone_manifest, read_toml
from .recognizers import Recognizer, load_recognizer

#: What ``scan`` and ``classify`` run when no ``--model`` is given.
DEFAULT_RECOGNIZERS = ("scene", "food", "flower", "animal", "imagenet")


@dataclass(frozen=True, slots=True)
class RecognizerEntry:
    name: str
    backbone: str
    description: str
    path: Path


@dataclass
class Catalog:
    """Installed models. The first folder that has a name wins (user folders come first)."""

    backbones: dict[str, Path] = field(default_factory=dict)
    recognizers: dict[str, RecognizerEntry] = field(default_factory=dict)
    _manifests: dict[str, BackboneManifest] = field(default_factory=dict, repr=False)
    _loaded: dict[str, Recognizer] = field(default_factory=dict, repr=False)

    @classmethod
    def discover(cls, dirs: list[Path] | None = None) -> Catalog:
        cat = cls()
        for d in weights_dirs() if dirs is None else dirs:
            try:
                if not d.is_dir():
                    continue
                subs = sorted(d.iterdir())
                recognizer_files = sorted((d / "recognizers").glob("*.toml"))
            except OSError:  # a folder we may not read holds nothing for us
                continue
            for sub in subs:
                if (sub / "backbone.toml").is_file():
                    name = str(read_toml(sub / "backbone.toml").get("name", sub.name))
                    cat.backbones.setdefault(name, sub)
            for toml in recognizer_files:
                data = read_toml(toml)
                rname, backbone = data.get("name"), data.get("backbone")
                if not isinstance(rname, str) or not isinstance(backbone, str):
                    raise ModelError(
                        f"{toml}: a recognizer needs string fields 'name' and 'backbone'"
                    )
                entry = RecognizerEntry(rname, backbone, str(data.get("description", "")), toml)
                cat.recognizers.setdefault(rname, entry)
        return cat

    def backbone(self, name: str) -> BackboneManifest:
        if name not in self._manifests:
            if name not in self.backbones:
                raise UnknownModelError(
                    f"no backbone named {name!r}; installed: {', '.join(sorted(self.backbones)) or 'none'}"
                )
            self._manifests[name] = load_backbone_manifest(self.backbones[name])
        return self._manifests[name]

    def recognizer(self, name: str) -> Recognizer:
        if name not in self._loaded:
            entry = self.recognizers.get(name)
            if entry is None:
                raise UnknownModelError(
                    f"no recognizer named {name!r}; installed: {', '.join(sorted(self.recognizers)) or 'none'}"
                )
            manifest = self.backbone(entry.backbone)
            labels = manifest.labels() if manifest.labels_file else None
            self._loaded[name] = load_recognizer(entry.path, labels)
        return self._loaded[name]

    def resolve(self, names: list[str] | None) -> list[Recognizer]:
        """The recognizers to run: ``names`` in order without repeats, or the defaults."""
        chosen = (
            list(dict.fromkeys(names))
            if names
            else [n for n in DEFAULT_RECOGNIZERS if n in self.recognizers]
        )
        if not chosen:
            raise UnknownModelError("no recognizers are installed")
        return [self.recognizer(n) for n in chosen]
