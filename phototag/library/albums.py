"""Albums: folders of links (or copies) to the photos a tag query matches, kept up to date.

An album is recorded in the index with its query, so running the same album command again
(or ``--refresh``) adds new matches and removes entries that no longer match. phototag only
ever removes entries it created (listed in the index, and still what it made); anything
else in the folder is left alone. File operations go through an :class:`AlbumFiles` object;
:class:`DryRunFiles` does nothing, which is all ``--dry-run`` is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..config import LinkMode
from ..errors import ConfigError, PhototagError
from ..index.paths import decode_path, encode_path
from ..index.store import Index
from ..tagging.walk import ALBUM_MARKER
from .query import Match, TagQuery, fields_from_json, photo_when

if TYPE_CHECKING:
    from .search import Similar


class AlbumQuery(Protocol):
    """What fills an album: a tag query, or a similar-photo search."""

    def to_json(self) -> str: ...
    def describe(self) -> str: ...
    def matches(self, index: Index) -> list[Match]: ...


@dataclass(frozen=True)
class SimilarQuery:
    """The photos most similar to one photo (``phototag similar PHOTO --album NAME``)."""

    photo: str
    by: str = "embedding"
    n: int = 20
    min_score: float = 0.0
    under: tuple[str, ...] = ()
    model: str | None = None
    backbone: str | None = None

    def to_json(self) -> str:
        return json.dumps({"kind": "similar", **asdict(self)}, ensure_ascii=False, sort_keys=True)

    def describe(self) -> str:
        return f"similar to {os.path.basename(self.photo)} (by {self.by})"

    def matches(self, index: Index) -> list[Match]:
        from .search import SimilarBy, similar_to

        found = similar_to(index, Path(self.photo), SimilarBy(self.by), n=self.n, min_score=self.min_score,
                           under=[Path(u) for u in self.under], model=self.model,
                           backbone=self.backbone)  # fmt: skip
        return _as_matches(index, found, "similar", "similarity")


@dataclass(frozen=True)
class TextQuery:
    """The photos that best fit a text (``phototag search TEXT --album NAME``)."""

    text: str
    n: int = 20
    min_score: float = -1.0
    under: tuple[str, ...] = ()
    backbone: str | None = None

    def to_json(self) -> str:
        return json.dumps({"kind": "text", **asdict(self)}, ensure_ascii=False, sort_keys=True)

    def describe(self) -> str:
        return f"search {self.text!r}"

    def matches(self, index: Index) -> list[Match]:
        from .search import by_text

        found = by_text(index, self.text, backbone=self.backbone, n=self.n,
                        min_score=self.min_score, under=[Path(u) for u in self.under])  # fmt: skip
        return _as_matches(index, found, "search", "text similarity")


def _as_matches(index: Index, found: list[Similar], model: str, label: str) -> list[Match]:
    out = []
    for s in found:
        info = index.photo_brief(s.path)
        if info is not None:
            pid, mtime_ns, taken_at = info
            when = photo_when(taken_at, mtime_ns)
            out.append(Match(pid, encode_path(s.path), when, taken_at, [(model, label, s.score)]))
    return out


def query_from_json(text: str) -> AlbumQuery:
    d = json.loads(text)
    if d.get("kind") == "similar":
        return SimilarQuery(**fields_from_json(d))
    if d.get("kind") == "text":
        return TextQuery(**fields_from_json(d))
    return TagQuery.from_dict(d)


@dataclass
class AlbumReport:
    name: str
    folder: Path
    query: str
    matches: int = 0
    companions: int = 0  # RAW halves and Live Photo videos that follow the matches in
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # ours once, changed by the user since
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name, "folder": str(self.folder), "query": self.query, "matches": self.matches,
            "companions": self.companions, "added": self.added, "removed": self.removed, "left_alone": self.left_alone,
            "failed": [{"entry": e, "error": r} for e, r in self.failed],
        }  # fmt: skip


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:]")


def album_name(q: TagQuery) -> str:
    """A readable name for a query's album: ``wedding ceremony``, ``beach + sunset``."""
    name = (" or " if q.any else " + ").join([*q.tags, *q.people])
    if q.exclude:
        name += " without " + ", ".join(q.exclude)
    return name


def safe_folder_name(name: str) -> str:
    """A single path component made from user input: no separators, no '..', no control chars."""
    cleaned = _UNSAFE.sub("-", name).strip(" .")
    cleaned = cleaned[:120].strip(" .") or "album"
    return cleaned


def album_folder(albums_dir: Path, name: str) -> Path:
    """The folder for album ``name`` inside ``albums_dir``, never outside it."""
    base = albums_dir.resolve()
    folder = base / safe_folder_name(name)
    if os.path.islink(folder) or folder.resolve().parent != base:
        raise ConfigError(f"album {name!r} would not be a folder inside {base}")
    return folder


def printable(name: str) -> str:
    """A file name from disk as valid text: bytes that are not UTF-8 become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def entry_name(m: Match, taken: set[str]) -> str:
    """``20240601-103000_IMG_0001.jpg``: sorts by capture time; a hash is added on collision."""
    original = safe_folder_name(printable(m.path.name))
    name = f"{m.when:%Y%m%d-%H%M%S}_{original}"
    if name.casefold() in taken:
        stem, ext = os.path.splitext(original)
        digest = hashlib.sha256(m.raw).hexdigest()[:8]
        name = f"{m.when:%Y%m%d-%H%M%S}_{stem}-{digest}{ext}"
        n = 2
        while name.casefold() in taken:
            name = f"{m.when:%Y%m%d-%H%M%S}_{stem}-{digest}-{n}{ext}"
            n += 1
    return name


class AlbumFiles:
    """Makes and removes album entries."""

    def mkdir(self, folder: Path, name: str, query: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / ALBUM_MARKER
        marker.write_text(
            json.dumps({"album": name, "query": json.loads(query)}, ensure_ascii=False) + "\n"
        )

    def link(self, source: Path, entry: Path, mode: LinkMode) -> None:
        if mode is LinkMode.SYMLINK:
            os.symlink(source, entry)
        elif mode is LinkMode.HARDLINK:
            os.link(source, entry)
        else:
            # Copy to a temporary name and rename: a killed copy leaves no half photo.
            fd, tmp = tempfile.mkstemp(prefix=".phototag-tmp-", dir=entry.parent)
            os.close(fd)
            try:
                shutil.copy2(source, tmp)  # contents, mode bits and mtime
                os.replace(tmp, entry)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def remove(self, entry: Path) -> None:
        entry.unlink()


class DryRunFiles(AlbumFiles):
    def mkdir(self, folder: Path, name: str, query: str) -> None:
        pass

    def link(self, source: Path, entry: Path, mode: LinkMode) -> None:
        pass

    def remove(self, entry: Path) -> None:
        pass


def still_ours(entry: Path, source: Path, mode: str) -> bool:
    """Whether an entry is still the link or copy phototag made (not replaced by the user)."""
    try:
        if mode == LinkMode.SYMLINK:
            return entry.is_symlink() and os.readlink(entry) == os.fspath(source)
        st = entry.lstat()
        if entry.is_symlink():
            return False
        if mode == LinkMode.HARDLINK:
            src = source.stat()
            return (st.st_dev, st.st_ino) == (src.st_dev, src.st_ino)
        return True  # a copy: its name is ours and it is a regular file
    except OSError:
        return False


def build_album(
    index: Index,
    name: str,
    folder: Path,
    query: AlbumQuery,
    link: LinkMode = LinkMode.SYMLINK,
    *,
    html: bool = False,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    matches: list[Match] | None = None,
) -> AlbumReport:
    """Create or bring up to date the album ``name`` in ``folder``; ``progress(done, total)``
    follows the thumbnails of the contact sheet (``html``), the slow part. ``matches``:
    ``query.matches(index)`` when the caller has just run it (not run again)."""
    fs: AlbumFiles = DryRunFiles() if dry_run else AlbumFiles()
    existing_album = index.album(name)
    other = index.album_at(folder)
    if other is not None and other.name != name:
        raise ConfigError(f"{folder} already holds the album {other.name!r}")
    if os.path.lexists(folder) and not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: choose another place for the album")
    if (
        existing_album is None
        and folder.exists()
        and any(folder.iterdir())
        and not (folder / ALBUM_MARKER).exists()
    ):
        raise ConfigError(f"{folder} exists and is not a phototag album: choose another folder")
    if matches is None:
        matches = query.matches(index)
    report = AlbumReport(name, folder, query.describe(), matches=len(matches))
    linked = with_companions(index, matches)
    report.companions = len(linked) - len(matches)
    entries = index.album_sources(name) if existing_album else {}
    mode = LinkMode(existing_album.link) if existing_album else link
    if existing_album and existing_album.link != link.value:
        # Changing the link mode: remove our old entries and make them again the new way.
        for entry, source in list(entries.items()):
            if still_ours(folder / entry, decode_path(source), mode.value):
                fs.remove(folder / entry)
            if not dry_run:
                with index.transaction():
                    index.remove_album_entry(name, entry)
            entries.pop(entry)
        mode = link
    try:
        fs.mkdir(folder, name, query.to_json())
    except OSError as e:
        raise PhototagError(f"cannot make the album folder {folder}: {e.strerror}") from None
    if not dry_run and folder.is_dir():
        for stale in folder.glob(".phototag-tmp-*"):  # a copy interrupted by a kill
            stale.unlink(missing_ok=True)
    if not dry_run:
        with index.transaction():
            index.save_album(name, folder, query.to_json(), mode.value, html)
    # Matches and entries are compared as the index stores paths (bytes), and the folder is
    # read once (os.scandir): a refresh of 100,000 entries makes no Path and no system call
    # per entry that stays (see _kept); only entries that go, and new matches, are looked at.
    wanted = {m.raw: m for m in linked}
    by_source = {src: entry for entry, src in entries.items()}
    listing = _listing(folder)

    # 1. Entries that no longer match (or whose photo is gone): remove what is still ours.
    gone: set[str] = set()
    for entry, source in sorted(entries.items()):
        if source in wanted and _kept(folder, entry, source, mode, listing):
            continue
        if source in wanted and not os.path.lexists(source):
            continue  # an offline photo (its folder is away for now): its entry stays as it is
        target = folder / entry
        if source not in wanted and still_ours(target, decode_path(source), mode.value):
            try:
                fs.remove(target)
                report.removed.append(entry)
                gone.add(entry)
            except OSError as e:
                report.failed.append((entry, e.strerror or str(e)))
                continue
        elif source not in wanted and os.path.lexists(target):
            report.left_alone.append(entry)
        elif source in wanted and os.path.lexists(target):
            report.left_alone.append(entry)  # the user replaced our entry: theirs now
        if not dry_run:
            with index.transaction():
                index.remove_album_entry(name, entry)
        by_source.pop(source, None)

    # 2. New matches.
    taken = {n.casefold() for n in listing if dry_run or n not in gone}
    taken |= {e.casefold() for e in by_source.values()}
    folders: dict[bytes, bool] = {}
    for m in linked:
        if m.raw in by_source or not _present(m.raw, folders):
            continue  # already there, or offline: added when its folder is back
        entry = entry_name(m, taken)
        taken.add(entry.casefold())
        photo = m.path
        # Recorded before it is made: a kill in between leaves a record of a missing entry
        # (re-made next time), never an entry of ours that we would take for the user's.
        if not dry_run:
            with index.transaction():
                index.add_album_entry(name, entry, photo)
        try:
            fs.link(photo, folder / entry, mode)
        except OSError as e:
            why = e.strerror or str(e)
            if mode is LinkMode.HARDLINK and e.errno == 18:  # EXDEV
                why = "cannot hard-link across file systems; make the album with symbolic links or copies"
            report.failed.append((entry, why))
            if not dry_run:
                with index.transaction():
                    index.remove_album_entry(name, entry)
            continue
        report.added.append(entry)
        by_source[m.raw] = entry

    if not dry_run:
        with index.transaction():
            index.save_album(name, folder, query.to_json(), mode.value, html)
        if html:
            from ..index.faces import face_boxes
            from .contactsheet import write_contact_sheet

            shown = [(by_source[m.raw], m) for m in matches if m.raw in by_source]
            try:
                write_contact_sheet(
                    folder,
                    shown,
                    query.describe(),
                    progress,
                    faces=face_boxes(index, [m.photo_id for _, m in shown]),
                )
            except OSError as e:
                report.failed.append(("index.html", e.strerror or str(e)))
    return report


def _listing(folder: Path) -> dict[str, os.DirEntry[str]]:
    """The album folder's entries by name, from one ``os.scandir`` (empty if it is not there)."""
    try:
        with os.scandir(folder) as it:
            return {e.name: e for e in it}
    except OSError:
        return {}


def _kept(
    folder: Path, entry: str, source: bytes, mode: LinkMode, listing: dict[str, os.DirEntry[str]]
) -> bool:
    """Whether the entry of a photo that still matches is there and still ours.

    Symbolic links and copies are answered from the folder's listing (the kind of each
    name comes with it, no system call): a link by the name we gave, recorded for this
    photo, is taken for ours without reading it (readlink cost 3 s for 100,000 entries).
    What that trusts is only that it stays: an entry is removed only after
    :func:`still_ours` has read its target, so a link the user put in its place is never
    deleted. Hard links need the inodes of both: :func:`still_ours`.
    """
    found = listing.get(entry)
    if found is None:
        return False
    if mode is LinkMode.SYMLINK:
        return found.is_symlink()
    if mode is LinkMode.COPY:
        return not found.is_symlink()
    return still_ours(folder / entry, decode_path(source), mode.value)


def _present(raw: bytes, folders: dict[bytes, bool]) -> bool:
    """``os.path.lexists(raw)``, asking once per folder (``folders`` remembers) whether the
    folder is there: the photos of a folder that is away (an unplugged disk) cost one call
    together, not one each."""
    parent = os.path.dirname(raw)
    there = folders.get(parent)
    if there is None:
        there = folders[parent] = os.path.isdir(parent)
    return there and os.path.lexists(raw)


def with_companions(index: Index, matches: list[Match]) -> list[Match]:
    """The matches, each followed by its companions (a Live Photo's MOV, the RAW of a
    RAW+JPEG pair), which share its capture time so their entries sort and pair with it."""
    companions = index.companions_by_photo()
    if not companions.keys() & {m.photo_id for m in matches}:
        return list(matches)
    out = []
    for m in matches:
        out.append(m)
        out.extend(replace(m, raw=encode_path(path)) for path, _ in companions.get(m.photo_id, []))
    return out


def refresh_all(index: Index, *, dry_run: bool = False) -> list[AlbumReport]:
    """Bring every managed album up to date (for cron, after the nightly scan)."""
    reports = []
    for album in index.albums():
        try:
            q = query_from_json(album.query)
            reports.append(build_album(index, album.name, album.folder, q, LinkMode(album.link),
                                       html=album.html, dry_run=dry_run))  # fmt: skip
        except PhototagError as e:
            r = AlbumReport(album.name, album.folder, album.query)
            r.failed.append(("", str(e)))
            reports.append(r)
    return reports


def remove_album(index: Index, name: str, *, dry_run: bool = False) -> AlbumReport:
    """Forget the album ``name`` and take back what phototag made in its folder.

    Only entries that are still the links or copies phototag made are removed (as when an
    album is refreshed), with its marker, contact sheet and thumbnails; the folder itself
    goes only if that leaves it empty. Raises :class:`ConfigError` for an unknown name,
    with the closest album names.
    """
    from .contactsheet import THUMBS

    album = index.album(name)
    if album is None:
        import difflib

        names = [a.name for a in index.albums()]
        near = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise ConfigError(
            f"no album named {name!r}{hint} (the albums: "
            f"{', '.join(repr(n) for n in names) or 'none'})"
        )
    fs: AlbumFiles = DryRunFiles() if dry_run else AlbumFiles()
    folder = album.folder
    report = AlbumReport(name, folder, query_from_json(album.query).describe())
    for entry, source in sorted(index.album_entries(name).items()):
        target = folder / entry
        if still_ours(target, source, album.link):
            try:
                fs.remove(target)
                report.removed.append(entry)
            except OSError as e:
                report.failed.append((entry, e.strerror or str(e)))
                continue
        elif os.path.lexists(target):
            report.left_alone.append(entry)
    if report.failed:
        return report  # the record stays, so a second try finds the entries again
    if not dry_run:
        thumbs = folder / THUMBS
        if thumbs.is_dir() and not thumbs.is_symlink():
            for t in thumbs.iterdir():
                t.unlink(missing_ok=True)
            _rmdir_if_empty(thumbs)
        for ours in (folder / "index.html", folder / ALBUM_MARKER):
            if album.html or ours.name == ALBUM_MARKER:
                ours.unlink(missing_ok=True)
        _rmdir_if_empty(folder)
        with index.transaction():
            index.delete_album(name)
    return report


def _rmdir_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (the user's files), or already gone
        folder.rmdir()
