"""Backbones: an image encoder that turns a batch of preprocessed photos into outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import ModelError
from .manifest import BackboneManifest, verify_files
from .session import Device, Session, open_session


@dataclass(frozen=True, slots=True)
class BackboneOutput:
    """Per batch: class probabilities (classifiers), embeddings, detections (detectors)."""

    probs: np.ndarray | None  # (N, classes) float32, softmax of the logits
    embeddings: np.ndarray  # (N, dim) float32; (N, 0) for a detector
    # (N, K, 6): x1, y1, x2, y2 as fractions of the photo's width and height, score, class
    detections: np.ndarray | None = None


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass
class Backbone:
    """A manifest plus a lazily opened session. ``predict`` loads on first use."""

    manifest: BackboneManifest
    device: Device = Device.AUTO
    threads: int | None = None
    verify: bool = True
    fp16_on_gpu: bool = True  # run the checked float16 variant when a GPU provider is chosen
    pad_to: int | None = None  # pad smaller batches to this size (fixed shapes on GPUs)
    _session: Session | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    def load(self) -> Session:
        if self._session is None:
            if self.verify:
                verify_files(self.manifest, "image")
            from .fp16 import fp16_variant

            # The float16 variant is made for classifiers (its check runs batches of photos).
            wanted = self.fp16_on_gpu and self.manifest.kind == "classifier"
            gpu_path = (lambda: fp16_variant(self.manifest)) if wanted else None
            session = open_session(
                self.manifest.model_path, self.device, self.threads, gpu_path=gpu_path
            )
            m = self.manifest
            missing = {m.input_name} - set(session.input_names())
            missing |= {
                o for o in (m.logits_output, m.embedding_output, m.detections_output) if o
            } - set(session.output_names())
            if missing:
                raise ModelError(
                    f"model {m.model_path} lacks the inputs/outputs its manifest names: "
                    f"{', '.join(sorted(missing))}"
                )
            self._session = session
        return self._session

    def head(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The classifier's last layer (weight, bias), if the manifest ships it."""
        m = self.manifest
        if not m.head_file:
            return None
        try:
            with np.load(m.folder / m.head_file, allow_pickle=False) as npz:
                return np.asarray(npz["weight"], np.float32), np.asarray(npz["bias"], np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(
                f"cannot read the classifier head {m.folder / m.head_file}: {e}"
            ) from None

    def from_embeddings(self, embeddings: np.ndarray) -> BackboneOutput:
        """What :meth:`predict` would give, from stored embeddings: no image, no model run."""
        e = np.asarray(embeddings, dtype=np.float32)
        head = self._head
        probs = softmax(e @ head[0].T + head[1]) if head is not None else None
        return BackboneOutput(probs=probs, embeddings=e)

    @cached_property
    def _head(self) -> tuple[np.ndarray, np.ndarray] | None:
        # Read once: every batch of a scan now scores its embeddings with it (tagger.as_stored).
        return self.head()

    @cached_property
    def labels(self) -> list[str]:
        return self.manifest.labels() if self.manifest.labels_file else []

    @property
    def on_gpu(self) -> bool:
        from .session import on_gpu

        return on_gpu(self.load().providers)

    @property
    def loaded(self) -> bool:
        """Whether a session was opened (a rescan with nothing to do opens none)."""
        return self._session is not None

    @property
    def providers(self) -> list[str]:
        return self.load().providers

    def predict(self, batch: np.ndarray) -> BackboneOutput:
        """Run a (N, 3, H, W) float32 batch."""
        session = self.load()
        m = self.manifest
        n = len(batch)
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.pad_to and n < self.pad_to and not m.detections_output:
            x = np.concatenate([x, np.zeros((self.pad_to - n, *x.shape[1:]), np.float32)])
        if m.detections_output:
            return self._detect(session, x[:n])
        names = [m.embedding_output or "", *([m.logits_output] if m.logits_output else [])]
        if m.max_batch and len(x) > m.max_batch:  # a fixed batch (Immich's exports: 1)
            step = m.max_batch
            runs = [session.run(names, {m.input_name: x[i : i + step]}) for i in range(0, n, step)]
            out = [np.concatenate([r[k] for r in runs])[:n] for k in range(len(names))]
        else:
            out = [o[:n] for o in session.run(names, {m.input_name: x})]
        probs = softmax(out[1]) if m.logits_output else None
        return BackboneOutput(probs=probs, embeddings=out[0])

    def _detect(self, session: Session, x: np.ndarray) -> BackboneOutput:
        """A detector: photo by photo when its graph has a fixed batch of one; boxes made relative."""
        m = self.manifest
        assert m.detections_output is not None
        step = m.max_batch or len(x)
        parts = [
            session.run([m.detections_output], {m.input_name: x[i : i + step]})[0]
            for i in range(0, len(x), step)
        ]
        det = np.concatenate(parts).astype(np.float32)
        det[..., :4] /= float(m.preprocess.crop)  # 512-pixel units -> fractions of the photo
        return BackboneOutput(
            probs=None, embeddings=np.zeros((len(x), 0), np.float32), detections=det
        )
