"""Which tags need a model that is not installed, and the exact command that gets it.

The zero-shot vocabularies (``weights/vocabularies``: wedding ceremony, field day, ~170
Japanese dishes, mushrooms, fashion) run only on an open-vocabulary (CLIP-style) backbone;
the default EfficientNet model cannot produce their tags. These functions tell the CLI what
to say -- ``doctor``, ``album --tag``, ``tags``, ``scan -m mushroom`` -- without loading
any model: vocabularies are read as files.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PhototagError
from .catalog import Catalog
from .hub import HubModel, hub_models
from .zeroshot import load_vocabulary

#: What phototag suggests installing: Immich's default for English, a multilingual model
#: with a permissive licence (Apache-2.0) for other languages.
RECOMMENDED = {"en": "ViT-B-32__openai", "other": "ViT-B-16-SigLIP-i18n-256__webli"}


@dataclass(frozen=True, slots=True)
class Needed:
    """A vocabulary that cannot run here, why, and what to install."""

    vocabulary: str
    description: str
    tags: int
    reason: str
    model: str  # the hub model suggested, e.g. ViT-B-32__openai
    download_bytes: int  # about

    @property
    def command(self) -> str:
        return f"phototag models install {self.model}"

    def sentence(self) -> str:
        """One line: what is missing and the command that fixes it."""
        return (f"the '{self.vocabulary}' vocabulary ({self.tags} tags) needs an "
                f"open-vocabulary model ({self.reason}): {self.command} "
                f"(~{self.download_bytes / 1e9:.1f} GB download), then scan again")  # fmt: skip


def recommended(language: str = "en") -> HubModel:
    """The hub model to suggest for prompts and searches in ``language``."""
    models = hub_models()
    name = RECOMMENDED["en" if language in ("", "en") else "other"]
    model = models.get(name) or next(iter(models.values()), None)
    if model is None:  # a broken install without hub.toml: still say something true
        return HubModel(name, "openclip", 512, 224, "en", "MIT", 606_000_000, "")
    return model


def _reason(catalog: Catalog) -> str | None:
    """Why vocabularies cannot run now, or None when they can."""
    if catalog.zero_shot_backbone() is not None:
        return None
    if catalog.preferred is not None:
        return f"the chosen backbone {catalog.preferred} is not a zero-shot backbone"
    return "no zero-shot backbone is installed"


def inactive_vocabularies(catalog: Catalog, language: str = "en") -> list[Needed]:
    """Every vocabulary that cannot run with the installed models, with what to install."""
    reason = _reason(catalog)
    if reason is None:
        return []
    model = recommended(language)
    out = []
    for name in sorted(catalog.vocabularies):
        vocab = load_vocabulary(catalog.vocabularies[name])
        out.append(Needed(name, vocab.description, len(vocab.members()), reason, model.name,
                          model.download_bytes))  # fmt: skip
    return out


def needed_for_tag(catalog: Catalog, tag: str, language: str = "en") -> Needed | None:
    """The inactive vocabulary that has ``tag`` (a name like ``wedding ceremony`` or a path
    like ``scene/event``, case-insensitive) when no installed recognizer has it; else None."""
    want = tag.strip().strip("/").casefold()
    if not want:
        return None
    reason = _reason(catalog)
    if reason is None:
        return None

    def has(paths: list[str]) -> bool:
        return any(p.casefold() == want or want in p.casefold().split("/") for p in paths)

    for name in catalog.recognizers:
        try:
            if has(list(catalog.recognizer(name).paths)):
                return None  # the installed models can tag it: nothing is missing
        except PhototagError:  # a broken recognizer is doctor's business, not this sentence's
            continue
    for needed in inactive_vocabularies(catalog, language):
        vocab = load_vocabulary(catalog.vocabularies[needed.vocabulary])
        if has(list(vocab.members())):
            return needed
    return None
