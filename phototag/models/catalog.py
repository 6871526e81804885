"""Which backbones and recognizers are installed, found by looking in the weights folders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import weights_dirs
from ..errors import ModelError, UnknownModelError
from .manifest import BackboneManifest, load_backbone_manifest, read_toml
from .recognizers import Recognizer, load_recognizer
from .zeroshot import TextEncoder, bind, load_vocabulary

#: What ``scan`` and ``classify`` run when no ``--model`` is given. Not ``imagenet``: its raw
#: classes repeat the leaves of the mapped recognizers (``phototag|imagenet|tiger cat`` beside
#: ``phototag|animal|cat|tiger cat``) and clutter the keyword tree; ``-m imagenet`` asks for it.
DEFAULT_RECOGNIZERS = ("scene", "food", "flower", "animal")
#: Added to the defaults when a zero-shot backbone is installed (only it can tell them).
ZERO_SHOT_DEFAULTS = ("mushroom",)


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
    vocabularies: dict[str, Path] = field(default_factory=dict)  # zero-shot recognizers
    kinds: dict[str, str] = field(default_factory=dict)  # backbone name -> kind
    # The zero-shot backbone that vocabularies use; None: the first installed (by name).
    # Naming a classifier here turns vocabularies off: the ImageNet-mapped recognizers run.
    preferred: str | None = None
    # The language of prompts and queries (ISO 639-1), for text encoders that are told it (NLLB).
    language: str = "en"
    # Told, as a sentence, when a slow preparation starts (encoding a vocabulary's prompts).
    notify: Callable[[str], None] | None = field(default=None, repr=False)
    _manifests: dict[str, BackboneManifest] = field(default_factory=dict, repr=False)
    _loaded: dict[str, Recognizer] = field(default_factory=dict, repr=False)
    _encoders: dict[str, TextEncoder] = field(default_factory=dict, repr=False)

    @classmethod
    def discover(cls, dirs: list[Path] | None = None) -> Catalog:
        cat = cls()
        for d in weights_dirs() if dirs is None else dirs:
            try:
                if not d.is_dir():
                    continue
                subs = sorted(d.iterdir())
                recognizer_files = sorted((d / "recognizers").glob("*.toml"))
                vocabulary_files = sorted((d / "vocabularies").glob("*.toml"))
            except OSError:  # a folder we may not read holds nothing for us
                continue
            for name, sub, kind in _backbones_in(subs):
                if name not in cat.backbones:
                    cat.backbones[name] = sub
                    cat.kinds[name] = kind
            for toml in vocabulary_files:
                vname = read_toml(toml).get("name")
                if not isinstance(vname, str):
                    raise ModelError(f"{toml}: a vocabulary needs a string field 'name'")
                cat.vocabularies.setdefault(vname, toml)
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

    def choosing(self, zero_shot: str | None) -> Catalog:
        """This catalog with ``zero_shot`` as the backbone vocabularies bind to (see
        :attr:`preferred`): a copy, so that a caller's catalog is never changed under it.
        The copy shares the manifests and text encoders, not the bound recognizers."""
        if zero_shot is None or zero_shot == self.preferred:
            return self
        return replace(self, preferred=zero_shot, _loaded={})

    def zero_shot_backbone(self) -> str | None:
        """The zero-shot backbone vocabularies run on, or None if there is none (or the
        preferred backbone is a classifier)."""
        if self.preferred is not None:
            if self.preferred not in self.backbones:
                raise UnknownModelError(
                    f"no backbone named {self.preferred!r}; installed: {', '.join(sorted(self.backbones))}"
                )
            return self.preferred if self.kinds.get(self.preferred) == "zero-shot" else None
        return next((n for n in sorted(self.backbones) if self.kinds.get(n) == "zero-shot"), None)

    def text_encoder(self, backbone: str) -> TextEncoder:
        if backbone not in self._encoders:
            self._encoders[backbone] = TextEncoder(self.backbone(backbone), language=self.language)
        return self._encoders[backbone]

    def names(self) -> list[str]:
        """Every recognizer name that can be asked for, ImageNet-mapped or zero-shot."""
        return sorted({*self.recognizers, *self.vocabularies})

    def recognizer(self, name: str) -> Recognizer:
        if name not in self._loaded:
            entry = self.recognizers.get(name)
            zero_shot = self.zero_shot_backbone() if name in self.vocabularies else None
            if zero_shot is not None:
                self._loaded[name] = self._bind(name, zero_shot)
            elif entry is None and name in self.vocabularies:
                from .availability import inactive_vocabularies

                needed = next(n for n in inactive_vocabularies(self) if n.vocabulary == name)
                raise UnknownModelError(f"recognizer {name!r}: {needed.sentence()}")
            elif entry is None:
                raise UnknownModelError(
                    f"no recognizer named {name!r}; installed: {', '.join(self.names()) or 'none'}"
                )
            else:
                manifest = self.backbone(entry.backbone)
                labels = manifest.labels() if manifest.labels_file else None
                self._loaded[name] = load_recognizer(entry.path, labels)
        return self._loaded[name]

    def _bind(self, name: str, backbone: str) -> Recognizer:
        """Vocabulary ``name`` on zero-shot ``backbone``, saying so when encoding is slow."""
        notify = self.notify

        def on_miss(n: int) -> None:
            if notify is not None:
                notify(f"encoding the {n} prompts of '{name}' with {backbone} "
                       "(once; cached for later runs)")  # fmt: skip

        vocab = load_vocabulary(self.vocabularies[name])
        return bind(vocab, self.text_encoder(backbone), on_miss)

    def resolve(self, names: list[str] | None) -> list[Recognizer]:
        """The recognizers to run: ``names`` in order without repeats, or the defaults."""
        if names:
            chosen = list(dict.fromkeys(names))
        else:
            wanted: tuple[str, ...] = DEFAULT_RECOGNIZERS
            available = set(self.recognizers)
            if self.zero_shot_backbone() is not None:
                wanted += ZERO_SHOT_DEFAULTS
                available |= set(self.vocabularies)
            chosen = [n for n in wanted if n in available]
        if not chosen:
            raise UnknownModelError("no recognizers are installed")
        return [self.recognizer(n) for n in chosen]


def _backbones_in(subs: list[Path]) -> list[tuple[str, Path, str]]:
    """(name, folder, kind) of the backbones among a weights folder's entries."""
    out = []
    for sub in subs:
        # Dot folders are installs, exports and removals in progress (or killed).
        if not sub.name.startswith(".") and (sub / "backbone.toml").is_file():
            data = read_toml(sub / "backbone.toml")
            out.append((str(data.get("name", sub.name)), sub, str(data.get("kind", ""))))
    return out


def backbone_kinds(dirs: list[Path] | None = None) -> dict[str, str]:
    """Backbone name -> kind (``classifier``, ``zero-shot``, ...), as :meth:`Catalog.discover`
    finds them, without reading the recognizers and vocabularies: a few small files instead
    of dozens of large ones (``similar PHOTO`` asks only this: 90 ms -> under 5 ms)."""
    kinds: dict[str, str] = {}
    for d in weights_dirs() if dirs is None else dirs:
        try:
            if not d.is_dir():
                continue
            subs = sorted(d.iterdir())
        except OSError:
            continue
        for name, _, kind in _backbones_in(subs):
            kinds.setdefault(name, kind)
    return kinds
