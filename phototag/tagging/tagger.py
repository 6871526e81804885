"""The one tagging path: recognizers and the backbones they stand on, resolved once.

``scan``, ``classify``, ``retag``, the Ray engine and the HTTP server all go through a
:class:`Tagger`: it resolves the recognizers (and, for zero-shot vocabularies, the backbone they bind to)
from a catalog without changing it, opens each backbone lazily (immich ML's
``InferenceModel``: ``load()`` is idempotent, ``predict()`` loads on first use), runs a
batch through every backbone once and every recognizer on its backbone's output, and
returns per photo its tags, embeddings and boxes (:class:`PhotoResult`). A server's batch,
whose requests each ask for their own recognizers, threshold and top-k, goes through
:func:`tag_each`: the same backbones once, the same :meth:`Tagger.from_outputs`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import config
from ..models.backbones import Backbone, BackboneOutput
from ..models.catalog import Catalog
from ..models.recognizers import Candidate, Recognizer
from ..models.session import Device


def as_stored(embeddings: np.ndarray) -> np.ndarray:
    """(N, dim) embeddings as the index keeps them: rounded to float16 (``<f2``, what
    :meth:`~phototag.index.store.Index.set_embedding` writes), returned as float32.

    Every recognizer sees its backbone's embedding in this form, whether it was just computed
    (scan, classify, serve, the Ray engine) or read back from the index (retag, a rescan's
    rescoring): otherwise the same photo with the same settings gets scores that differ in the
    fourth decimal depending on the command (a fresh tester's "71 changed" after scan, retag).
    Rounding is idempotent, so stored embeddings pass through unchanged.
    """
    out: np.ndarray = np.asarray(embeddings, dtype="<f2").astype(np.float32)
    return out


def fingerprint(recognizer: Recognizer, backbone_fp: str, threshold: float, top_k: int) -> str:
    """What a stored result depends on; a change in any part means tag again."""
    return f"{backbone_fp}:{recognizer.fingerprint}:t{threshold:g}:k{top_k}"


def completeness_digest(fingerprints: Mapping[str, str], backbones: Mapping[str, str]) -> str:
    """One string for "every one of these results and embeddings": what
    :meth:`~phototag.index.store.Index.mark_complete` records on a photo."""
    h = hashlib.sha256()
    for kind, items in (("r", fingerprints), ("b", backbones)):
        for name, fp in sorted(items.items()):
            h.update(f"{kind}\0{name}\0{fp}\n".encode())
    return h.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """What the models say about one photo.

    tags: recognizer name -> candidates, best first. embeddings: backbone name -> (dim,)
    float32 ((0,) for a detector: the row only says it ran). detections: backbone name ->
    (K, 6) float32 boxes (x1, y1, x2, y2 as fractions of the photo, score, class), only
    for detectors.
    """

    tags: dict[str, list[Candidate]]
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    detections: dict[str, np.ndarray] = field(default_factory=dict)


def run_backbones(
    backbones: Mapping[str, Backbone], inputs: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, BackboneOutput]:
    """Each backbone once over the batch: ``inputs[i][name]`` is item i's preprocessed input
    for backbone ``name`` (a photo: CHW or HWC float32, as the manifest says; a video: its
    frames, (F, ...)); one output row per item (a video's frames aggregated, see
    :func:`phototag.media.video.aggregate`)."""
    from ..media.video import aggregate, stack_inputs

    if not inputs:
        return {}
    outputs = {}
    for name, b in backbones.items():
        stacked, counts = stack_inputs([x[name] for x in inputs])
        outputs[name] = aggregate(b.predict(stacked), counts)  # a video: its frames
    return outputs


@dataclass
class Tagger:
    """Recognizers with their backbones and thresholds, resolved once per run."""

    recognizers: list[Recognizer]
    backbones: dict[str, Backbone]
    threshold: float = config.DEFAULT_THRESHOLD
    top_k: int = config.DEFAULT_TOP_K

    @classmethod
    def resolve(
        cls,
        names: Sequence[str] | None = None,
        *,
        catalog: Catalog | None = None,
        zero_shot: str | None = None,
        threshold: float = config.DEFAULT_THRESHOLD,
        top_k: int = config.DEFAULT_TOP_K,
        device: Device = Device.AUTO,
        verify: bool = True,
        every_installed: bool = False,
        embed: Sequence[str] = (),
        reuse: Mapping[str, Backbone] | None = None,
    ) -> Tagger:
        """The recognizers ``names`` (default: the default set; with ``every_installed``,
        every recognizer that can run) and their backbones, unopened.

        ``zero_shot`` picks the backbone vocabularies bind to (naming a classifier turns
        them off); the catalog passed in is left as it was. ``embed`` adds backbones no
        chosen recognizer stands on, for their embeddings alone (a server's similarity
        search). ``reuse`` maps names to backbones to take instead of new ones (a server's,
        shared by all its requests, so that each session is opened once; ``device`` and
        ``verify`` do not apply to them). Raises
        :class:`~phototag.errors.UnknownModelError` for names that are not installed.
        """
        catalog = (catalog or Catalog.discover()).choosing(zero_shot)
        if names:
            recognizers = catalog.resolve(list(names))
        elif every_installed:
            can_bind = catalog.zero_shot_backbone() is not None
            recognizers = [
                catalog.recognizer(n)
                for n in catalog.names()
                if n in catalog.recognizers or can_bind
            ]
        else:
            recognizers = catalog.resolve(None)
        reuse = reuse or {}
        backbones = {
            name: reuse[name]
            if name in reuse
            else Backbone(catalog.backbone(name), device=device, verify=verify)
            for name in dict.fromkeys([*(r.backbone for r in recognizers), *embed])
        }
        return cls(recognizers, backbones, threshold, top_k)

    @property
    def backbone_fingerprints(self) -> dict[str, str]:
        return {name: b.manifest.fingerprint for name, b in self.backbones.items()}

    @property
    def fingerprints(self) -> dict[str, str]:
        """recognizer name -> the fingerprint its stored results carry."""
        bfps = self.backbone_fingerprints
        return {
            r.name: fingerprint(r, bfps[r.backbone], self.threshold, self.top_k)
            for r in self.recognizers
        }

    @property
    def digest(self) -> str:
        return completeness_digest(self.fingerprints, self.backbone_fingerprints)

    def load(self) -> None:
        """Open every backbone's session now (a damaged model is refused before any photo
        is read). Idempotent."""
        for b in self.backbones.values():
            b.load()

    def run(self, inputs: Sequence[Mapping[str, np.ndarray]]) -> list[PhotoResult]:
        """Tag a batch of preprocessed photos (see :func:`run_backbones`)."""
        return self.from_outputs(run_backbones(self.backbones, inputs), len(inputs))

    def from_outputs(self, outputs: Mapping[str, BackboneOutput], n: int) -> list[PhotoResult]:
        """Tag ``n`` photos from backbone outputs computed elsewhere (a Ray actor).

        The recognizers see each output as it will be stored (:meth:`as_stored`), so the
        tags and scores are those :meth:`rescore` gives from the index later.
        """
        if n == 0:
            return []
        outputs = {name: self.as_stored(name, out) for name, out in outputs.items()}
        per_recognizer = {
            r.name: r.candidates(outputs[r.backbone], threshold=self.threshold, top_k=self.top_k)
            for r in self.recognizers
        }
        detectors = {name: out.detections for name, out in outputs.items()}
        return [
            PhotoResult(
                {name: cands[i] for name, cands in per_recognizer.items()},
                {name: out.embeddings[i] for name, out in outputs.items()},
                {name: boxes[i] for name, boxes in detectors.items() if boxes is not None},
            )
            for i in range(n)
        ]

    def as_stored(self, name: str, output: BackboneOutput) -> BackboneOutput:
        """Backbone ``name``'s freshly computed ``output`` as :meth:`rescore` would rebuild it
        from the index: the embeddings rounded to float16 (:func:`as_stored`) and, for a
        classifier that ships its head, the probabilities recomputed by that head from them
        (the session's own logits come from the float32 embedding, and its matrix product
        rounds differently). A detector's output (boxes, an empty embedding) and a classifier
        without a head (which retag cannot score) keep their values; only the embedding is
        rounded, as it will be stored."""
        model = self.backbones.get(name)
        if output.detections is not None or (model and model.manifest.detections_output):
            return output
        embeddings = as_stored(output.embeddings)
        if model is not None and model.manifest.head_file:
            return model.from_embeddings(embeddings)
        return BackboneOutput(output.probs, embeddings, output.detections)

    def rescore(
        self, backbone: str, embeddings: np.ndarray, boxes: np.ndarray | None = None
    ) -> dict[str, list[list[Candidate]]]:
        """The candidates of ``backbone``'s recognizers from stored (N, dim) embeddings (or,
        for a detector, stored (N, K, 6) ``boxes``): no image, no session.
        recognizer name -> per photo, best first."""
        model = self.backbones[backbone]
        if model.manifest.detections_output:
            output = BackboneOutput(
                probs=None, embeddings=np.asarray(embeddings, np.float32), detections=boxes
            )
        else:
            output = model.from_embeddings(as_stored(embeddings))
        return {
            r.name: r.candidates(output, threshold=self.threshold, top_k=self.top_k)
            for r in self.recognizers
            if r.backbone == backbone
        }


def tag_each(batch: Sequence[tuple[Tagger, Mapping[str, np.ndarray]]]) -> list[PhotoResult]:
    """Tag a batch whose photos each come with their own :class:`Tagger` (a server's
    requests: their own recognizers, threshold, top-k and embeddings, on shared backbones).

    ``batch[i]`` is photo i's tagger and its preprocessed input for each of that tagger's
    backbones (as :func:`run_backbones`). Each backbone runs once over every photo whose
    tagger holds it; the photos of taggers with the same recognizers and settings go
    through :meth:`Tagger.from_outputs` together. Result i is photo i's: the tags of its
    tagger's recognizers and the embeddings (and boxes) of its tagger's backbones only.
    Raises ValueError when two taggers hold different :class:`Backbone` objects under one
    name (share one: a backbone is run once per batch, by name).
    """
    backbones: dict[str, Backbone] = {}
    for tagger, _ in batch:
        for name, b in tagger.backbones.items():
            if backbones.setdefault(name, b) is not b:
                raise ValueError(f"the batch's taggers hold two backbones named {name!r}")
    # backbone name -> (photo index -> its row in the output, the output)
    outputs: dict[str, tuple[dict[int, int], BackboneOutput]] = {}
    for name, b in backbones.items():
        rows = [i for i, (tagger, _) in enumerate(batch) if name in tagger.backbones]
        out = run_backbones({name: b}, [batch[i][1] for i in rows])[name]
        outputs[name] = ({i: row for row, i in enumerate(rows)}, out)
    # The same Recognizer objects at the same settings: one from_outputs for the group.
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, (t, _) in enumerate(batch):
        key = (tuple(map(id, t.recognizers)), tuple(t.backbones), t.threshold, t.top_k)
        groups.setdefault(key, []).append(i)
    results: dict[int, PhotoResult] = {}
    for members in groups.values():
        tagger = batch[members[0]][0]
        part = {}
        for name in tagger.backbones:
            where, out = outputs[name]
            part[name] = _take(out, [where[i] for i in members])
        results.update(zip(members, tagger.from_outputs(part, len(members)), strict=True))
    return [results[i] for i in range(len(batch))]


def _take(output: BackboneOutput, rows: Sequence[int]) -> BackboneOutput:
    """The rows ``rows`` of a batch's output, in that order."""
    at = np.asarray(rows, np.intp)
    return BackboneOutput(
        None if output.probs is None else output.probs[at],
        output.embeddings[at],
        None if output.detections is None else output.detections[at],
    )
