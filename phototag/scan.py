"""A scan: walk the folders, tag what is new or changed, and keep the index in step.

:func:`scan` is a generator of events (:class:`Tagged`, :class:`Failed`, ...) so that a
caller can show progress or stream JSON while it runs; its last event is
:class:`Finished` with the :class:`ScanReport`. Writes are committed one batch at a
time: a scan killed at any moment loses at most the batch in flight, and the next scan
picks up where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .index.store import Index, PhotoRecord, encode_path
from .models.backbones import BackboneOutput
from .models.catalog import Catalog
from .models.recognizers import Candidate
from .models.session import Device
from .pipeline import (
    Loaded,
    LoadFailed,
    batched,
    default_workers,
    make_loader,
    ordered_map,
    read_ahead,
)
from .tagger import Tagger, fingerprint
from .walk import FileEntry, WalkProblem, walk

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
class Failed:
    path: Path
    reason: str
    known: bool = False  # failed before and unchanged since: not read again


@dataclass
class ScanReport:
    found: int = 0
    unchanged: int = 0
    tagged: int = 0  # by inference
    reused: int = 0  # moved, renamed, copied or touched files: results kept, nothing decoded
    removed: int = 0  # vanished files dropped from the index
    same_file: int = 0  # other names (hard links, symlinks) of files counted once
    decoded: int = 0
    failures: list[Failed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)

    def as_json(self) -> dict[str, object]:
        return {
            "found": self.found,
            "unchanged": self.unchanged,
            "tagged": self.tagged,
            "reused": self.reused,
            "removed": self.removed,
            "same_file": self.same_file,
            "decoded": self.decoded,
            "failed": self.failed,
            "warnings": self.warnings,
            "providers": self.providers,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class Finished:
    report: ScanReport


ScanEvent = Planned | Tagged | Failed | Finished


def scan(
    roots: Sequence[Path],
    index: Index,
    options: ScanOptions = ScanOptions(),
    catalog: Catalog | None = None,
) -> Iterator[ScanEvent]:
    """Tag every photo under ``roots`` that the index does not already hold as asked."""
    started = time.perf_counter()
    tagger = Tagger.resolve(
        options.recognizers,
        catalog=catalog,
        zero_shot=options.backbone,
        threshold=options.threshold,
        top_k=options.top_k,
        device=options.device,
    )
    backbones = tagger.backbones
    backbone_fps = tagger.backbone_fingerprints
    fps = tagger.fingerprints
    digest = tagger.digest
    report = ScanReport()

    # 1. Walk, and sort what we find against what the index knows.
    roots = [Path(os.path.abspath(r)) for r in roots]
    # Only what lies under the roots: a rescan of one folder reads that folder's rows.
    known = index.known_files(roots)
    known_failures = index.known_failures(roots)
    todo: list[FileEntry] = []
    # Unchanged on disk but not marked complete for these models: checked after the walk,
    # all at once (the first rescan after an upgrade or a change of models).
    to_check: list[tuple[FileEntry, int]] = []
    seen: set[bytes] = set()
    per_root_found = dict.fromkeys(roots, 0)
    walked = list(walk(roots, follow_symlinks=options.follow_symlinks))
    aliases = _other_names(walked, known)
    for item in walked:
        if isinstance(item, FileEntry) and item in aliases:
            seen.add(encode_path(item.path))  # another name of a file counted once
            report.same_file += 1
            continue
        if isinstance(item, WalkProblem):
            failure = Failed(item.path, item.reason)
            report.failures.append(failure)
            seen.add(encode_path(item.path))  # a path we could not stat is not "vanished"
            yield failure
            continue
        raw = encode_path(item.path)
        seen.add(raw)
        report.found += 1
        if len(roots) == 1:
            per_root_found[roots[0]] += 1  # the walk yields only what lies under its roots
        else:
            for r in roots:
                if _under(raw, r):
                    per_root_found[r] += 1
        k = known.get(raw)
        if k and (k.size, k.mtime_ns) == (item.size, item.mtime_ns):
            if k.complete_for == digest:
                report.unchanged += 1
            else:
                to_check.append((item, k.id))
                todo.append(item)
            continue
        kf = known_failures.get(raw)
        if kf and (kf.size, kf.mtime_ns) == (item.size, item.mtime_ns):
            failure = Failed(item.path, kf.reason, known=True)
            report.failures.append(failure)
            yield failure
            continue
        todo.append(item)
    if to_check:
        complete = index.complete_ids(fps, backbone_fps, ids=[pid for _, pid in to_check])
        if complete:
            with index.transaction():
                index.mark_complete(complete, digest)
            done = {e for e, pid in to_check if pid in complete}
            report.unchanged += len(done)
            todo = [e for e in todo if e not in done]
    yield Planned(total=report.found, todo=len(todo), unchanged=report.unchanged)

    # 2. Read what is new or changed; decode only content the index has never seen.
    # content hash -> a photo id with complete results, anywhere in the index (a photo copied
    # in from another folder keeps its results); only read when there is something to do.
    reusable = index.hashes_of(index.complete_ids(fps, backbone_fps)) if todo else {}
    preprocesses = {name: b.manifest.preprocess for name, b in backbones.items()}
    load = make_loader(preprocesses, reusable.keys(), options.max_pixels)
    # For content that was known when read but whose source changed since (rare): decode.
    decode_anyway = make_loader(preprocesses, (), options.max_pixels)
    workers = options.workers or default_workers()
    if todo and options.engine is config.Engine.LOCAL:
        tagger.load()  # a damaged model is refused before any photo is read
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
        return _process_batch(batch, index, tagger, reusable, report, outputs)

    if options.engine is config.Engine.RAY and todo:
        from .distributed import ray_batches

        for batch, outputs in ray_batches(todo, backbones, set(reusable), options, batch_size):
            redo = stale_reuse_decoded(batch)
            if redo:  # decoded here, inferred here; the rest as computed on the cluster
                stale = {r.entry for r in redo}
                batch = [
                    x
                    for x in batch
                    if not (isinstance(x, Loaded) and x.inputs is None and x.entry in stale)
                ]
                yield from record(redo)
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
    for batch in batched(stream, batch_size):
        fixed = {r.entry: r for r in stale_reuse_decoded(batch)}
        yield from record([fixed.get(x.entry, x) for x in batch])

    # 3. Drop what vanished, but never on the word of an empty root: an unmounted disk
    # looks exactly like a library whose photos were all deleted.
    gone = []
    for raw in {**known, **known_failures}:
        if raw in seen:
            continue
        root = next((r for r in roots if _under(raw, r)), None)
        if root is None:
            continue
        if per_root_found[root] == 0:
            continue
        gone.append(raw)
    empty_roots = [
        r for r, n in per_root_found.items() if n == 0 and any(_under(k, r) for k in known)
    ]
    for r in empty_roots:
        report.warnings.append(
            f"{r} has no photos now but the index has photos there: not dropping them "
            "(an unmounted disk?). Run 'phototag forget' to drop them."
        )
    if gone:
        with index.transaction():
            report.removed = index.remove(gone)
    indexed_aliases = [raw for e in aliases if (raw := encode_path(e.path)) in known]
    if indexed_aliases:  # indexed as separate photos by an older phototag: one row is enough
        with index.transaction():
            index.remove(indexed_aliases)

    report.providers = sorted({p for b in backbones.values() if b.loaded for p in b.providers})
    report.seconds = time.perf_counter() - started
    yield Finished(report)


def _other_names(
    walked: Sequence[FileEntry | WalkProblem], known: Mapping[bytes, object]
) -> set[FileEntry]:
    """Names that lead to a file another walked name leads to (hard links, symlinks).

    One physical file (st_dev, st_ino) is one photo: its name that is not a symlink wins,
    then one the index already holds, then the first walked. The others are returned.
    """
    groups: dict[tuple[int, int], list[tuple[int, FileEntry]]] = {}
    for i, e in enumerate(walked):
        if isinstance(e, FileEntry) and e.ino:
            groups.setdefault((e.dev, e.ino), []).append((i, e))
    out: set[FileEntry] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda m: (m[1].is_link, encode_path(m[1].path) not in known, m[0]))
        out.update(e for _, e in members[1:])
    return out


def _under(raw: bytes, root: Path) -> bool:
    r = encode_path(root)
    return raw == r or raw.startswith(r.rstrip(b"/") + b"/")


def _process_batch(
    batch: list[Loaded | LoadFailed],
    index: Index,
    tagger: Tagger,
    reusable: dict[str, int],
    report: ScanReport,
    outputs: dict[str, BackboneOutput] | None = None,
) -> Iterator[ScanEvent]:
    """Record a batch: tag what was decoded (from ``outputs`` when they were computed
    elsewhere, as by the Ray engine: rows in the order of the decoded items), then write."""
    to_infer = [x for x in batch if isinstance(x, Loaded) and x.inputs is not None]
    if outputs is None:
        results = tagger.run([x.inputs for x in to_infer if x.inputs is not None])
    else:
        results = tagger.from_outputs(outputs, len(to_infer))
    report.decoded += len(to_infer)
    fps, backbone_fps, digest = tagger.fingerprints, tagger.backbone_fingerprints, tagger.digest
    labels = {name: b.labels for name, b in tagger.backbones.items()}

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
                index.mark_complete([pid], digest)
                view = index.photo(item.entry.path)
                report.reused += 1
                events.append(Tagged(item.entry.path, view.tags if view else {}, reused=True))
                continue
            pid = index.upsert_photo(record)
            result = results[infer_pos]
            for r in tagger.recognizers:
                index.set_results(pid, r.name, fps[r.name], result.tags.get(r.name, []))
            for name, vector in result.embeddings.items():
                # For a detector the embedding row is empty: it records that the backbone ran.
                index.set_embedding(pid, name, backbone_fps[name], vector)
            for name, boxes in result.detections.items():
                index.set_detections(pid, name, boxes, labels[name])
            index.mark_complete([pid], digest)  # after the writes, whose triggers clear it
            infer_pos += 1
            reusable[item.hash] = pid
            report.tagged += 1
            events.append(Tagged(item.entry.path, result.tags, reused=False))
    for ev in events:
        if isinstance(ev, Failed):
            report.failures.append(ev)
    yield from events


def _same_file(a: Path | None, b: Path) -> bool:
    try:
        return a is not None and a != b and os.path.samefile(a, b)
    except OSError:
        return False


def _reuse(index: Index, source: int, record: PhotoRecord) -> int:
    """Same content as photo ``source``: move it (if its old path is gone) or copy its results."""
    old_path = index.path_of(source)
    if old_path is None or old_path == record.path or not os.path.lexists(old_path):
        index.move_photo(source, record)
        return source
    pid = index.upsert_photo(record)
    index.copy_results(source, pid)
    return pid
