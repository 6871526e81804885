"""Tag names in the user's language: ``food/japanese/sushi and sashimi/hand-rolled sushi`` is
``食べ物/和食/寿司・刺身/手巻き寿司`` in Japanese.

Tags are stored, scored and matched in English (their paths are the index's keys and the
vocabularies' identity); a language changes only what people read: the keywords written into
sidecars and files, album folder names, and printed output. The names come from
``names/<lang>.toml`` in the weights folders (a user's own file first, so a user can rename a
tag), one name per English path component, with full paths as keys where a component needs
another name in one place::

    [names]
    "food" = "食べ物"
    "hand-rolled sushi" = "手巻き寿司"
    "scene/event/field day" = "運動会"   # a full path wins over its last component

A component with no name stays in English.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError
from .tagpath import join, split


class Language(StrEnum):
    """Languages phototag writes tags in (ISO 639-1)."""

    EN = "en"
    JA = "ja"


@dataclass(frozen=True)
class TagNames:
    """One language's names for tag path components (and whole paths)."""

    language: str
    names: dict[str, str] = field(default_factory=dict)

    def path(self, tag_path: str) -> str:
        """``tag_path`` with each component in this language, '/'-separated."""
        if not self.names:
            return tag_path
        parts = split(tag_path)  # a level may hold an escaped '/' (phototag.tagpath)
        out = []
        for i, part in enumerate(parts):
            full = join(parts[: i + 1])
            out.append(self.names.get(full) or self.names.get(part) or part)
        return join(out)

    def paths(self, tag_paths: Iterable[str]) -> list[str]:
        return [self.path(p) for p in tag_paths]

    def english(self, name: str, known: Collection[str] = ()) -> str:
        """A tag or path typed in this language back in English (``手巻き寿司`` ->
        ``hand-rolled sushi``; ``食べ物/和食`` -> ``food/japanese``); other text unchanged.
        Where one name stands for several English ones (結婚式: ``wedding ceremony`` of the
        scene vocabulary, ``wedding`` of the ImageNet-mapped scene recognizer), the first of
        them in ``known`` (the tags in the index) is taken, else the first by name."""
        if not self.names:
            return name
        back = _reverse(tuple(sorted(self.names.items())))
        seen = {k.casefold() for k in known}
        out = []
        for part in name.split("/"):
            options = back.get(part.casefold(), [part])
            out.append(next((o for o in options if o.casefold() in seen), options[0]))
        return "/".join(out)


@lru_cache(maxsize=8)
def _reverse(items: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for english, local in items:
        if "/" not in english:  # whole-path overrides name one place; components go back
            out.setdefault(local.casefold(), []).append(english)
    for options in out.values():  # the longer, more specific English name first
        options.sort(key=lambda e: (-len(e), e))
    return out


def tag_names(language: str, dirs: list[Path] | None = None) -> TagNames:
    """The names of ``language`` from ``names/<language>.toml`` in the weights folders
    (``dirs``: those folders instead; the first that has a name wins). English: no file.
    Raises :class:`ConfigError` for a language phototag has no names for, or a bad file."""
    from .config import weights_dirs
    from .errors import ModelError
    from .models.manifest import read_toml

    language = language.strip().lower()
    if language in ("", Language.EN):
        return TagNames(Language.EN)
    names: dict[str, str] = {}
    found = False
    for d in weights_dirs() if dirs is None else dirs:
        path = d / "names" / f"{language}.toml"
        if not path.is_file():
            continue
        found = True
        try:
            table = read_toml(path).get("names", {})
        except ModelError as e:
            raise ConfigError(str(e)) from None
        if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() and "/" not in v
            for k, v in table.items()
        ):
            raise ConfigError(f"{path}: [names] maps English names to names without '/'")
        for k, v in table.items():
            names.setdefault(k, v.strip())
    if not found:
        known = ", ".join(sorted({p.stem for d in (dirs or weights_dirs())
                                  for p in (d / "names").glob("*.toml")} | {"en"}))  # fmt: skip
        raise ConfigError(f"no tag names for language {language!r}; phototag has: {known}")
    return TagNames(language, names)
