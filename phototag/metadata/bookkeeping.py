"""Keywords other programs write for their own bookkeeping, which are not subjects.

darktable records in lr:hierarchicalSubject what it did to a photo (``darktable|format|jpg``,
``darktable|changed``, ``darktable|exported``, ``darktable|mode|monochrome``...); digiKam
keeps colour labels, picks, versions and face-scan state as tags under
``_Digikam_Internal_Tags_`` (``Color Label Red``, ``Pick Label Accepted``, ``Current
Version``...) and unconfirmed faces under ``People/Unknown``. Learning them as subjects
would teach a recognizer "jpg" and write it back onto photos (issue 13, item 5).
"""

from __future__ import annotations

#: Hierarchy roots that belong to a program, not to the user (compared ignoring case).
ROOTS = ("darktable", "_digikam_internal_tags_", "_digikam_root_tag_", "digikam internal")
#: digiKam's internal tag names, wherever they appear in a hierarchy.
LEAF_PREFIXES = ("color label ", "pick label ")
LEAVES = frozenset({"current version", "original version", "intermediate version",
                    "version always visible", "scanned for faces", "need resolving history",
                    "need tagging history"})  # fmt: skip
#: digiKam's face bookkeeping (faces found but not named).
PATHS = frozenset({("people", "unknown"), ("people", "unconfirmed"), ("people", "ignored")})


def is_bookkeeping(levels: list[str]) -> bool:
    """Whether a keyword's hierarchy levels (as its own field separates them) are another
    program's bookkeeping rather than a subject the user gave the photo."""
    folded = [p.strip().casefold() for p in levels if p.strip()]
    if not folded:
        return False
    if folded[0] in ROOTS or folded[0].startswith("_digikam"):
        return True
    last = folded[-1]
    if last in LEAVES or last.startswith(LEAF_PREFIXES):
        return True
    return tuple(folded[:2]) in PATHS
