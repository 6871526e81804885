"""Checking the names a user types: recognizers (``-m``) and tag terms (``--tag``).

A typo must not silently select nothing (issue 14): an unknown name is refused with the
closest names that exist (:mod:`difflib`, the ratio Python's own "did you mean" uses), and
a tag that only a zero-shot vocabulary can give says that it needs a zero-shot backbone
and how to get one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import ConfigError, ModelError, UnknownModelError
from .index.store import Index
from .library.query import term_matches
from .models.catalog import Catalog
from .tagpath import split


def zero_shot_hint(language: str = "en") -> str:
    """How to get a zero-shot backbone: the recommended hub model's install command."""
    from .models.availability import recommended

    model = recommended(language)
    return (f"install one with 'phototag models install {model.name}' "
            f"(~{model.download_bytes / 1e9:.1f} GB download), then scan again")  # fmt: skip


def closest(word: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` of ``candidates`` that look like ``word`` (case-insensitive), best first."""
    by_fold: dict[str, str] = {}
    for c in candidates:
        by_fold.setdefault(c.casefold(), c)
    found = difflib.get_close_matches(word.casefold(), list(by_fold), n=n, cutoff=0.6)
    return [by_fold[f] for f in found]


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    near = closest(word, candidates)
    return f"; did you mean {', '.join(repr(x) for x in near)}?" if near else ""


def index_recognizers(index: Index) -> set[str]:
    """Recognizers that have results in the index (a removed trained one may still)."""
    return {r for (r,) in index.conn.execute("SELECT DISTINCT recognizer FROM results")}


def check_recognizer(name: str, catalog: Catalog, index: Index | None = None) -> str:
    """``name`` if it is an installed recognizer or one with results in ``index``; otherwise
    :class:`UnknownModelError` (a usage error, exit 2) naming the closest ones."""
    known = set(catalog.names()) | (index_recognizers(index) if index is not None else set())
    if name in known:
        return name
    raise UnknownModelError(
        f"no recognizer named {name!r}{_did_you_mean(name, known)} "
        f"(known: {', '.join(sorted(known)) or 'none'}; 'phototag recognizers list')"
    )


class EmptyAlbumError(ConfigError):
    """A term no photo in the index has (its recognizer did not run yet), so an album made
    from the query would be empty. A client may allow empty albums on purpose."""


@dataclass(frozen=True, slots=True)
class Producer:
    """A recognizer that can give a tag path, and whether it can run here now."""

    recognizer: str
    path: str
    zero_shot: bool
    runnable: bool


def producers(catalog: Catalog) -> list[Producer]:
    """Every tag path every installed recognizer and vocabulary can give. Recognizers whose
    manifest cannot be read are left out (``phototag doctor`` reports them)."""
    from .models.zeroshot import load_vocabulary

    zero_shot_backbone = catalog.zero_shot_backbone()
    out: list[Producer] = []
    for name, entry in catalog.recognizers.items():
        if name in catalog.vocabularies and zero_shot_backbone:
            continue  # the vocabulary runs instead
        try:
            manifest = catalog.backbone(entry.backbone)
            from .models.recognizers import load_recognizer

            labels = manifest.labels() if manifest.labels_file else None
            paths = load_recognizer(entry.path, labels).paths
        except ModelError:
            continue
        out.extend(Producer(name, p, False, True) for p in paths)
    for name, path in catalog.vocabularies.items():
        try:
            members = load_vocabulary(path).members()
        except ModelError:
            continue
        out.extend(Producer(name, p, True, zero_shot_backbone is not None) for p in members)
    return out


def _words(paths: Iterable[str]) -> set[str]:
    """Every level of every path: 'animal/dog/beagle' -> animal, dog, beagle, and the path."""
    out: set[str] = set()
    for p in paths:
        out.add(p)
        out.update(x for x in split(p) if x)  # a level may hold '/' (a keyword kept verbatim)
    return out


def check_tags(
    terms: Sequence[str],
    index: Index,
    catalog: Catalog,
    *,
    model: str | None = None,
    expect_matches: bool = True,
) -> None:
    """Refuse tag terms that select nothing, with what to do instead.

    A term is fine when some photo in the index carries a tag it matches (see
    :func:`phototag.library.query.term_matches`). Otherwise :class:`ConfigError` says, in order: the
    term is in a vocabulary that needs a zero-shot backbone (and how to get one); an
    installed recognizer can give it but no photo has it (only when ``expect_matches``:
    ``--allow-empty`` asks for the album anyway); or no recognizer knows it, with the
    closest tags that exist.
    """
    from .library.corrections import corrected_counts

    # The tags as every query sees them: a tag added with 'phototag tag add' is a tag.
    in_index = [c.path for c in corrected_counts(index, model)]
    made = [p for p in producers(catalog) if model is None or p.recognizer == model]
    for term in terms:
        if not term.strip("/ "):
            raise ConfigError("a tag may not be empty")
        if any(term_matches(term, p) for p in in_index):
            continue
        can = [p for p in made if term_matches(term, p.path)]
        if can and not any(p.runnable for p in can):
            vocabularies = sorted({p.recognizer for p in can})
            usable = closest(term, _words(in_index) | _words(p.path for p in made if p.runnable))
            also = f". Tags like it you can use now: {', '.join(usable)}" if usable else ""
            from .models.availability import needed_for_tag

            needed = needed_for_tag(catalog, term)
            raise ConfigError(
                f"no photo can have {term!r} yet: {needed.sentence()}{also}" if needed else
                f"{term!r} is a tag of the zero-shot vocabulary {', '.join(vocabularies)}, which "
                f"needs a zero-shot backbone: {zero_shot_hint()}{also}"
            )  # fmt: skip
        if can:
            if expect_matches:
                recognizers = sorted({p.recognizer for p in can})
                raise EmptyAlbumError(
                    f"no photo in the index has the tag {term!r} (it comes from "
                    f"{', '.join(recognizers)}: scan with the recognizer {recognizers[0]} if it "
                    "did not run), so the album would be empty"
                )
            continue
        near = _did_you_mean(term, _words(in_index) | _words(p.path for p in made))
        where = f" from {model}" if model else ""
        raise ConfigError(
            f"no recognizer{where} gives a tag {term!r}{near} ('phototag tags' lists the tags "
            "in the index)"
        )
