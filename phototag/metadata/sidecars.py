"""Which file is a photo's XMP sidecar: one rule for every command that reads or writes one.

Two conventions are in use (issue 13, item 1):

* **full name** ``IMG_0001.jpg.xmp``: darktable, digiKam, Immich; names exactly one file;
* **basename** ``IMG_0001.xmp``: Lightroom, Capture One, Photo Mechanic; names a *stem*,
  which several files may share.

The rule (:meth:`SidecarResolver.resolve`), looking at what exists, case-insensitively
(``IMG_0002.XMP`` from Lightroom on Windows is found for ``IMG_0002.JPG``):

1. An existing sidecar is used before a new one is made. When both conventions exist for
   one photo, the one of the asked naming wins (``--sidecar-name``; the default, full, is
   what darktable, digiKam and Immich read first); the other is left untouched, reported
   by ``phototag check``.
2. A basename sidecar belongs to a photo only when the photo is the stem's *owner*
   (:func:`basename_owner`): the only media file with that stem; or, in a pair, the still
   of a Live Photo (``IMG.HEIC`` + ``IMG.MOV``: the video is the still's companion) or the
   RAW of a RAW+JPEG pair (Lightroom and Capture One treat the JPEG as the RAW's
   companion, and the ``.xmp`` as the RAW's). Otherwise (``IMG_0001.jpg`` +
   ``IMG_0001.png``) nobody owns ``IMG_0001.xmp``: each photo gets its full-name sidecar,
   and the write says so, so two photos never share one sidecar.
3. Case twins (``IMG.xmp`` and ``IMG.XMP`` on a case-sensitive file system): the spelling
   phototag would have made wins, else the first by name; ``check`` reports the twins.

Folder listings are read once per folder and kept for the resolver's life (one write run).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..config import SidecarNaming
from ..errors import ConfigError
from ..index.paths import canonical_path
from ..media.imaging import IMAGE_EXTENSIONS

#: Camera RAW formats (lower case): in a RAW+JPEG pair the RAW owns the basename sidecar.
RAW_EXTENSIONS = frozenset({
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".k25", ".kdc",
    ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl",
    ".sr2", ".srf", ".srw", ".x3f",
})  # fmt: skip
#: Videos: the MOV of a Live Photo, clips beside stills. Never owners over a still.
VIDEO_EXTENSIONS = frozenset({
    ".3gp", ".avi", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpg", ".mts", ".webm",
})  # fmt: skip
#: Files a sidecar can describe.
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | RAW_EXTENSIONS | VIDEO_EXTENSIONS | {".psd", ".avif", ".jxl"}

XMP = ".xmp"


def _ext(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def is_sidecar_name(name: str) -> bool:
    return _ext(name) == XMP and not name.startswith(".")


def is_media_name(name: str) -> bool:
    return _ext(name) in MEDIA_EXTENSIONS and not name.startswith(".")


def basename_owner(names: Iterable[str]) -> str | None:
    """Of the media files sharing one stem, the one a basename sidecar belongs to, or None.

    ``names``: the file names (not paths) of every media file in the folder with that stem,
    compared case-insensitively by the caller. See the module docstring for the rule.
    """
    group = sorted(set(names))
    if len(group) == 1:
        return group[0]
    stills = [n for n in group if _ext(n) not in VIDEO_EXTENSIONS]
    if len(stills) == 1:
        return stills[0]  # a Live Photo (HEIC + MOV), or a still with its clip
    raws = [n for n in stills if _ext(n) in RAW_EXTENSIONS]
    if len(raws) == 1:
        return raws[0]  # RAW + JPEG (+ HEIC): the JPEG is the RAW's companion
    return None


class Convention(StrEnum):
    FULL = "full"  # IMG_0001.jpg.xmp
    BASENAME = "basename"  # IMG_0001.xmp


@dataclass(frozen=True, slots=True)
class Resolution:
    """The sidecar to read and write for ``photo``.

    ``exists``: whether ``path`` exists now. ``others``: other existing sidecars that
    belong to the photo (the other convention, case twins): left untouched.
    ``notes``: one-line explanations when the result is not the plain asked name.
    """

    photo: Path
    path: Path
    convention: Convention
    exists: bool
    others: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class _Folder:
    by_folded: dict[str, list[str]] = field(default_factory=dict)  # casefold -> names
    stems: dict[str, list[str]] = field(default_factory=dict)  # casefold stem -> media names


class SidecarResolver:
    """Resolves sidecars with one listing per folder. Not thread-safe; one per run."""

    def __init__(self) -> None:
        self._folders: dict[Path, _Folder] = {}

    def _folder(self, folder: Path) -> _Folder:
        got = self._folders.get(folder)
        if got is None:
            got = _Folder()
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            for n in names:
                self._add(got, n)
            self._folders[folder] = got
        return got

    @staticmethod
    def _add(f: _Folder, name: str) -> None:
        same = f.by_folded.setdefault(name.casefold(), [])
        if name not in same:
            same.append(name)
            same.sort()
        if is_media_name(name):
            stem = f.stems.setdefault(_stem(name).casefold(), [])
            if name not in stem:
                stem.append(name)

    def created(self, path: Path) -> None:
        """Tell the resolver that ``path`` now exists (phototag just made it)."""
        if path.parent in self._folders:
            self._add(self._folders[path.parent], path.name)

    def removed(self, path: Path) -> None:
        f = self._folders.get(path.parent)
        if f is not None:
            same = f.by_folded.get(path.name.casefold(), [])
            if path.name in same:
                same.remove(path.name)

    def describes_something(self, sidecar: Path) -> bool:
        """Whether a file ``sidecar`` could describe exists beside it (else it is an orphan)."""
        f = self._folder(sidecar.parent)
        described = _stem(sidecar.name).casefold()
        if f.by_folded.get(described):
            return True  # IMG.jpg for IMG.jpg.xmp
        return any(
            not is_sidecar_name(n)
            for names in f.by_folded.values()
            for n in names
            if _stem(n).casefold() == described
        )

    def _existing(self, f: _Folder, wanted: str) -> list[str]:
        """Existing names equal to ``wanted`` apart from case, the exact spelling first."""
        names = list(f.by_folded.get(wanted.casefold(), []))
        names.sort(key=lambda n: (n != wanted, n))
        return names

    def owns_basename(self, photo: Path) -> bool:
        """Whether ``photo`` is the owner of its stem's basename sidecar (rule 2)."""
        f = self._folder(photo.parent)
        stem = _stem(photo.name)
        if stem == photo.name:
            return False  # no extension: its "basename" sidecar is its full-name one
        group = f.stems.get(stem.casefold(), [])
        if photo.name not in group:
            group = [*group, photo.name]
        return basename_owner(group) == photo.name

    def belonging(self, photo: Path) -> list[Path]:
        """Every existing sidecar that belongs to ``photo``, in both conventions."""
        f = self._folder(photo.parent)
        names = self._existing(f, photo.name + XMP)
        if self.owns_basename(photo):
            names += self._existing(f, _stem(photo.name) + XMP)
        return [photo.parent / n for n in names]

    def resolve(self, photo: Path, naming: SidecarNaming | str = SidecarNaming.FULL) -> Resolution:
        """The sidecar ``photo`` uses (rules 1-3 of the module docstring)."""
        naming = SidecarNaming(naming)
        f = self._folder(photo.parent)
        full_name = photo.name + XMP
        base_name = _stem(photo.name) + XMP
        full = self._existing(f, full_name)
        owner = self.owns_basename(photo)
        base = self._existing(f, base_name) if owner else []
        notes: list[str] = []
        for twins in (full, base):
            if len(twins) > 1:
                notes.append(
                    f"{' and '.join(twins)} differ only in case; using {twins[0]} "
                    "(run 'phototag check')"
                )
        order = [(Convention.FULL, full), (Convention.BASENAME, base)]
        if naming is SidecarNaming.BASENAME:
            order.reverse()
        chosen: tuple[Convention, str] | None = None
        for convention, names in order:
            if names:
                chosen = (convention, names[0])
                break
        if chosen is None:
            if naming is SidecarNaming.BASENAME and owner:
                chosen = (Convention.BASENAME, base_name)
            else:
                chosen = (Convention.FULL, full_name)
                if naming is SidecarNaming.BASENAME:
                    sharing = sorted(
                        n for n in f.stems.get(_stem(photo.name).casefold(), []) if n != photo.name
                    )
                    notes.append(
                        f"{photo.name} shares the sidecar name {base_name} with "
                        f"{', '.join(sharing) or 'another file'}; using {full_name}"
                    )
            exists = False
        else:
            exists = True
        convention, name = chosen
        path = photo.parent / name
        others = tuple(photo.parent / n for n in [*full, *base] if n != name)
        if exists and others:
            notes.append(
                f"{name} is used; {', '.join(p.name for p in others)} also belong to "
                f"{photo.name} and are left alone (run 'phototag check')"
            )
        return Resolution(photo, path, convention, exists, others, tuple(notes))


# -- phototag check ----------------------------------------------------------------------


class ProblemKind(StrEnum):
    TWO_CONVENTIONS = "two-conventions"  # IMG.jpg.xmp and IMG.xmp both belong to one photo
    SHARED = "shared"  # IMG.xmp claimed by IMG.jpg and IMG.png: nobody owns it
    CASE_TWINS = "case-twins"  # IMG.xmp and IMG.XMP: one file on macOS/Windows/NAS shares
    ORPHAN = "orphan"  # no file the sidecar could describe


@dataclass(frozen=True, slots=True)
class SidecarProblem:
    kind: ProblemKind
    sidecars: tuple[Path, ...]
    photos: tuple[Path, ...]
    message: str

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "sidecars": [os.fsdecode(p) for p in self.sidecars],
            "photos": [os.fsdecode(p) for p in self.photos],
            "message": self.message,
        }


def _folders(roots: Iterable[Path]) -> Iterator[Path]:
    from ..tagging.walk import ALBUM_MARKER, SKIPPED_DIRS

    for root in roots:
        root = canonical_path(root)
        if not root.is_dir():
            continue  # a photo or a sidecar: its folder is looked at by check_sidecars
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
            if ALBUM_MARKER in files:
                dirs[:] = []
                continue
            yield Path(folder)


def check_sidecars(roots: Iterable[Path]) -> list[SidecarProblem]:
    """Sidecar conflicts and orphans in the folders under ``roots`` (files are only listed).

    Unreadable folders are skipped. Raises ConfigError for a path that does not exist.
    """
    roots = list(roots)
    for r in roots:
        if not os.path.lexists(r):
            raise ConfigError(f"{r}: no such file or folder")
    problems: list[SidecarProblem] = []
    seen: set[Path] = set()
    folders = list(_folders(roots))
    files = [canonical_path(r) for r in roots if not os.path.isdir(r)]
    for folder in folders + [f.parent for f in files]:
        if folder in seen:
            continue
        seen.add(folder)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        by_folded: dict[str, list[str]] = {}
        stems: dict[str, list[str]] = {}
        for n in names:
            by_folded.setdefault(n.casefold(), []).append(n)
            if not is_sidecar_name(n) and not n.startswith("."):
                stems.setdefault(_stem(n).casefold(), []).append(n)
        sidecars = [n for n in names if is_sidecar_name(n)]
        for group in {n.casefold(): by_folded[n.casefold()] for n in sidecars}.values():
            if len(group) > 1:
                problems.append(SidecarProblem(
                    ProblemKind.CASE_TWINS, tuple(folder / n for n in group), (),
                    f"{' and '.join(group)} differ only in case: one file on macOS, Windows "
                    "and most NAS shares; merge them into one",
                ))  # fmt: skip
        for s in sidecars:
            described = _stem(s)  # IMG.jpg for IMG.jpg.xmp, IMG for IMG.xmp
            full_photos = [n for n in by_folded.get(described.casefold(), []) if n != s]
            if full_photos:
                continue  # a full-name sidecar of an existing file
            group = [n for n in stems.get(described.casefold(), []) if is_media_name(n)]
            anything = stems.get(described.casefold(), [])
            if group:
                owner = basename_owner(group)
                if owner is None:
                    problems.append(SidecarProblem(
                        ProblemKind.SHARED, (folder / s,), tuple(folder / n for n in group),
                        f"{s} is claimed by {', '.join(group)}: phototag reads it for none of "
                        "them and writes each its full-name sidecar",
                    ))  # fmt: skip
                elif by_folded.get((owner + XMP).casefold()):
                    full = by_folded[(owner + XMP).casefold()][0]
                    problems.append(SidecarProblem(
                        ProblemKind.TWO_CONVENTIONS, (folder / full, folder / s), (folder / owner,),
                        f"{owner} has two sidecars, {full} and {s}: phototag uses the one of "
                        "the configured sidecar naming; merge them into one",
                    ))  # fmt: skip
            elif not anything:
                problems.append(SidecarProblem(
                    ProblemKind.ORPHAN, (folder / s,), (),
                    f"{s}: no file it could describe is in this folder (moved or deleted?)",
                ))  # fmt: skip
    # A file named on its own: only the problems that concern it (its folder was not asked for).
    whole = set(folders)
    return [
        p for p in problems if p.sidecars[0].parent in whole or any(_concerns(p, f) for f in files)
    ]


def _concerns(problem: SidecarProblem, path: Path) -> bool:
    """Whether ``problem`` is about the photo or sidecar ``path``."""
    if path in problem.photos or path in problem.sidecars:
        return True
    names = {path.name.casefold(), _stem(path.name).casefold()}
    return any(_stem(s.name).casefold() in names for s in problem.sidecars)
