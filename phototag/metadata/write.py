"""Writing the index's tags into files (sidecars or embedded), and taking them back.

``write_tags`` and ``clean`` are generators of events, like ``scan``. What they do to files
goes through a :class:`Writer`: :class:`FileWriter` changes files and records what it did
in the index; :class:`DryRunWriter` does neither, so ``--dry-run`` is the same code path.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from ..config import IptcPolicy, WriteMode, WriteSettings
from ..errors import MetadataError
from ..index.paths import canonical_path
from ..index.store import Index, PhotoTags, TargetRecord
from ..library.corrections import corrected_photo_tags, record_deletion
from ..library.people import photo_dims, with_people
from ..media.kinds import FileKind, classify
from ..media.pairs import CompanionRole
from ..names import tag_names
from ..tagging.loader import content_hash
from ..tagpath import leaf
from .embed import embed_file, restore_interrupted
from .exiftool import WRITABLE, ExifTool
from .keywords import (
    IPTC_MAX_BYTES,
    XMP_FIELDS,
    Change,
    Field,
    KeywordStyle,
    desired,
    fit_iptc,
    merge,
    remove_ours,
)
from .regions import yield_to_others
from .sidecars import SidecarResolver
from .xmp import Sidecar, write_atomic


class TargetKind(StrEnum):
    """What a write event's target is: a sidecar beside the photo, or the photo itself."""

    SIDECAR = "sidecar"
    EMBEDDED = "embedded"


def _kind_of(photo: Path, target: Path) -> TargetKind:
    # A sidecar (the photo's, or its RAW companion's) is never the photo's own path.
    return TargetKind.EMBEDDED if target == photo else TargetKind.SIDECAR


@dataclass(frozen=True, slots=True)
class Wrote:
    """Keywords changed in ``target`` (the photo itself or its sidecar)."""

    photo: Path
    target: Path
    added: dict[str, list[str]]
    removed: dict[str, list[str]]
    deleted: bool = False  # clean removed a sidecar phototag had created
    warnings: list[str] = field(default_factory=list)

    @property
    def kind(self) -> TargetKind:
        return _kind_of(self.photo, self.target)


@dataclass(frozen=True, slots=True)
class Unchanged:
    """Nothing to change in ``target``; ``skipped_kind``: the photo was not looked at (its
    folder is offline) and would have been written as this kind."""

    photo: Path
    target: Path
    warnings: list[str] = field(default_factory=list)
    skipped_kind: TargetKind | None = None

    @property
    def kind(self) -> TargetKind:
        return self.skipped_kind or _kind_of(self.photo, self.target)


@dataclass(frozen=True, slots=True)
class WriteFailed:
    """``photo`` could not be written; ``kind``: into what it was being written."""

    photo: Path
    reason: str
    kind: TargetKind = TargetKind.SIDECAR


WriteEvent = Wrote | Unchanged | WriteFailed


def _diff(
    before: Mapping[Field, Sequence[str]], after: Mapping[Field, Sequence[str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    added, removed = {}, {}
    for f in Field:
        b, a = list(before.get(f, [])), list(after.get(f, []))
        if plus := [v for v in a if v not in b]:
            added[f.value] = plus
        if minus := [v for v in b if v not in a]:
            removed[f.value] = minus
    return added, removed


def _digest(wanted: Mapping[Field, Sequence[str]], style: KeywordStyle) -> str:
    blob = json.dumps(
        [style.root, {f.value: list(v) for f, v in sorted(wanted.items())}], ensure_ascii=False
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Writer:
    """Applies changes to files and records them. Subclassed by the dry run."""

    dry_run = False

    def __init__(self, index: Index, exiftool: ExifTool | None) -> None:
        self.index = index
        self.exiftool = exiftool

    def sidecar(self, path: Path, sidecar: Sidecar) -> None:
        write_atomic(path, sidecar.to_bytes())

    def delete_sidecar(self, path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise MetadataError(f"cannot delete {path}: {e.strerror}") from None

    def move_sidecar(self, old: Path, new: Path, rec: TargetRecord) -> None:
        """Move a sidecar phototag created to ``new`` (its photo was moved or renamed).

        The new name is recorded as phototag's first, the old one forgotten last: a kill at
        any point leaves every file phototag wrote known to the index.
        """
        if os.path.lexists(new) and not _same_file(old, new):
            raise MetadataError(f"cannot move {old.name} to {new}: it exists")
        with self.index.transaction():
            self.index.record_target(
                new, photo_id=rec.photo_id, mode="sidecar", created=True, size=None,
                mtime_ns=None, wanted="pending", ours=rec.ours,
            )  # fmt: skip
        try:
            # link + unlink rather than rename: a file that appears at ``new`` meanwhile is
            # never overwritten (link fails). Killed in between, the next run finds both
            # names on one file and only unlinks the old one.
            if not os.path.lexists(new):
                os.link(old, new)
            os.unlink(old)
        except OSError as e:
            if e.errno == errno.EEXIST:
                raise MetadataError(f"cannot move {old.name} to {new}: it exists") from None
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise MetadataError(f"cannot move {old} to {new}: {e.strerror}") from None
            try:  # no hard links here (another file system, FAT, some shares): copy, then delete
                write_atomic(new, old.read_bytes())
                os.unlink(old)
            except OSError as e2:
                raise MetadataError(f"cannot move {old} to {new}: {e2.strerror}") from None
        self.forget(old)

    def embed(
        self,
        photo: PhotoTags | None,
        path: Path,
        values: Mapping[Field, Sequence[str]],
        backup: bool,
        iptc_to_utf8: bool = False,
        dims: tuple[int, int] | None = None,
    ) -> list[str]:
        assert self.exiftool is not None
        # A symlink stays a symlink: its target gets the metadata (issue 13, item 3).
        real = Path(os.path.realpath(path))
        warnings = embed_file(
            self.exiftool, real, values, backup=backup, iptc_to_utf8=iptc_to_utf8, dims=dims
        )
        if photo is not None:
            # The photo's bytes changed (not its pixels): keep the index in step, or the next
            # scan would take it for a new photo and tag it again.
            data = path.read_bytes()
            st = path.stat()
            with self.index.transaction():
                self.index.update_file_state(
                    photo.id, st.st_size, st.st_mtime_ns, content_hash(data)
                )
        return warnings

    def record(self, target: Path, *, photo_id: int | None, mode: str, created: bool,
               wanted: str, ours: Mapping[Field, Sequence[str]]) -> None:  # fmt: skip
        size: int | None = None
        mtime: int | None = None
        try:
            st = os.stat(target)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            pass
        with self.index.transaction():
            self.index.record_target(
                target, photo_id=photo_id, mode=mode, created=created, size=size, mtime_ns=mtime,
                wanted=wanted, ours={f.value: list(v) for f, v in ours.items()},
            )  # fmt: skip

    def intend(self, target: Path, *, photo_id: int | None, mode: str, created: bool,
               before: Mapping[Field, Sequence[str]], after: Mapping[Field, Sequence[str]]) -> None:  # fmt: skip
        """Before a file is changed: own both the old and the new values.

        A kill between the file write and :meth:`record` then leaves the index claiming
        values that may not be in the file (harmless: nothing to remove) rather than the
        file holding phototag values the index does not know (which would pass for the
        user's and never be taken back).
        """
        union = {f: list(dict.fromkeys([*before.get(f, []), *after.get(f, [])])) for f in Field}
        with self.index.transaction():
            self.index.record_target(
                target, photo_id=photo_id, mode=mode, created=created, size=None, mtime_ns=None,
                wanted="pending", ours={f.value: v for f, v in union.items() if v},
            )  # fmt: skip

    def forget(self, target: Path) -> None:
        with self.index.transaction():
            self.index.forget_target(target)

    def respect_deletion(self, photo: PhotoTags, tag_path: str) -> None:
        """The user deleted this tag's keyword from the file: a correction, never written back."""
        with self.index.transaction():
            record_deletion(self.index, photo.hash, tag_path)


class DryRunWriter(Writer):
    """Says what would change; touches no file and no index row."""

    dry_run = True

    def sidecar(self, path: Path, sidecar: Sidecar) -> None:
        pass

    def delete_sidecar(self, path: Path) -> None:
        pass

    def move_sidecar(self, old: Path, new: Path, rec: TargetRecord) -> None:
        pass

    def embed(
        self,
        photo: PhotoTags | None,
        path: Path,
        values: Mapping[Field, Sequence[str]],
        backup: bool,
        iptc_to_utf8: bool = False,
        dims: tuple[int, int] | None = None,
    ) -> list[str]:
        return []

    def record(self, target: Path, **kw: object) -> None:
        pass

    def intend(self, target: Path, **kw: object) -> None:
        pass

    def forget(self, target: Path) -> None:
        pass

    def respect_deletion(self, photo: PhotoTags, tag_path: str) -> None:
        pass


def _unchanged_since_written(index: Index, target: Path, wanted_digest: str) -> bool:
    rec = index.target(target)
    if rec is None or rec.wanted != wanted_digest:
        return False
    try:
        st = os.stat(target)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (rec.size, rec.mtime_ns)


def _ours(index: Index, target: Path) -> tuple[dict[Field, list[str]], bool | None]:
    rec = index.target(target)
    if rec is None:
        return {}, None
    return {Field(f): v for f, v in rec.ours.items() if f in Field._value2member_map_}, rec.created


def deleted_by_user(
    rec: TargetRecord | None,
    target: Path,
    current: Mapping[Field, Sequence[str]],
    tag_paths: Sequence[str],
    style: KeywordStyle,
) -> list[str]:
    """The tags whose keyword phototag wrote into ``target`` and someone has since deleted.

    Only a file that changed since phototag last wrote it (size or mtime) is looked at,
    and only a completed write (not one killed half-way, ``wanted == 'pending'``). A tag
    counts as deleted when any XMP value phototag wrote for it (dc:subject,
    lr:hierarchicalSubject, digiKam:TagsList) is gone: Windows and Apple Photos edit only
    dc:subject, Lightroom and darktable both of the first two. IPTC is not consulted (many
    editors drop legacy IPTC when they save, which is not a user's choice about one tag),
    nor is a missing file (a deleted sidecar says nothing about any one tag), nor a field
    that is gone as a whole (a program that does not know digiKam:TagsList may drop it; one
    that strips all XMP drops every field, and then nothing is taken as deleted).
    """
    if rec is None or rec.wanted in (None, "pending") or rec.size is None:
        return []
    try:
        st = os.stat(target)
    except OSError:
        return []
    if (st.st_size, st.st_mtime_ns) == (rec.size, rec.mtime_ns):
        return []
    present = {f for f in XMP_FIELDS if current.get(f)}
    gone = []
    for path in tag_paths:
        for f, values in desired([path], style, iptc=False).items():
            if f not in present:
                continue
            owned = set(rec.ours.get(f.value, []))
            have = set(current.get(f, []))
            if any(v in owned and v not in have for v in values):
                gone.append(path)
                break
    return gone


def _respect_deletions(
    photo: PhotoTags,
    gone: Sequence[str],
    writer: Writer,
    target: Path,
    english: Mapping[str, str] | None = None,
) -> tuple[PhotoTags, list[str]]:
    """Record the deletions (as the index's English tag paths, when ``--lang`` wrote others)
    and leave those tags out of what is written."""
    for path in gone:
        writer.respect_deletion(photo, (english or {}).get(path, path))
    notes = [
        f"{leaf(p)!r} was deleted from {target.name} since phototag wrote it: kept off this "
        "photo as a correction ('phototag tag add' brings it back)"
        for p in gone
    ]
    return PhotoTags(photo.id, photo.path, [p for p in photo.tag_paths if p not in gone],
                     photo.hash), notes  # fmt: skip


def write_tags(
    index: Index,
    roots: Sequence[Path],
    settings: WriteSettings,
    *,
    recognizers: Sequence[str] | None = None,
    dry_run: bool = False,
    photo_ids: Sequence[int] | None = None,
    keep_modes: bool = False,
) -> Iterator[WriteEvent]:
    """Write what the index holds for photos under ``roots`` (or these ``photo_ids``) into their files.

    The tags are the models' with the user's corrections applied
    (:mod:`phototag.library.corrections`). ``keep_modes``: each photo is written the way it was
    written last (sidecar or embedded; ``retag`` and ``tag`` use this), ``settings.mode``
    only for photos never written. Photos whose folder is offline are skipped.
    """
    if settings.mode is WriteMode.NONE and not keep_modes:
        return
    style = KeywordStyle(root=settings.root, flat=settings.flat, hierarchical=settings.hierarchical)
    names = tag_names(settings.language)  # checked before any file is touched
    photos = corrected_photo_tags(index, roots, recognizers, photo_ids)
    offline = index.offline_ids()
    with ExitStack() as stack:
        writer = (DryRunWriter if dry_run else Writer)(index, None)
        if settings.mode is WriteMode.EMBED and photos and not keep_modes:
            writer.exiftool = stack.enter_context(ExifTool())  # missing exiftool: said at once
        resolver = SidecarResolver()
        companions = index.companions_by_photo()
        for photo in photos:
            mode = settings.mode
            if keep_modes:
                mode = WriteMode(index.last_write_mode(photo.id) or settings.mode.value)
            if mode is WriteMode.NONE:
                continue
            into = (
                TargetKind.SIDECAR
                if mode is WriteMode.SIDECAR or sidecar_only(photo.path)
                else TargetKind.EMBEDDED
            )
            if photo.id in offline:  # scan warned about its folder
                yield Unchanged(photo.path, photo.path, skipped_kind=into)
                continue
            # The RAW of a RAW+JPEG pair is the same photo (docs/formats.md): the same tags,
            # in the RAW's own sidecar, which the photo's write must not take for a stale one.
            raws = [p for p, role in companions.get(photo.id, []) if role == CompanionRole.RAW]
            keep = {resolver.resolve(p, settings.sidecar_name).path for p in raws}
            done: set[Path] = set()
            try:
                english: dict[str, str] = {}
                if names.names:  # keywords in the user's language; the index stays English
                    english = dict(zip(names.paths(photo.tag_paths), photo.tag_paths, strict=True))
                    photo = replace(photo, tag_paths=names.paths(photo.tag_paths))
                if into is TargetKind.SIDECAR:
                    event = _write_sidecar(
                        photo, settings, style, writer, index, resolver, english, keep=keep
                    )
                else:
                    if writer.exiftool is None:
                        writer.exiftool = stack.enter_context(ExifTool())
                    event = _write_embedded(
                        photo, settings, style, writer, writer.exiftool, index, english
                    )
                if not isinstance(event, WriteFailed):
                    done.add(event.target)
                yield event
                if not isinstance(event, WriteFailed):
                    yield from _leave_old_place(photo, event.target, keep, writer, index, stack)
            except MetadataError as e:
                yield WriteFailed(photo.path, str(e), into)
            for raw in raws:
                try:
                    if resolver.resolve(raw, settings.sidecar_name).path in done:
                        continue
                    yield _write_sidecar(
                        photo, settings, style, writer, index, resolver, english, source=raw
                    )
                except MetadataError as e:
                    yield WriteFailed(raw, str(e), TargetKind.SIDECAR)


def sidecar_only(path: Path) -> bool:
    """RAW files and videos only ever get sidecars, even with ``--write embed`` (issue 18): a
    RAW is the photographer's negative (darktable, Lightroom and digiKam keep its metadata
    in sidecars), and rewriting a video's container is risky and slow."""
    return classify(path.name) in (FileKind.RAW, FileKind.VIDEO)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _settle_old_sidecars(
    photo: PhotoTags,
    target: Path,
    writer: Writer,
    index: Index,
    resolver: SidecarResolver,
    keep: Collection[Path] = (),
) -> list[str]:
    """Sidecars phototag wrote for ``photo`` that are not ``target`` (issue 13, items 1 and 6).

    They are left from before the photo was moved or renamed, from another ``--sidecar-name``,
    or from a sidecar two photos shared. One phototag created, whose photo is gone, moves to
    ``target`` when nothing is there yet (whatever other programs added to it moves too).
    From any other, phototag takes back its own values, as ``clean`` would, and deletes it
    only if phototag created it and it is now empty: a user's sidecar is never moved.
    """
    notes: list[str] = []
    for old in index.targets_of(photo.id):
        if old == target or old in keep:  # keep: its RAW companion's sidecar
            continue
        rec = index.target(old)
        if rec is None or rec.mode != "sidecar":
            continue
        if not os.path.lexists(old):
            writer.forget(old)
            continue
        free = not os.path.lexists(target) or _same_file(old, target)
        if rec.created and not resolver.describes_something(old) and free:
            writer.move_sidecar(old, target, rec)
            resolver.removed(old)
            resolver.created(target)
            notes.append(f"moved {old} to {target.name} with its photo")
            continue
        sidecar = Sidecar.read(old)
        if sidecar is None:
            writer.forget(old)
            continue
        ours = {Field(f): v for f, v in rec.ours.items() if f in Field._value2member_map_}
        change = remove_ours(sidecar.fields(), ours)
        sidecar.set_fields(change.values)
        if rec.created and sidecar.is_empty():
            writer.delete_sidecar(old)
            resolver.removed(old)
            notes.append(f"{old} is not this photo's sidecar any more: phototag's own, deleted")
        else:
            if change.changed:
                writer.sidecar(old, sidecar)
            notes.append(
                f"{old} is not this photo's sidecar any more: phototag's values taken out of it"
            )
        writer.forget(old)
    return notes


def _with_people(
    wanted: dict[Field, list[str]], index: Index, photo: PhotoTags, style: KeywordStyle, iptc: bool
) -> dict[Field, list[str]]:
    """The named people's keywords and face regions too (phototag.library.people.keyword_values)."""
    return with_people(
        wanted, index, photo.id, flat=style.flat, hierarchical=style.hierarchical, iptc=iptc
    )


def _write_sidecar(
    photo: PhotoTags,
    settings: WriteSettings,
    style: KeywordStyle,
    writer: Writer,
    index: Index,
    resolver: SidecarResolver,
    english: Mapping[str, str] | None = None,
    *,
    source: Path | None = None,
    keep: Collection[Path] = (),
) -> WriteEvent:
    """Write ``photo``'s tags into the sidecar of ``source`` (default: the photo itself; a
    RAW+JPEG pair's RAW gets its photo's tags); ``keep``: sidecars not to settle as stale."""
    resolution = resolver.resolve(source or photo.path, settings.sidecar_name)
    target = resolution.path
    notes = (
        _settle_old_sidecars(photo, target, writer, index, resolver, keep) if source is None else []
    )
    wanted = _with_people(desired(photo.tag_paths, style, iptc=False), index, photo, style, False)
    digest = _digest(wanted, style)
    if not notes and _unchanged_since_written(index, target, digest):
        return Unchanged(photo.path, target)
    ours, created_before = _ours(index, target)
    existing = Sidecar.read(target)
    sidecar = existing or Sidecar.new()
    created = created_before if created_before is not None else existing is None
    current = sidecar.fields()
    gone = deleted_by_user(index.target(target), target, current, photo.tag_paths, style)
    if gone:
        photo, deletions = _respect_deletions(photo, gone, writer, target, english)
        notes += deletions
        wanted = _with_people(
            desired(photo.tag_paths, style, iptc=False), index, photo, style, False
        )
        digest = _digest(wanted, style)
    change = merge(current, ours, yield_to_others(wanted, current, ours, Field.REGIONS))
    if change.changed:
        sidecar.dims = photo_dims(index, photo.id)
        sidecar.set_fields(change.values)
        writer.intend(
            target,
            photo_id=photo.id,
            mode="sidecar",
            created=created,
            before=ours,
            after=change.ours,
        )
        writer.sidecar(target, sidecar)
        if existing is None:
            resolver.created(target)
    elif existing is None:
        return Unchanged(photo.path, target, notes)  # nothing to say and no sidecar: create none
    writer.record(
        target, photo_id=photo.id, mode="sidecar", created=created, wanted=digest, ours=change.ours
    )
    if not change.changed:
        return Unchanged(photo.path, target, notes)
    added, removed = _diff(current, change.values)
    warnings = [*resolution.notes, *notes, *change.warnings]
    return Wrote(photo.path, target, added, removed, warnings=warnings)


def _write_embedded(photo: PhotoTags, settings: WriteSettings, style: KeywordStyle, writer: Writer,
                    exiftool: ExifTool, index: Index,
                    english: Mapping[str, str] | None = None) -> WriteEvent:  # fmt: skip
    target = photo.path
    if index.target(target) is None and not any(
        _with_people(
            desired(photo.tag_paths, style, iptc=False), index, photo, style, False
        ).values()
    ):  # nothing to embed and nothing of ours to take back: no reason to refuse the file
        return Unchanged(photo.path, target)
    if target.suffix.lower() not in WRITABLE:
        raise MetadataError(
            f"embedding keywords into {target.suffix or 'this'} files is not supported; write a sidecar for them instead"
        )
    if not os.access(target, os.W_OK) and not writer.dry_run:
        raise MetadataError("the file is read-only")
    if not writer.dry_run:
        restore_interrupted(Path(os.path.realpath(target)))  # a killed in-place write first
    read = exiftool.read(target)
    iptc = settings.iptc is IptcPolicy.ALWAYS or (
        settings.iptc is IptcPolicy.EXISTING and read.has_iptc
    )
    ours, _ = _ours(index, target)
    gone = deleted_by_user(index.target(target), target, read.values, photo.tag_paths, style)
    notes: list[str] = []
    if gone:
        photo, notes = _respect_deletions(photo, gone, writer, target, english)
    wanted = _with_people(desired(photo.tag_paths, style, iptc=iptc), index, photo, style, iptc)
    digest = _digest(wanted, style)
    change: Change = merge(
        read.values, ours, yield_to_others(wanted, read.values, ours, Field.REGIONS)
    )
    warnings = read.warnings + change.warnings + notes
    if change.changed:
        changed_fields = {
            f: v for f, v in change.values.items() if list(read.values.get(f, [])) != v
        }
        writer.intend(
            target, photo_id=photo.id, mode="embed", created=False, before=ours, after=change.ours
        )
        warnings += writer.embed(
            photo, target, changed_fields, settings.backup,
            iptc_to_utf8=read.has_iptc and not read.iptc_utf8,
            dims=photo_dims(index, photo.id),
        )  # fmt: skip
    writer.record(
        target, photo_id=photo.id, mode="embed", created=False, wanted=digest, ours=change.ours
    )
    if not change.changed:
        return Unchanged(photo.path, target, notes)
    added, removed = _diff(read.values, change.values)
    for v in desired(photo.tag_paths, style, iptc=False).get(Field.SUBJECT, []):
        if len(v.encode("utf-8")) > IPTC_MAX_BYTES and fit_iptc(v) in added.get(
            Field.IPTC.value, []
        ):
            warnings.append(
                f"IPTC keyword over {IPTC_MAX_BYTES} bytes: {v!r} stored in IPTC as "
                f"{fit_iptc(v)!r} (whole in XMP)"
            )
    return Wrote(photo.path, target, added, removed, warnings=warnings)


def clean(index: Index, roots: Sequence[Path], *, dry_run: bool = False) -> Iterator[WriteEvent]:
    """Remove exactly what phototag wrote from sidecars and files under ``roots``."""
    photos = index.photos_under([canonical_path(r) for r in roots])
    # An offline photo keeps everything phototag owns in it, for when its folder is back.
    offline = index.offline_ids()
    targets = [(p, t) for p in photos if p.id not in offline for t in index.targets_of(p.id)]
    with ExitStack() as stack:
        exiftool = None
        records = [index.target(t) for _, t in targets]
        if any(r is not None and r.mode == "embed" for r in records):
            exiftool = stack.enter_context(ExifTool())
        writer = (DryRunWriter if dry_run else Writer)(index, exiftool)
        for photo, target in targets:
            rec = index.target(target)
            assert rec is not None
            try:
                event = _take_back(photo, target, rec, writer, exiftool, dry_run)
            except MetadataError as e:
                event = WriteFailed(photo.path, str(e), _record_kind(rec))
            if event is not None:
                yield event


def _record_kind(rec: TargetRecord) -> TargetKind:
    return TargetKind.SIDECAR if rec.mode == "sidecar" else TargetKind.EMBEDDED


def _leave_old_place(
    photo: PhotoTags,
    written: Path,
    keep: set[Path],
    writer: Writer,
    index: Index,
    stack: ExitStack,
) -> Iterator[WriteEvent]:
    """After ``photo`` was written into ``written``: take phototag's own values out of where
    it was written before in the other mode (embedded -> sidecar, or back), so that one photo
    never carries two copies of which only one is kept up to date (docs/metadata.md)."""
    mode = index.target(written)
    for target in index.targets_of(photo.id):
        rec = index.target(target)
        if rec is None or mode is None or rec.mode == mode.mode or target in keep:
            continue
        if _same_file(target, written):
            continue
        if rec.mode != "sidecar" and writer.exiftool is None:
            writer.exiftool = stack.enter_context(ExifTool())
        try:
            dry = isinstance(writer, DryRunWriter)
            event = _take_back(photo, target, rec, writer, writer.exiftool, dry)
        except MetadataError as e:
            event = WriteFailed(photo.path, str(e), _record_kind(rec))
        if event is not None:
            yield event


def _take_back(
    photo: PhotoTags,
    target: Path,
    rec: TargetRecord,
    writer: Writer,
    exiftool: ExifTool | None,
    dry_run: bool,
) -> WriteEvent | None:
    """Remove exactly what phototag wrote into ``target`` (its ownership record ``rec``) and
    forget the target. Raises MetadataError."""
    photo_path = photo.path
    ours = {Field(f): v for f, v in rec.ours.items()}
    if rec.mode == "sidecar":
        sidecar = Sidecar.read(target)
        if sidecar is None:
            writer.forget(target)
            return None
        current = sidecar.fields()
        change = remove_ours(current, ours)
        sidecar.set_fields(change.values)
        added, removed = _diff(current, change.values)
        if rec.created and sidecar.is_empty():
            writer.delete_sidecar(target)
            writer.forget(target)
            return Wrote(photo_path, target, added, removed, deleted=True)
        if change.changed:
            writer.sidecar(target, sidecar)
    else:
        assert exiftool is not None
        if not dry_run:
            restore_interrupted(Path(os.path.realpath(target)))
        read = exiftool.read(target)
        current = read.values
        change = remove_ours(current, ours)
        if change.changed:
            writer.embed(
                photo,
                target,
                {f: v for f, v in change.values.items() if list(current.get(f, [])) != v},
                False,
                iptc_to_utf8=read.has_iptc and not read.iptc_utf8,
            )
        added, removed = _diff(current, change.values)
    writer.forget(target)
    return (
        Wrote(photo_path, target, added, removed)
        if change.changed
        else Unchanged(photo_path, target)
    )
