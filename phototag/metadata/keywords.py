"""The keyword fields phototag writes, and the merge policy that keeps the user's own.

Each program reads a different field (Immich: the first non-empty of digiKam:TagsList,
lr:hierarchicalSubject, IPTC:Keywords; Apple Photos: dc:subject; Windows: dc:subject, then
IPTC), so phototag writes the same tags into all of them:

==========================  ==================================  ==========================
field                       value for food/drink/espresso       read by
==========================  ==================================  ==========================
``dc:subject``              ``espresso``                        Apple Photos, Windows, most
``lr:hierarchicalSubject``  ``phototag|food|drink|espresso``    Lightroom, Immich, digiKam
``digiKam:TagsList``        ``phototag/food/drink/espresso``    digiKam, Immich
``IPTC:Keywords``           ``espresso`` (embedded only)        older software, Windows
==========================  ==================================  ==========================

The policy (:func:`merge`): a user's values are never removed or reordered; a value
equal to an existing one apart from case is not added again; values phototag added
earlier and no longer wants are removed; only values phototag really added are recorded
as its own, so ``clean`` can never take a user's keyword.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Field(StrEnum):
    SUBJECT = "dc:subject"
    HIERARCHICAL = "lr:hierarchicalSubject"
    TAGSLIST = "digiKam:TagsList"
    IPTC = "IPTC:Keywords"
    # Named people (phototag.faces): the IPTC Extension's person shown, and MWG face regions,
    # each region one encoded string (phototag.metadata.regions.FaceRegion.encode).
    PERSON = "Iptc4xmpExt:PersonInImage"
    REGIONS = "mwg-rs:Regions"


XMP_FIELDS = (Field.SUBJECT, Field.HIERARCHICAL, Field.TAGSLIST, Field.PERSON, Field.REGIONS)

#: IPTC IIM limits a keyword to 64 bytes. phototag shortens longer ones itself (on a UTF-8
#: character boundary, :func:`fit_iptc`) and records the value as stored; left to exiftool,
#: the stored value differs from the one sent (cut, sometimes with "." appended), so it
#: would never be recognised as phototag's again (issue 13, item 2).
IPTC_MAX_BYTES = 64


def fit_iptc(value: str) -> str:
    """``value`` as IPTC Keywords stores it: at most 64 bytes of UTF-8, cut between characters."""
    data = value.encode("utf-8")
    if len(data) <= IPTC_MAX_BYTES:
        return value
    return data[:IPTC_MAX_BYTES].decode("utf-8", errors="ignore")


def _cut_copy_of(current: str, owned: str) -> bool:
    """Whether ``current`` is exiftool's cut of a long keyword phototag sent before it
    shortened keywords itself (a prefix, possibly ending in '.'): phototag's, not the user's."""
    if len(owned.encode("utf-8")) <= IPTC_MAX_BYTES or current == owned:
        return False
    stem = current[:-1] if current.endswith(".") else current
    return len(stem.encode("utf-8")) >= IPTC_MAX_BYTES - 4 and owned.startswith(stem)


@dataclass(frozen=True, slots=True)
class KeywordStyle:
    """How tags become keyword values (configurable: [write] in the config file)."""

    root: str = "phototag"  # hierarchy root that says where a tag came from, like digiKam's auto/
    flat: bool = True  # write dc:subject (and IPTC) flat tags
    hierarchical: bool = True  # write lr:hierarchicalSubject and digiKam:TagsList


@dataclass(frozen=True, slots=True)
class Change:
    """The new values of each field, what phototag owns afterwards, and warnings."""

    values: dict[Field, list[str]]
    ours: dict[Field, list[str]]
    changed: bool
    warnings: list[str] = field(default_factory=list)


def desired(tag_paths: Iterable[str], style: KeywordStyle, *, iptc: bool) -> dict[Field, list[str]]:
    """The values phototag wants in each field for tags with these hierarchy paths.

    Levels are kept verbatim (:mod:`phototag.tagpath`). A level holding a field's own
    separator cannot be written into that field without becoming two levels, so such a tag
    is left out of that field only: ``AC/DC`` is in dc:subject and lr:hierarchicalSubject
    (``phototag|mine|AC/DC``) but not in digiKam:TagsList, whose separator is ``/``.
    IPTC values are shortened to what IPTC stores (:func:`fit_iptc`).
    """
    from ..tagpath import split

    out: dict[Field, list[str]] = {f: [] for f in Field}
    for path in tag_paths:
        parts = [p for p in split(path) if p]
        if not parts:
            continue
        if style.flat:
            out[Field.SUBJECT].append(parts[-1])
            if iptc:
                out[Field.IPTC].append(fit_iptc(parts[-1]))
        if style.hierarchical:
            full = [style.root, *parts] if style.root else parts
            if not any("|" in p for p in full):
                out[Field.HIERARCHICAL].append("|".join(full))
            if not any("/" in p for p in full):
                out[Field.TAGSLIST].append("/".join(full))
    return {f: _dedupe(v) for f, v in out.items() if v}


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for v in values:
        if v.casefold() not in seen:
            seen.add(v.casefold())
            out.append(v)
    return out


def merge(
    current: Mapping[Field, Sequence[str]],
    ours_before: Mapping[Field, Iterable[str]],
    wanted: Mapping[Field, Sequence[str]],
) -> Change:
    """New field values: the user's kept, phototag's stale values removed, wanted ones added."""
    values: dict[Field, list[str]] = {}
    ours: dict[Field, list[str]] = {}
    changed = False
    warnings: list[str] = []
    for f in Field:
        cur = list(current.get(f, []))
        mine = {v for v in ours_before.get(f, [])}
        if f is Field.IPTC:
            long = [o for o in mine if len(o.encode("utf-8")) > IPTC_MAX_BYTES]
            mine |= {v for v in cur if any(_cut_copy_of(v, o) for o in long)}
        want = list(wanted.get(f, []))
        want_folded = {w.casefold() for w in want}
        # Drop what phototag wrote and no longer wants (exact value: a user's own keyword
        # that differs in case from ours is the user's), and repeated copies of its own.
        kept, seen_mine = [], set()
        for v in cur:
            if v in mine and (v.casefold() not in want_folded or v in seen_mine):
                continue
            if v in mine:
                seen_mine.add(v)
            kept.append(v)
        present = {v.casefold() for v in kept}
        owned = [v for v in kept if v in mine and v.casefold() in want_folded]
        for w in want:
            if w.casefold() in present:
                continue
            kept.append(w)
            owned.append(w)
            present.add(w.casefold())
        if kept != cur:
            changed = True
        if kept or f in current:
            values[f] = kept
        if owned:
            ours[f] = owned
    return Change(values=values, ours=ours, changed=changed, warnings=warnings)


def remove_ours(
    current: Mapping[Field, Sequence[str]], ours: Mapping[Field, Iterable[str]]
) -> Change:
    """Take back exactly what phototag wrote (``phototag clean``)."""
    return merge(current, ours, {})
