"""Finding the photos under the folders a user names.

The walk only lists and stats: it never opens a file. Problems it meets (unreadable
folders, broken symlinks, symlink loops) are yielded as :class:`WalkProblem` records,
so one bad folder never stops a scan.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..media.kinds import (
    MEDIA_KINDS,
    PHOTO_EXTENSIONS,
    RAW_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FileKind,
    classify,
)

#: Folders that hold caches and thumbnails rather than photos (NAS and OS litter).
SKIPPED_DIRS = frozenset({"@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "lost+found"})

#: A file that marks a folder as a phototag album (links to photos, not photos): not walked.
ALBUM_MARKER = ".phototag-album"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A candidate photo, as ``stat`` saw it during the walk."""

    path: Path
    size: int
    mtime_ns: int
    # The file itself (st_dev, st_ino; 0 where unknown) and whether ``path`` is a symlink:
    # two names of one file (hard links, symlinks) are one photo (issue 13, item 3).
    dev: int = 0
    ino: int = 0
    is_link: bool = False
    kind: FileKind = FileKind.PHOTO  # PHOTO, RAW or VIDEO


@dataclass(frozen=True, slots=True)
class OtherFile:
    """A file the walk saw that is not a photo or video: counted, never read."""

    path: Path
    kind: FileKind  # SIDECAR, IGNORED or UNSUPPORTED


@dataclass(frozen=True, slots=True)
class WalkProblem:
    """A path the walk could not follow or stat, with a one-line reason."""

    path: Path
    reason: str


class FileStat(NamedTuple):
    """A photo, RAW file or video as the walk's ``stat`` saw it, before any :class:`Path` is
    made: what a rescan compares with the index (issue 15). :meth:`entry` makes the
    :class:`FileEntry` of a file that is to be read.

    A NamedTuple made with ``tuple.__new__`` that keeps the ``os.stat_result`` as it came:
    a frozen dataclass with a ``Path`` (what :class:`FileEntry` is) costs about 3 us a file
    here, more than the ``stat`` call it describes.
    """

    raw: bytes  # the absolute path, ``os.fsencode``d: as the index stores it
    stat: os.stat_result  # of the file (of the link's target for a symlink)
    is_link: bool
    kind: FileKind  # PHOTO, RAW or VIDEO

    @property
    def size(self) -> int:
        return self.stat.st_size

    @property
    def mtime_ns(self) -> int:
        return self.stat.st_mtime_ns

    def entry(self) -> FileEntry:
        st = self.stat
        return FileEntry(
            decode_path(self.raw), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino,
            self.is_link, kind=self.kind,
        )  # fmt: skip


class Listing(NamedTuple):
    """Photos, RAW files and videos the walk found in one folder.

    With ``plain`` asked of :func:`walk_stats`, the photos that are plain files (no
    symlink, one hard link) in a folder without RAW files or videos (so no companions) are
    not made into :class:`FileStat`: they come as ``records``, their :data:`RECORD` s
    concatenated, to be compared with the index's all at once (:class:`SettledRecords`;
    :func:`record_paths` gives their paths). Such a listing holds one run of them, in path
    order; the runs of all listings come in the path order of the whole walk. ``files``
    are the rest (every file, without ``plain``), in name order.
    """

    folder: bytes  # ``os.fsencode``d
    files: list[FileStat]
    photos: int  # how many of ``files`` are of kind PHOTO (the others are RAW files or videos)
    linked: bool  # some of ``files`` are symlinks or have other hard links
    plain: int  # how many photos ``records`` holds
    records: bytes


#: A file as :class:`SettledRecords` compares it: ``RECORD % (path, size, mtime_ns)``, the
#: path encoded. A NUL cannot be in a path, and each record starts with one followed by
#: the absolute path's "/": records concatenated are read back unambiguously.
#: :meth:`phototag.index.photos.PhotoTables.settled_records` builds the same in SQL.
RECORD = b"\0%b\0%d %d"


def record_paths(records: bytes) -> list[bytes]:
    """The paths of concatenated :data:`RECORD` s, in their order."""
    return records.split(b"\0")[1::2]


class SettledRecords:
    """The index's records of the photos it holds as settled (complete, online), under the
    roots of a walk, concatenated in the walk's order (path order, root after root): what
    :meth:`take` compares each run of plain photos with, as bytes, instead of looking up
    each photo (issue 15: matching 100,000 files against 100,000 rows one by one cost more
    than the walk). :meth:`rest` gives every record not taken.
    """

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._pos = 0  # at the start of a record (or the end)
        self._skipped: list[tuple[int, int]] = []

    def take(self, records: bytes) -> bool:
        """Whether ``records`` (a run of :data:`RECORD` s) are the next ones held: then they
        are taken. Records before the place of the run's first path are set aside for
        :meth:`rest` (photos not walked, or walked as files that changed)."""
        if self._at(records, self._pos):
            return True
        start = self._pos
        self._pos = self._place(records[1 : records.index(b"\0", 1)])
        if self._pos > start:
            self._skipped.append((start, self._pos))
            return self._at(records, self._pos)
        return False

    def rest(self) -> dict[bytes, tuple[int, int]]:
        """encoded path -> (size, mtime_ns) of every record that was not taken."""
        out: dict[bytes, tuple[int, int]] = {}
        for start, end in [*self._skipped, (self._pos, len(self._blob))]:
            fields = self._blob[start:end].split(b"\0")
            for i in range(1, len(fields) - 1, 2):
                size, mtime_ns = fields[i + 1].split(b" ")
                out[fields[i]] = (int(size), int(mtime_ns))
        return out

    def _at(self, records: bytes, pos: int) -> bool:
        blob, end = self._blob, pos + len(records)
        # The run must end where a record ends: "... 17" is not "... 170".
        if blob.startswith(records, pos) and (end == len(blob) or blob[end] == 0):
            self._pos = end
            return True
        return False

    def _place(self, path: bytes) -> int:
        """Where, from here on, the first record whose path sorts at or after ``path`` starts."""
        blob, pos = self._blob, self._pos
        while pos < len(blob):
            end = blob.index(b"\0", pos + 1)
            if blob[pos + 1 : end] >= path:
                break
            nxt = blob.find(b"\0", end + 1)
            pos = len(blob) if nxt < 0 else nxt
        return pos


#: ``exclude(path, is_dir)``: True leaves the path (and, for a folder, all below it) out.
#: The path is absolute, as a ``str`` (see :meth:`phototag.tagging.ignore.Excludes.excluded`).
Exclude = Callable[[str, bool], bool]


def walk(
    roots: Iterable[Path],
    *,
    follow_symlinks: bool = False,
    exclude: Exclude | None = None,
    others: bool = False,
) -> Iterator[FileEntry | OtherFile | WalkProblem]:
    """Yield every photo, RAW file and video below ``roots`` (files or folders), in a stable
    order: in each folder, by name, what cannot be read or is not a photo, then the photos,
    then the folders below it.

    With ``others``, every other file seen is yielded too, as an :class:`OtherFile` with
    its kind (sidecar, ignored by rule, unsupported), so that a caller can account for
    each file (hidden files and files ``exclude`` leaves out count as ignored; hidden and
    excluded folders are not entered).

    Hidden files and folders (``.name``), NAS litter (:data:`SKIPPED_DIRS`) and phototag's
    own album folders (:data:`ALBUM_MARKER`) are skipped. Symlinks are followed when they
    lead to somewhere inside the roots; symlinks leading outside only when
    ``follow_symlinks``. A folder reached twice is scanned once, and a symlink that leads
    back into its own ancestors is reported as a loop. Paths ``exclude`` names are
    skipped without a look inside (see :mod:`phototag.tagging.ignore`).
    """
    for item in walk_stats(roots, follow_symlinks=follow_symlinks, exclude=exclude, others=others):
        if isinstance(item, Listing):
            yield from (f.entry() for f in item.files)
        else:
            yield item


def walk_stats(
    roots: Iterable[Path],
    *,
    follow_symlinks: bool = False,
    exclude: Exclude | None = None,
    others: bool = False,
    plain: bool = False,
    apart: Container[bytes] = (),
) -> Iterator[Listing | OtherFile | WalkProblem]:
    """:func:`walk`, with the photos, RAW files and videos of each folder as a
    :class:`Listing` (a file named as a root: a listing of its own); with ``plain``, the
    plain photos in runs of :data:`RECORD` s (see :class:`Listing`), in path order, except
    those whose encoded paths are in ``apart`` (files a caller knows it will look at one by
    one, such as files that failed before: they would keep their run from being found).

    This is what a rescan of unchanged files costs beyond a bare ``os.scandir`` + ``stat``
    walk (issue 15), so per plain photo it makes no ``Path``, encodes nothing (each folder
    is listed as bytes, so ``scandir`` makes each path as the index stores it) and keeps
    nothing but that path and its record.
    """
    abs_roots = [Path(os.path.abspath(r)) for r in roots]
    rules = _Rules(
        [os.path.realpath(os.fsencode(r)) for r in abs_roots],
        follow_symlinks,
        exclude,
        others,
        plain,
        apart,
    )
    seen_dirs: set[tuple[int, int]] = set()
    for root in abs_roots:
        try:
            st = os.stat(root)
        except OSError as e:
            yield WalkProblem(root, _reason(e, root))
            continue
        raw = os.fsencode(root)
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(raw, (st.st_dev, st.st_ino), (), seen_dirs, rules)
        elif stat.S_ISREG(st.st_mode):
            # A file named on the command line is read whatever its name: as a photo when
            # its extension is not one phototag knows.
            kind = classify(root.name)
            kind = kind if kind in MEDIA_KINDS else FileKind.PHOTO
            is_link = os.path.islink(root)
            yield Listing(
                os.path.dirname(raw),
                [FileStat(raw, st, is_link, kind)],
                int(kind is FileKind.PHOTO),
                is_link or st.st_nlink > 1,
                0,
                b"",
            )
        else:
            yield WalkProblem(root, "not a regular file or folder")


@dataclass(frozen=True, slots=True)
class _Rules:
    """What every folder of one walk is walked by."""

    inside: list[bytes]  # the roots' real paths: symlinks leading there are followed
    follow: bool  # symlinks leading elsewhere too
    exclude: Exclude | None
    others: bool
    plain: bool
    apart: Container[bytes]


def _leads_inside(path: bytes, inside: list[bytes]) -> bool:
    target = os.path.realpath(path)
    return any(target == r or target.startswith(r.rstrip(b"/") + b"/") for r in inside)


#: The kinds of the extensions of photos, RAW files and videos, as bytes in lower and in
#: upper case: the walk classifies most names without decoding them (others: :func:`_kind`).
_MEDIA_OF_EXTENSION: dict[bytes, FileKind] = {
    os.fsencode(case(ext)): kind
    for exts, kind in (
        (PHOTO_EXTENSIONS, FileKind.PHOTO),
        (RAW_EXTENSIONS, FileKind.RAW),
        (VIDEO_EXTENSIONS, FileKind.VIDEO),
    )
    for ext in exts
    for case in (str.lower, str.upper)
}
_SKIPPED_DIRS = frozenset(os.fsencode(d) for d in SKIPPED_DIRS)
_ALBUM_MARKER = os.fsencode(ALBUM_MARKER)
_new_stat = tuple.__new__


def _kind(name: bytes) -> FileKind:
    """:func:`classify` for a name read from a folder as bytes (not hidden: checked before)."""
    dot = name.rfind(b".")
    # Media extensions are ASCII and bytes.lower() changes ASCII only, so a hit here is what
    # classify() says (no name in IGNORED_NAMES has one of these extensions).
    kind = _MEDIA_OF_EXTENSION.get(name[dot:].lower()) if dot > 0 else None
    return kind if kind is not None else classify(os.fsdecode(name))


def _walk_dir(
    folder: bytes,
    key: tuple[int, int],
    ancestors: tuple[tuple[int, int], ...],
    seen: set[tuple[int, int]],
    rules: _Rules,
) -> Iterator[Listing | OtherFile | WalkProblem]:
    if key in ancestors:
        yield WalkProblem(decode_path(folder), "symlink loop: this folder contains itself")
        return
    if key in seen:
        return  # the same folder reached through another link: scanned already
    seen.add(key)
    try:
        with os.scandir(folder) as it:
            entries = list(it)  # in the folder's own order: what is kept is sorted below
    except OSError as e:
        path = decode_path(folder)
        yield WalkProblem(path, _reason(e, path))
        return
    files: list[FileStat] = []
    records: list[bytes] = []
    subfolders: list[tuple[bytes, tuple[int, int]]] = []
    extra: list[tuple[bytes, OtherFile | WalkProblem]] = []  # yielded in name order
    photos, linked = 0, False
    photo, media, regular, record = FileKind.PHOTO, MEDIA_KINDS, stat.S_ISREG, RECORD
    media_of, exclude, others, runs, apart = (
        _MEDIA_OF_EXTENSION.get,
        rules.exclude,
        rules.others,
        rules.plain,
        rules.apart,
    )
    # Per file, this loop is what a rescan of unchanged photos costs beyond the bare walk:
    # the common case (a plain photo) takes the shortest way through.
    for entry in entries:
        name = entry.name
        if name[:1] == b".":
            if name == _ALBUM_MARKER:
                return  # nothing was yielded yet: all of it is dropped
            if others and not _is_dir(entry):
                extra.append((entry.path, OtherFile(decode_path(entry.path), FileKind.IGNORED)))
            continue
        try:
            if entry.is_file(follow_symlinks=False):  # no symlink, no folder: the common case
                is_link = is_dir = False
            else:
                is_link = entry.is_symlink()
                if is_link:
                    raw = entry.path
                    if (
                        os.path.exists(raw)
                        and not rules.follow
                        and not _leads_inside(raw, rules.inside)
                    ):
                        continue  # leads outside the library: only with --follow-symlinks (broken ones are reported)
                is_dir = entry.is_dir()
        except OSError as e:
            path = decode_path(entry.path)
            extra.append((entry.path, WalkProblem(path, _reason(e, path))))
            continue
        if exclude is not None and exclude(os.fsdecode(entry.path), is_dir):
            if others and not is_dir:
                extra.append((entry.path, OtherFile(decode_path(entry.path), FileKind.IGNORED)))
            continue
        if is_dir:
            if name in _SKIPPED_DIRS:
                continue
            try:
                st = entry.stat()
            except OSError as e:
                path = decode_path(entry.path)
                extra.append((entry.path, WalkProblem(path, _reason(e, path))))
                continue
            subfolders.append((entry.path, (st.st_dev, st.st_ino)))
            continue
        # ".jpg" and the like: the last dot is there, so this is the extension.
        kind = media_of(name[-4:])
        if kind is None:
            kind = _kind(name)
            if kind not in media:
                if others:
                    extra.append((entry.path, OtherFile(decode_path(entry.path), kind)))
                continue
        try:
            st = entry.stat()
        except OSError as e:
            path = decode_path(entry.path)
            extra.append((entry.path, WalkProblem(path, _reason(e, path, is_link))))
            continue
        if not regular(st.st_mode):
            if not stat.S_ISDIR(st.st_mode):
                problem = WalkProblem(decode_path(entry.path), "not a regular file")
                extra.append((entry.path, problem))
            continue
        if (
            runs
            and kind is photo
            and not is_link
            and st.st_nlink == 1
            and not (apart and entry.path in apart)
        ):
            records.append(record % (entry.path, st.st_size, st.st_mtime_ns))
            continue
        files.append(_new_stat(FileStat, (entry.path, st, is_link, kind)))
        if kind is photo:
            photos += 1
        if is_link or st.st_nlink > 1:
            linked = True
    if records and photos != len(files):
        # RAW files or videos here: any photo may be one's partner (media.pairs), so all
        # are listed in full (their stats are the entries' own, not read again).
        listed = {e.path: e for e in entries}
        for raw in record_paths(b"".join(records)):
            files.append(FileStat(raw, listed[raw].stat(), False, photo))
        photos += len(records)
        records = []
    del entries  # they hold their stats: not kept while the folders below are walked
    if extra:
        extra.sort(key=_first)
        yield from (item for _, item in extra)
    if files:
        files.sort(key=_by_raw)
        yield Listing(folder, files, photos, linked, 0, b"")
    here = (*ancestors, key)
    subfolders.sort(key=_below)  # in path order, as the runs of the whole walk come
    if not records:
        for sub, sub_key in subfolders:
            yield from _walk_dir(sub, sub_key, here, seen, rules)
        return
    # The runs of plain photos and the folders below, in path order: "a b/x.jpg" and
    # "a.jpg" come before "a/x.jpg" ("/" sorts after " " and "."). Sorting the records
    # sorts by path: each is NUL, the path, NUL, and NUL sorts first.
    records.sort()
    start = end = 0
    for sub, sub_key in subfolders:
        below = b"\0" + sub + b"/"
        while end < len(records) and records[end] < below:
            end += 1
        if end > start:
            yield Listing(folder, [], 0, False, end - start, b"".join(records[start:end]))
            start = end
        yield from _walk_dir(sub, sub_key, here, seen, rules)
    if start < len(records):
        yield Listing(folder, [], 0, False, len(records) - start, b"".join(records[start:]))


def _below(sub: tuple[bytes, tuple[int, int]]) -> bytes:
    return sub[0] + b"/"


def _first(pair: tuple[bytes, object]) -> bytes:
    return pair[0]


def _by_raw(f: FileStat) -> bytes:
    return f.raw


def decode_path(raw: bytes) -> Path:
    """The path a walked ``raw`` path (``os.fsencode``d, as the index stores it) names."""
    return Path(os.fsdecode(raw))


def _is_dir(entry: os.DirEntry[bytes]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _reason(e: OSError, path: Path, is_link: bool = False) -> str:
    if e.errno == errno.ELOOP:
        return "symlink loop"
    if e.errno == errno.ENOENT:
        return (
            "broken symlink (its target does not exist)"
            if is_link
            else "no such file or folder (vanished?)"
        )
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return e.strerror or str(e)
