"""A scan: walk the folders, tag what is new or changed, and keep the index in step.

:func:`scan` is a generator of events (:class:`Tagged`, :class:`Failed`, ...) so that a
caller can show progress or stream JSON while it runs; its last event is
:class:`Finished` with the :class:`ScanReport`. Writes are committed one batch at a
time: a scan killed at any moment loses at most the batch in flight, and the next scan
picks up where it stopped.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path

from .. import config
from ..faces.step import FaceStep, faces_off, set_faces_off
from ..index.faces import copy_faces
from ..index.paths import canonical_path
from ..index.records import KnownFailure, KnownFile
from ..index.store import Index, PhotoRecord, decode_path, encode_path
from ..media.kinds import FileKind, extension
from ..media.pairs import Companion, pair
from ..models.backbones import BackboneOutput
from ..models.catalog import Catalog
from ..models.recognizers import Candidate
from ..models.session import Device
from .ignore import Excludes
from .loader import (
    UNREADABLE_REASON,
    Loaded,
    LoadFailed,
    default_workers,
    make_loader,
    ordered_map,
    read_ahead,
)
from .tagger import Tagger, completeness_digest, fingerprint, run_backbones
from .walk import (
    FileEntry,
    FileStat,
    Listing,
    OtherFile,
    SettledRecords,
    WalkProblem,
    record_paths,
    walk_stats,
)

__all__ = ["Failed", "Finished", "Planned", "ScanEvent", "ScanOptions", "ScanReport", "Tagged",
           "fingerprint", "scan"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScanOptions:
    recognizers: Sequence[str] | None = None  # None: the defaults
    threshold: float = config.DEFAULT_THRESHOLD
    top_k: int = config.DEFAULT_TOP_K
    batch_size: int | None = None  # None: 16 on the CPU, 128 on a GPU
    workers: int | None = None  # decode threads; None: one per core
    device: Device = Device.AUTO
    max_pixels: int = config.DEFAULT_MAX_PIXELS
    follow_symlinks: bool = False  # symlinks leading outside the scanned folders
    read_timeout: float = config.DEFAULT_READ_TIMEOUT  # seconds for one file, then it is skipped
    engine: config.Engine = config.Engine.LOCAL
    address: str | None = None  # Ray cluster address (None: a local Ray instance)
    backbone: str | None = None  # the zero-shot backbone for vocabularies (see Catalog)
    exclude: tuple[str, ...] = ()  # gitignore-style patterns, with each root's .phototagignore
    # Faces (phototag.faces): None = on in a default scan (no recognizers named), unless
    # 'people forget' turned them off in this index.
    faces: bool | None = None


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    """The walk is done: ``todo`` files will be read, ``total`` were found."""

    total: int
    todo: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class Tagged:
    """A photo got its tags: by inference, or (``reused``) from identical content."""

    path: Path
    tags: dict[str, list[Candidate]]
    reused: bool


@dataclass(frozen=True, slots=True)
class Read:
    """A file planned for reading has been read (or failed to be): for progress, before its
    batch is inferred. Every one of :attr:`Planned.todo` files gives exactly one."""

    path: Path


@dataclass(frozen=True, slots=True)
class Failed:
    path: Path
    reason: str
    known: bool = False  # failed before and unchanged since: not read again


@dataclass
class FileCounts:
    """Every file the walk saw, in exactly one kind (issue 18: nothing skipped in silence).

    ``photo + raw + video + sidecar + ignored + unsupported + unreadable == files``. RAW
    files and videos that are companions of a photo (a RAW+JPEG pair's RAW, a Live
    Photo's MOV) are counted under their kind and again in ``companions``.
    """

    kinds: dict[FileKind, int] = field(default_factory=lambda: dict.fromkeys(FileKind, 0))
    unreadable: int = 0  # broken symlinks, permission denied: see the failures
    unsupported_by_extension: dict[str, int] = field(default_factory=dict)
    companions: dict[str, int] = field(default_factory=dict)  # role -> count
    others: list[OtherFile] = field(default_factory=list)  # sidecars, ignored, unsupported

    @property
    def files(self) -> int:
        return sum(self.kinds.values()) + self.unreadable

    def add(self, item: FileEntry | OtherFile) -> None:
        self.kinds[item.kind] += 1
        if isinstance(item, OtherFile):
            self.others.append(item)
            if item.kind is FileKind.UNSUPPORTED:
                ext = extension(item.path.name).upper() or "(no extension)"
                self.unsupported_by_extension[ext] = self.unsupported_by_extension.get(ext, 0) + 1

    def as_json(self) -> dict[str, object]:
        return {
            "files": self.files,
            **{k.value: n for k, n in self.kinds.items()},
            "unreadable": self.unreadable,
            "unsupported_by_extension": dict(sorted(self.unsupported_by_extension.items())),
            "companions": self.companions,
            "others": [{"path": os.fsdecode(o.path), "kind": o.kind.value} for o in self.others],
        }


@dataclass
class ScanReport:
    """What a scan did. The counts add up: ``found == unchanged + tagged + reused + rescored
    + failed`` (a path the walk could not follow, such as a broken symlink, is found and
    failed; other names of a file already counted are in ``same_file``, not in ``found``)."""

    found: int = 0
    unchanged: int = 0
    tagged: int = 0  # by inference
    reused: int = 0  # moved, renamed, copied or touched files: results kept, nothing decoded
    removed: int = 0  # vanished files dropped from the index
    offline: int = 0  # vanished with their whole folder (an offline share?): kept, not dropped
    excluded: int = 0  # indexed, left out by --exclude or .phototagignore now: kept, not dropped
    rescored: int = 0  # unchanged files tagged again from stored embeddings (new threshold, ...)
    same_file: int = 0  # other names (hard links, symlinks) of files counted once
    decoded: int = 0
    failures: list[Failed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    seconds: float = 0.0
    files: FileCounts = field(default_factory=FileCounts)
    faces: int = 0  # faces found in the photos tagged by inference
    new_people: int = 0  # people formed from new faces (see phototag.faces.grouping)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def known_failed(self) -> int:
        """Failures met before, on files unchanged since (not read again)."""
        return sum(f.known for f in self.failures)

    def as_json(self) -> dict[str, object]:
        return {
            "found": self.found,
            "unchanged": self.unchanged,
            "tagged": self.tagged,
            "reused": self.reused,
            "removed": self.removed,
            "offline": self.offline,
            "excluded": self.excluded,
            "rescored": self.rescored,
            "same_file": self.same_file,
            "decoded": self.decoded,
            "failed": self.failed,
            "known_failed": self.known_failed,
            "warnings": self.warnings,
            "providers": self.providers,
            "seconds": round(self.seconds, 3),
            "files": self.files.as_json(),
            "faces": self.faces,
            "new_people": self.new_people,
        }


@dataclass(frozen=True, slots=True)
class Finished:
    report: ScanReport


ScanEvent = Planned | Read | Tagged | Failed | Finished


def scan(
    roots: Sequence[Path],
    index: Index,
    options: ScanOptions = ScanOptions(),
    catalog: Catalog | None = None,
) -> Iterator[ScanEvent]:
    """Tag every photo under ``roots`` that the index does not already hold as asked."""
    started = time.perf_counter()
    # The one tagging path (tagger.py): resolved once, from a copy of the catalog.
    catalog = catalog or Catalog.discover()  # the face step finds its models here too
    tagger = Tagger.resolve(
        options.recognizers,
        catalog=catalog,
        zero_shot=options.backbone,
        threshold=options.threshold,
        top_k=options.top_k,
        device=options.device,
    )
    backbones = tagger.backbones
    backbone_fps, fps = tagger.backbone_fingerprints, tagger.fingerprints
    report = ScanReport()
    face_step = _face_step(index, options, catalog, report)
    if face_step is not None:
        fps[face_step.name] = face_step.fingerprint  # a photo without faces looked for is not done

    # 1. Walk, and sort what we find against what the index knows.
    roots = [canonical_path(r) for r in roots]
    # A photo marked complete for these models and the face step (complete_for, kept honest
    # by triggers) is settled by its own row; only the others are looked up (issue 15).
    digest = completeness_digest(fps, backbone_fps)
    # Faces cannot be found in embeddings: a photo without its current face result is decoded.
    face_fp = {face_step.name: face_step.fingerprint} if face_step is not None else {}
    rescore: list[tuple[int, Path]] = []
    excludes = Excludes(roots, options.exclude)
    todo: list[FileEntry] = []
    walk_failures: list[tuple[WalkProblem, os.stat_result]] = []
    problems: list[bytes] = []  # paths the walk could not follow
    back_online: list[bytes] = []
    kinds = report.files.kinds
    photo = FileKind.PHOTO
    # Files named as roots are listed in full (and one beside its folder named too is walked
    # twice: kept once, below).
    folders = all(os.path.isdir(r) for r in roots)
    # Only the rows under the roots (a rescan of one folder reads that folder's rows), read
    # while the folders are walked: the settled photos as records that runs of walked photos
    # are compared with at once, the others as rows.
    known_failures = index.known_failures(roots)  # few: before, so that the walk sets them apart
    reading = _IndexReading(index, roots, digest, records=folders)
    reading.start()
    listings: list[Listing] = []  # in walk order
    walk_problems: list[WalkProblem] = []
    # Some files may have other names among those walked (symlinks, hard links): only then
    # are the files grouped by (st_dev, st_ino).
    linked = not folders and len(roots) > 1
    try:
        for item in walk_stats(
            roots,
            follow_symlinks=options.follow_symlinks,
            exclude=excludes.excluded if excludes else None,
            others=True,
            plain=folders,
            apart=known_failures,
        ):
            if item.__class__ is Listing:  # per folder (or run), never per file
                listings.append(item)
                # Companions and other names are counted by kind too.
                kinds[photo] += item.plain + item.photos
                if item.photos != len(item.files):
                    for s in item.files:
                        if s.kind is not photo:
                            kinds[s.kind] += 1
                linked = linked or item.linked
            elif isinstance(item, WalkProblem):
                walk_problems.append(item)
            elif isinstance(item, OtherFile):
                report.files.add(item)
    finally:
        reading.join()  # the index is not closed under it, whatever stopped the walk
    records, known = reading.result()
    for problem in walk_problems:
        # Remembered by the link's or folder's own lstat, like a file that failed to
        # decode: the same broken link is not an error again every night (issue 14).
        raw = encode_path(problem.path)
        st = _lstat(problem.path)
        kf = known_failures.get(raw)
        seen_before = bool(kf and st and (kf.size, kf.mtime_ns) == (st.st_size, st.st_mtime_ns))
        if st is not None and not seen_before:
            walk_failures.append((problem, st))
        failure = Failed(problem.path, problem.reason, known=seen_before)
        report.failures.append(failure)
        report.found += 1  # so that the summary adds up
        report.files.unreadable += 1
        problems.append(raw)  # a path we could not stat is not "vanished"
        yield failure
    # Runs of plain photos that are exactly as the index holds them are settled at once:
    # unchanged. The others are listed in full (stat'ed again) and looked at one by one.
    held = SettledRecords(records)
    stats: list[FileStat] = []  # what the walk found that needs a look, in walk order
    same: list[bytes] = []  # the records of the runs found as settled
    mixed: list[Listing] = []  # folders with RAW files or videos: companions may be there
    for listing in listings:
        if listing.plain:
            if held.take(listing.records):
                same.append(listing.records)
                report.unchanged += listing.plain
            else:
                stats += _restat(record_paths(listing.records))
        else:
            stats += listing.files
            if listing.photos != len(listing.files):
                mixed.append(listing)
    if not folders:  # a file named as a root and found in a folder named too: once is enough
        first: dict[bytes, FileStat] = {}
        for s in stats:
            first.setdefault(s.raw, s)
        stats = list(first.values())
    settled = held.rest()
    indexed = _Indexed(settled, known)
    aliases = _other_names(stats, same, indexed) if linked else []
    other = {id(stats[i]) for i in aliases}
    entries = [s for s in stats if id(s) not in other] if other else stats
    report.same_file += len(aliases)  # other names of files counted once
    # RAW+JPEG pairs and Live Photos are one item each: the companions are not tagged.
    companions: dict[Path, list[Companion]] = {}
    if mixed:  # in walk order, as the items are
        companions = pair(
            (decode_path(s.raw), s.kind)
            for listing in mixed
            for s in listing.files
            if id(s) not in other
        )
    companion_raws = {encode_path(c.path) for cs in companions.values() for c in cs}
    for cs in companions.values():
        for c in cs:
            report.files.companions[c.role.value] = report.files.companions.get(c.role.value, 0) + 1
    # Tagged alone before their partner appeared: the partner stands for them now.
    became_companions = sorted(
        raw for raw in companion_raws if raw in indexed or raw in known_failures
    )
    # Of the rest, those settled too (the photos of folders with RAW files, of runs with a
    # new photo, ...) are counted here; everything else is looked at below, with KnownFile
    # rows and Paths.
    settled_get = settled.get
    rest: list[FileStat] = []
    for s in entries:
        st = s[1]
        if settled_get(s[0]) == (st.st_size, st.st_mtime_ns) and s[0] not in companion_raws:
            report.unchanged += 1
        else:
            rest.append(s)
    report.found += report.unchanged + len(rest) - len(companion_raws)
    check_ids = []
    for s in rest:
        k = known.get(s.raw)
        if k and (k.size, k.mtime_ns) == (s.size, s.mtime_ns) and k.complete_for != digest:
            check_ids.append(k.id)
    complete = index.complete_ids(fps, backbone_fps, ids=check_ids) if check_ids else set()
    # Photos whose stored embeddings are current: a new threshold, top-k or recognizer is
    # applied to them as retag does, without decoding (issue 14).
    embedded = index.complete_ids(face_fp, backbone_fps, ids=check_ids) if check_ids else set()
    if complete:
        with index.transaction():
            index.mark_complete(complete, digest)
    for s in rest:
        raw = s.raw
        if raw in companion_raws:
            continue
        k = known.get(raw)
        if k and k.offline:
            back_online.append(raw)
        as_indexed = k is not None and (k.size, k.mtime_ns) == (s.size, s.mtime_ns)
        if k and as_indexed and (k.complete_for == digest or k.id in complete):
            report.unchanged += 1
            continue
        if k and as_indexed and k.id in embedded:
            rescore.append((k.id, decode_path(raw)))
            continue
        kf = known_failures.get(raw)
        if kf and (kf.size, kf.mtime_ns) == (s.size, s.mtime_ns) and not _readable_again(raw, kf):
            failure = Failed(decode_path(raw), kf.reason, known=True)
            report.failures.append(failure)
            yield failure
            continue
        todo.append(s.entry())
    if walk_failures:
        with index.transaction():
            for problem, st in walk_failures:
                index.record_failure(problem.path, st.st_size, st.st_mtime_ns, problem.reason)
    if rescore:
        yield from _rescore(index, rescore, tagger, fps, report, digest)
    yield Planned(total=report.found, todo=len(todo), unchanged=report.unchanged)

    # 2. Read what is new or changed; decode only content the index has never seen.
    # content hash -> a photo id with complete results, anywhere in the index (a photo copied
    # in from another folder keeps its results): looked up as each file is read.
    reusable = _Reusable(index, fps, backbone_fps)
    preprocesses = {name: b.manifest.preprocess for name, b in backbones.items()}
    keep = face_step is not None
    side = face_step.decode_side if face_step is not None else 1
    load = make_loader(preprocesses, reusable, options.max_pixels, keep_image=keep, min_side=side)
    # For content that was known when read but whose source changed since (rare): decode.
    decode_anyway = make_loader(
        preprocesses, (), options.max_pixels, keep_image=keep, min_side=side
    )
    workers = options.workers or default_workers()
    if todo and options.engine is config.Engine.LOCAL:
        for b in backbones.values():
            b.load()  # a damaged model is refused before any photo is read
        if face_step is not None:
            face_step.load()
    gpu = (
        todo and options.engine is config.Engine.LOCAL and any(b.on_gpu for b in backbones.values())
    )
    batch_size = options.batch_size or (config.GPU_BATCH_SIZE if gpu else config.DEFAULT_BATCH_SIZE)
    if gpu:
        for b in backbones.values():
            b.pad_to = batch_size  # fixed shapes: cuDNN's algorithm search runs once
    window = 2 * batch_size + workers

    def timed_out(e: FileEntry) -> LoadFailed:
        return LoadFailed(
            e, f"reading took over {options.read_timeout:g} s (stalled storage?); skipped"
        )

    def stale_reuse_decoded(batch: list[Loaded | LoadFailed]) -> list[Loaded | LoadFailed]:
        """Known content whose source photo has changed since it was read: decode it here."""
        out = []
        for loaded in batch:
            if isinstance(loaded, Loaded) and loaded.inputs is None:
                source = reusable.get(loaded.hash)
                if source is None or index.hash_of(source) != loaded.hash:
                    out.append(decode_anyway(loaded.entry))
        return out

    def record(
        batch: list[Loaded | LoadFailed], outputs: dict[str, BackboneOutput] | None = None
    ) -> Iterator[ScanEvent]:
        return _process_batch(
            batch,
            index,
            tagger,
            fps,
            backbone_fps,
            options,
            reusable,
            report,
            outputs,
            face_step,
            digest,
        )

    if options.engine is config.Engine.RAY and todo:
        from .distributed import ray_batches

        for batch, outputs in ray_batches(todo, backbones, reusable.all(), options, batch_size):
            redo = stale_reuse_decoded(batch)
            if redo:  # decoded here, inferred here; the rest as computed on the cluster
                stale = {r.entry for r in redo}
                batch = [
                    x
                    for x in batch
                    if not (isinstance(x, Loaded) and x.inputs is None and x.entry in stale)
                ]
                yield from record(redo)
            for x in [*redo, *batch]:
                yield Read(x.entry.path)
            yield from record(batch, outputs)
        todo = []
    stream = ordered_map(
        load,
        read_ahead(todo),
        workers=workers,
        window=window,
        timeout=options.read_timeout,
        on_timeout=timed_out,
    )
    for step in _with_reads(stream, batch_size):
        if isinstance(step, Read):
            yield step
            continue
        fixed = {r.entry: r for r in stale_reuse_decoded(step)}
        yield from record([fixed.get(x.entry, x) for x in step])

    # 3. Drop what vanished, but never on the word of a folder that is missing or empty
    # now: an unmounted disk, or a NAS share mounted inside the library and offline for a
    # night, looks exactly like a folder whose photos were all deleted. Their photos are
    # kept, marked offline, with their results, corrections, albums and what phototag wrote
    # into them; when the folder is back they are unchanged and decoded again by no one.
    # A photo that vanished from a folder where others are still found was deleted.
    # The runs found as settled took their own records: what vanished is among the rest.
    seen = {s.raw for s in stats}
    seen.update(problems)
    vanished = sorted((settled.keys() | known.keys() | known_failures.keys()) - seen)
    if vanished:  # then every path walked: which folders still have files
        for records in same:
            seen.update(record_paths(records))
    seen_dirs = _folders_with_files(seen) if vanished else set()
    gone: list[bytes] = []
    offline: list[bytes] = []
    excluded: set[bytes] = set()
    encoded_roots = [encode_path(r) for r in roots]
    for raw in vanished:
        if excludes and excludes.excluded(os.fsdecode(raw)):
            excluded.add(raw)  # left out of scans now, not deleted: 'phototag forget' drops it
            continue
        if not any(_under(raw, r) for r in encoded_roots):
            continue
        (gone if os.path.dirname(raw) in seen_dirs else offline).append(raw)
    for r, rb in zip(roots, encoded_roots, strict=True):
        # Whether any photo was found under r: at once for a root with photos, a pass over
        # what was found for one without (then the index is asked whether it has some there).
        found_raws = chain(
            (records[1 : records.index(b"\0", 1)] for records in same),  # each run's first
            (s.raw for s in entries if s.raw not in companion_raws),
        )
        if not any(_under(raw, rb) for raw in found_raws) and any(
            _under(k, rb) for k in chain(settled, known) if k not in excluded
        ):
            report.warnings.append(
                f"{r} has no photos now but the index has photos there: not dropping them "
                "(an unmounted disk?). Run 'phototag forget' to drop them."
            )
    with index.transaction():
        if gone:
            report.removed = index.remove(gone)
        # Photos that moved meanwhile (found at a new path this scan) are not offline.
        marked = index.mark_offline(offline)
        index.mark_online(back_online)
    report.offline = len(marked)
    report.excluded = sum(1 for raw in excluded if raw in indexed)
    missing_folders: dict[bytes, int] = {}
    for raw in marked:
        top = _top_missing(raw, seen_dirs, roots)
        missing_folders[top] = missing_folders.get(top, 0) + 1
    for folder, n in sorted(missing_folders.items()):
        if any(folder == encode_path(r) for r in roots):
            continue  # said above
        report.warnings.append(
            f"{os.fsdecode(folder)} is missing or empty: its {n} photos are kept as offline "
            "(an offline share?). Run 'phototag forget' to drop them."
        )
    indexed_aliases = sorted({raw for i in aliases if (raw := stats[i].raw) in indexed})
    if indexed_aliases:  # indexed as separate photos by an older phototag: one row is enough
        with index.transaction():
            index.remove(indexed_aliases)
    with index.transaction():
        if became_companions:
            index.remove(became_companions)
        _record_companions(index, companions, entries, same, roots)
    if face_step is not None:  # also faces left ungrouped by a run killed while grouping
        report.new_people = face_step.finish(index).new_people

    report.providers = sorted({p for b in backbones.values() if b.loaded for p in b.providers})
    if face_step is not None and face_step.analyzer.providers:
        report.providers = sorted({*report.providers, *face_step.analyzer.providers})
    report.seconds = time.perf_counter() - started
    yield Finished(report)


def _folders_with_files(paths: set[bytes]) -> set[bytes]:
    """Every folder that holds (at any depth) one of ``paths``."""
    out: set[bytes] = set()
    for raw in paths:
        d = os.path.dirname(raw)
        while d not in out:
            out.add(d)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    return out


def _top_missing(raw: bytes, seen_dirs: set[bytes], roots: Sequence[Path]) -> bytes:
    """The highest folder above ``raw`` (within its scan root) where nothing was found."""
    d = os.path.dirname(raw)
    rootset = {encode_path(r) for r in roots}
    while d not in rootset and os.path.dirname(d) not in seen_dirs:
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return d


def _rescore(
    index: Index,
    photos: list[tuple[int, Path]],
    tagger: Tagger,
    fps: dict[str, str],
    report: ScanReport,
    digest: str,
    chunk: int = 1024,
) -> Iterator[ScanEvent]:
    """Apply the recognizers to the stored embeddings of ``photos`` (unchanged files whose
    results were made with another threshold, top-k or recognizer): no decoding, one
    transaction per chunk, as :func:`phototag.tagging.retag.retag` does for the whole index."""
    for start in range(0, len(photos), chunk):
        part = photos[start : start + chunk]
        ids = [pid for pid, _ in part]
        recognizers, backbones = tagger.recognizers, tagger.backbones
        per_recognizer: dict[str, list[list[Candidate]]] = {}
        for name, backbone in backbones.items():
            vecs = index.vectors_of(ids, name)
            boxes = (
                index.stored_detections(ids, name, backbone.labels)
                if backbone.manifest.detections_output
                else None
            )
            per_recognizer.update(tagger.rescore(name, vecs, boxes))
        events: list[ScanEvent] = []
        with index.transaction():
            for row, (pid, path) in enumerate(part):
                tags = {r.name: per_recognizer[r.name][row] for r in recognizers}
                for r in recognizers:
                    index.set_results(pid, r.name, fps[r.name], tags[r.name])
                index.mark_complete([pid], digest)  # after the writes that cleared it
                events.append(Tagged(path, tags, reused=True))
        report.rescored += len(part)
        yield from events


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _with_reads(
    stream: Iterator[Loaded | LoadFailed], size: int
) -> Iterator[Read | list[Loaded | LoadFailed]]:
    """Batches of ``size`` from ``stream``, with a :class:`Read` as each item arrives, so
    progress moves while the first batch is still being read (issue 14)."""
    batch: list[Loaded | LoadFailed] = []
    for item in stream:
        yield Read(item.entry.path)
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _record_companions(
    index: Index,
    companions: dict[Path, list[Companion]],
    entries: Sequence[FileStat],
    same: Sequence[bytes],
    roots: Sequence[Path],
) -> None:
    """Bring the index's companions of the walked items (``entries`` and the photos of the
    runs of records ``same``) in line with what the walk found (items outside this scan's
    folders keep theirs)."""
    wanted: dict[int, list[tuple[Path, str]]] = {}
    ids = index.photo_ids([encode_path(item) for item in companions]) if companions else {}
    for item, cs in companions.items():
        pid = ids.get(encode_path(item))
        if pid is not None:  # an item that failed to decode has no row: nothing to attach
            wanted[pid] = [(c.path, c.role.value) for c in cs]
    current = index.companions_by_photo(roots)
    walked: set[bytes] | None = None  # made only when a photo may have lost its companions
    for pid in set(current) | set(wanted):
        if pid not in wanted:
            path = index.path_of(pid)
            if walked is None:
                walked = {s.raw for s in entries}.union(*map(record_paths, same))
            if path is None or encode_path(path) not in walked:
                continue
        new = wanted.get(pid, [])
        if sorted(current.get(pid, [])) != sorted(new):
            index.set_companions(pid, new)


class _Reusable:
    """content hash -> a photo with complete results (a file copied or moved in keeps its
    results, nothing is decoded), looked up in the index when a read file's hash is known:
    the loader's threads ask it (the connection is shared, as SQLite allows), and what was
    found, or tagged since, is remembered. Never a pass over every photo of the index."""

    def __init__(self, index: Index, fps: Mapping[str, str], backbone_fps: Mapping[str, str]):
        self._index, self._fps, self._backbone_fps = index, fps, backbone_fps
        self._found: dict[str, int | None] = {}

    def get(self, content_hash: str) -> int | None:
        if content_hash not in self._found:
            self._found[content_hash] = self._index.complete_with_hash(
                content_hash, self._fps, self._backbone_fps
            )
        return self._found[content_hash]

    def __contains__(self, content_hash: object) -> bool:
        return isinstance(content_hash, str) and self.get(content_hash) is not None

    def __getitem__(self, content_hash: str) -> int:
        pid = self.get(content_hash)
        if pid is None:
            raise KeyError(content_hash)
        return pid

    def __setitem__(self, content_hash: str, photo_id: int) -> None:
        self._found[content_hash] = photo_id

    def all(self) -> set[str]:
        """Every hash with complete results (for the Ray engine, whose workers cannot ask):
        a pass over the index's photos."""
        done = self._index.hashes_of(self._index.complete_ids(self._fps, self._backbone_fps))
        return set(done) | {h for h, pid in self._found.items() if pid is not None}


class _IndexReading(threading.Thread):
    """What the index holds under the scan's roots, read while the walk runs: the settled
    photos' records (:meth:`~phototag.index.photos.PhotoTables.settled_records`, one SQLite
    step per root during which the GIL is free) and the other photos' rows. The walk does
    not use the index meanwhile."""

    def __init__(self, index: Index, roots: Sequence[Path], digest: str, records: bool) -> None:
        super().__init__(name="phototag-index-read", daemon=True)
        self.index, self.roots, self.digest, self.records = index, roots, digest, records
        self._result: tuple[bytes, dict[bytes, KnownFile]] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            index, roots = self.index, self.roots
            if self.records:
                records, others = index.settled_records(_outermost(roots), self.digest)
                known = index.known_files(roots, unsettled_for=self.digest) if others else {}
            else:  # every photo as a row, settled or not
                records, known = b"", index.known_files(roots)
            self._result = (records, known)
        except BaseException as e:  # raised again in the scan's thread
            self._error = e

    def result(self) -> tuple[bytes, dict[bytes, KnownFile]]:
        self.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _outermost(roots: Sequence[Path]) -> list[Path]:
    """The folders of ``roots`` that are not inside (or the same as) one before or another."""
    folders = [r for r in roots if os.path.isdir(r)]
    out = []
    for i, r in enumerate(folders):
        raw = encode_path(r)
        if not any(
            (o == r and j < i) or (o != r and _under(raw, encode_path(o)))
            for j, o in enumerate(folders)
        ):
            out.append(r)
    return out


def _restat(paths: Sequence[bytes]) -> list[FileStat]:
    """Plain photos (no symlinks, one hard link) listed in full: stat'ed again, those that
    vanished since left out."""
    out = []
    for raw in paths:
        try:
            st = os.stat(raw)
        except OSError:
            continue
        out.append(FileStat(raw, st, False, FileKind.PHOTO))
    return out


class _Indexed:
    """Whether the index holds a path under the scan's roots: settled or not."""

    def __init__(self, settled: Mapping[bytes, object], known: Mapping[bytes, object]) -> None:
        self.settled, self.known = settled, known

    def __contains__(self, raw: object) -> bool:
        return raw in self.settled or raw in self.known


def _other_names(walked: Sequence[FileStat], same: Sequence[bytes], indexed: _Indexed) -> list[int]:
    """Names that lead to a file another walked name leads to (hard links, symlinks), as
    positions in ``walked``.

    One physical file (st_dev, st_ino) is one photo: its name that is not a symlink wins,
    then one the index already holds, then the first walked. The others are returned.
    The photos of the runs of records ``same`` (found as settled, listed by path only) are
    each the only name of a file that is no symlink: one of them wins over the symlinks that
    lead to it, found by stat'ing them again (only when a symlink's file is not in ``walked``).
    """
    groups: dict[tuple[int, int], list[tuple[int, FileStat]]] = {}
    for i, e in enumerate(walked):
        if e.stat.st_ino:
            groups.setdefault((e.stat.st_dev, e.stat.st_ino), []).append((i, e))
    only_links = {key for key, members in groups.items() if all(e.is_link for _, e in members)}
    named: set[tuple[int, int]] = set()  # files of symlinks that are found in ``same`` too
    if only_links and same:
        for records in same:
            for raw in record_paths(records):
                try:
                    st = os.stat(raw)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in only_links:
                    named.add((st.st_dev, st.st_ino))
    out: list[int] = []
    for key, members in groups.items():
        if key in named:  # every one a symlink to a photo found under its own name
            out += [i for i, _ in members]
            continue
        if len(members) < 2:
            continue
        members.sort(key=lambda m: (m[1].is_link, m[1].raw not in indexed, m[0]))
        out += [i for i, _ in members[1:]]
    return sorted(out)


def _under(raw: bytes, root: bytes) -> bool:
    """Whether ``raw`` is ``root`` or below it (both encoded)."""
    return raw == root or raw.startswith(root.rstrip(b"/") + b"/")


def _process_batch(
    batch: list[Loaded | LoadFailed],
    index: Index,
    tagger: Tagger,
    fps: dict[str, str],
    backbone_fps: dict[str, str],
    options: ScanOptions,
    reusable: _Reusable,
    report: ScanReport,
    outputs: dict[str, BackboneOutput] | None = None,
    face_step: FaceStep | None = None,
    digest: str = "",
) -> Iterator[ScanEvent]:
    """Record a batch: run the backbones on what was decoded (unless ``outputs`` were computed
    elsewhere, as by the Ray engine: rows in the order of the decoded items), then write."""
    to_infer = [x for x in batch if isinstance(x, Loaded) and x.inputs is not None]
    # The one tagging path: the backbones once over the batch (a video's frames aggregated),
    # then every recognizer on its backbone's output (tagger.py), resolved once per scan.
    recognizers, backbones = tagger.recognizers, tagger.backbones
    if outputs is None:
        outputs = run_backbones(backbones, [x.inputs for x in to_infer if x.inputs is not None])
    report.decoded += len(to_infer)
    per_photo = {i: r.tags for i, r in enumerate(tagger.from_outputs(outputs, len(to_infer)))}
    # Faces from the decoded pixels (main's Loaded.image), beside the one tagging path.
    faces = face_step.analyze([x.image for x in to_infer]) if face_step and to_infer else []
    for i, found in enumerate(faces):
        per_photo.setdefault(i, {})[face_step.name] = face_step.tags(found)  # type: ignore[union-attr]

    events: list[ScanEvent] = []
    with index.transaction():
        infer_pos = 0
        for item in batch:
            if isinstance(item, LoadFailed):
                e = item.entry
                if not item.transient:  # broken content: not read again until the file changes
                    index.record_failure(e.path, e.size, e.mtime_ns, item.reason)
                events.append(Failed(e.path, item.reason))
                continue
            record = PhotoRecord(
                item.entry.path,
                item.size,
                item.mtime_ns,
                item.hash,
                item.width,
                item.height,
                item.taken_at,
                kind=item.kind.value,
                duration=item.duration,
            )
            if item.inputs is None:
                source = reusable[item.hash]
                if _same_file(index.path_of(source), item.entry.path):
                    # Another name of a file already indexed (a hard link or symlink found
                    # by an earlier scan of another folder): one file, one photo.
                    report.same_file += 1
                    report.found -= 1
                    continue
                pid = _reuse(index, source, record)
                index.mark_complete([pid], digest)  # same content as a complete photo
                view = index.photo(item.entry.path)
                report.reused += 1
                events.append(Tagged(item.entry.path, view.tags if view else {}, reused=True))
                continue
            pid = index.upsert_photo(record)
            tags = per_photo.get(infer_pos, {})
            for r in recognizers:
                index.set_results(pid, r.name, fps[r.name], tags.get(r.name, []))
            for name, out in outputs.items():
                # For a detector the embedding row is empty: it records that the backbone ran.
                index.set_embedding(pid, name, backbone_fps[name], out.embeddings[infer_pos])
                if out.detections is not None:
                    index.set_detections(
                        pid, name, out.detections[infer_pos], backbones[name].labels
                    )
            if face_step is not None:
                face_step.store(index, pid, faces[infer_pos], item.entry.path)
                report.faces += len(faces[infer_pos])
            index.mark_complete([pid], digest)  # after the writes, whose triggers clear it
            infer_pos += 1
            reusable[item.hash] = pid
            report.tagged += 1
            events.append(Tagged(item.entry.path, tags, reused=False))
    for ev in events:
        if isinstance(ev, Failed):
            report.failures.append(ev)
    yield from events


def _readable_again(raw: bytes, failure: KnownFailure) -> bool:
    """Whether a file that could not be opened may be read now: a ``chmod`` or ``chown``
    changes no size or mtime, so one access check per such file (they are few)."""
    return failure.reason == UNREADABLE_REASON and os.access(raw, os.R_OK)


def _alias_of(indexed: Path, path: Path) -> bool:
    """Whether ``indexed`` names ``path`` through symlinked folders (``path`` is canonical)."""
    return indexed != path and canonical_path(indexed) == path


def _same_file(a: Path | None, b: Path) -> bool:
    """Whether ``a`` is another name (a hard link, a symlink in the library) of the file ``b``,
    to be kept as the photo's one row; an alias of ``b``'s own path is not (:func:`_alias_of`)."""
    try:
        return a is not None and a != b and not _alias_of(a, b) and os.path.samefile(a, b)
    except OSError:
        return False


def _reuse(index: Index, source: int, record: PhotoRecord) -> int:
    """Same content as photo ``source``: move it (if its old path is gone) or copy its results."""
    old_path = index.path_of(source)
    # Nothing was decoded: the content's size and capture time are the original's.
    src = index.photo(old_path) if old_path is not None else None
    if src is not None:
        record = replace(record, width=record.width or src.width, height=record.height or src.height,
                         taken_at=record.taken_at or src.taken_at)  # fmt: skip
    if old_path is None or old_path == record.path or not os.path.lexists(old_path):
        index.move_photo(source, record)
        return source
    if _alias_of(old_path, record.path):
        # Indexed under another name of this very path (through a symlink to its folder, by
        # a scan before names were made canonical): the row takes the canonical name.
        index.move_photo(source, record)
        return source
    pid = index.upsert_photo(record)
    index.copy_results(source, pid)
    copy_faces(index, source, pid)
    return pid


def _face_step(
    index: Index, options: ScanOptions, catalog: Catalog, report: ScanReport
) -> FaceStep | None:
    """The face step: in a default scan (no recognizers named) unless 'people forget' turned
    faces off for this index; with recognizers named, only when asked for (--faces)."""
    default = not options.recognizers and not faces_off(index)
    wanted = options.faces if options.faces is not None else default
    if not wanted:
        return None
    if options.faces and faces_off(index):  # asked for again after 'people forget'
        with index.transaction():
            set_faces_off(index, False)
    if options.engine is not config.Engine.LOCAL:
        report.warnings.append("faces are found by the local engine only, not by the Ray engine")
        return None
    return FaceStep(catalog, options.device)
