"""Which recognizers exist and where they come from, for ``phototag recognizers list``.

Read from the manifests alone: no model is loaded and no prompt is encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .. import config
from .catalog import Catalog


class Origin(StrEnum):
    SHIPPED = "shipped"  # in phototag's own weights folder
    TRAINED = "trained"  # made by 'phototag train' in the user's weights folder
    ZERO_SHOT = "zero-shot"  # a vocabulary, run on a zero-shot backbone
    EXTRA = "extra"  # from a folder in $PHOTOTAG_WEIGHTS


@dataclass(frozen=True, slots=True)
class RecognizerInfo:
    name: str
    origin: Origin
    backbone: str  # what it runs on ("a zero-shot backbone" when none is installed)
    tags: int  # how many tag paths it can give
    manifest: Path

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "origin": self.origin.value, "backbone": self.backbone,
                "tags": self.tags, "manifest": str(self.manifest)}  # fmt: skip


def list_recognizers(catalog: Catalog | None = None) -> list[RecognizerInfo]:
    """Every recognizer name ``-m`` accepts, sorted by name. Raises ModelError for a
    manifest that cannot be read."""
    catalog = catalog or Catalog.discover()
    user = config.user_weights_dir().resolve()
    shipped_dir = config.shipped_weights_dir()
    shipped = None if shipped_dir is None else shipped_dir.resolve()
    zero_shot = catalog.zero_shot_backbone()
    out = []
    for name in catalog.names():
        entry = catalog.recognizers.get(name)
        if entry is None or (name in catalog.vocabularies and zero_shot):
            from .zeroshot import load_vocabulary

            path = catalog.vocabularies[name]
            out.append(RecognizerInfo(name, Origin.ZERO_SHOT, zero_shot or "(needs a zero-shot backbone)",
                                      len(load_vocabulary(path).members()), path))  # fmt: skip
            continue
        folder = entry.path.resolve().parent.parent
        origin = (
            Origin.TRAINED
            if folder == user
            else Origin.SHIPPED
            if folder == shipped
            else Origin.EXTRA
        )
        tags = len(catalog.recognizer(name).paths)
        out.append(RecognizerInfo(name, origin, entry.backbone, tags, entry.path))
    return out
