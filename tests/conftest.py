"""Shared fixtures. Test photos are generated here, never committed."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

# Fuzzing: a bounded run in the suite ("ci"); PHOTOTAG_FUZZ=long for the long run
# (scripts/fuzz.sh), which is not part of CI.
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("PHOTOTAG_FUZZ", "ci"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may touch the user's real index or pick up their models."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PHOTOTAG_INDEX", str(home / "index.sqlite"))
    monkeypatch.delenv("PHOTOTAG_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("PHOTOTAG_CACHE", str(home / "cache"))


def sample(name: str) -> np.ndarray:
    """A real photo from scikit-image's bundled samples, as HxWx3 uint8."""
    from skimage import data

    a = getattr(data, name)()
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return sample("coffee")


@pytest.fixture(scope="session")
def cat() -> np.ndarray:
    return sample("chelsea")


def jpeg_bytes(a: np.ndarray, quality: int = 92, exif: Image.Exif | None = None) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(a)
    if exif is not None:
        im.save(buf, "JPEG", quality=quality, exif=exif)
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def make_photo(tmp_path: Path) -> Callable[..., Path]:
    """Write a real photo as ``name`` (format from the extension) and return its path."""

    def make(
        name: str,
        which: str = "coffee",
        *,
        size: tuple[int, int] | None = None,
        taken: str | None = None,
        **save: object,
    ) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(sample(which))
        if size:
            im = im.resize(size, Image.Resampling.BICUBIC)
        fmt = {
            ".jpg": "JPEG",
            ".jpeg": "JPEG",
            ".png": "PNG",
            ".webp": "WEBP",
            ".tif": "TIFF",
            ".tiff": "TIFF",
            ".bmp": "BMP",
            ".gif": "GIF",
            ".heic": "HEIF",
        }[path.suffix.lower()]
        if fmt == "HEIF":
            from pillow_heif import register_heif_opener

            register_heif_opener()
        if taken is not None:  # EXIF DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9003] = taken
            save["exif"] = exif
        im.save(path, fmt, **save)
        return path

    return make


@pytest.fixture
def library(tmp_path: Path, make_photo: Callable[..., Path]) -> Iterator[Path]:
    """A small mixed library: good photos in several formats and a row of bad files."""
    lib = tmp_path / "Pictures"
    make_photo("Pictures/2024/coffee.jpg", "coffee", quality=90)
    make_photo("Pictures/2024/cat.png", "chelsea")
    make_photo("Pictures/phone/cat.heic", "chelsea", quality=90)
    # PNG with alpha: a cat on a fully transparent border.
    rgba = np.dstack([sample("chelsea"), np.full(sample("chelsea").shape[:2], 255, np.uint8)])
    rgba[:20, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(lib / "2024" / "cat alpha.png")
    # Names that break naive code: spaces, unicode, a newline.
    make_photo("Pictures/2024/caf\u00e9 \u2615 & co.jpg", "coffee")
    make_photo("Pictures/odd/new\nline.jpg", "coffee", quality=80)
    bad = lib / "bad"
    write(bad / "empty.jpg", b"")
    write(bad / "text.jpg", b"this is not an image\n")
    good = (lib / "2024" / "coffee.jpg").read_bytes()
    write(bad / "truncated.jpg", good[: len(good) // 3])
    write(bad / "bomb.png", _bomb_png())
    os.symlink("does-not-exist.jpg", bad / "broken.jpg")
    os.symlink(".", bad / "loop")
    (lib / ".hidden").mkdir()
    make_photo("Pictures/.hidden/ignored.jpg", "coffee")
    yield lib


def _bomb_png() -> bytes:
    """A tiny PNG that claims 100000 x 100000 pixels (10 GP): a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# -- zero-shot backbones ---------------------------------------------------------------

TINY_CLIP_CONFIG = Path(__file__).parent / "data" / "phototag-tiny-clip.json"


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder holding ``clip-tiny``: a 2-layer, 64-wide CLIP with random weights
    (seed 0), exported by phototag's own exporter (about 5 s). Rankings are meaningless;
    the mechanics are real."""
    from phototag.models.export_clip import export_clip

    weights = tmp_path_factory.mktemp("tiny-clip-weights")
    export_clip("phototag-tiny-clip", None, weights, config=TINY_CLIP_CONFIG, name="clip-tiny")
    return weights


@pytest.fixture
def with_tiny_clip(tiny_clip: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``clip-tiny`` installed (found through $PHOTOTAG_WEIGHTS); its backbone folder."""
    monkeypatch.setenv("PHOTOTAG_WEIGHTS", str(tiny_clip))
    return tiny_clip / "clip-tiny"


# -- the command line --------------------------------------------------------------------


def invoke(*args: str | Path) -> tuple[int, str, str]:
    """Run ``phototag ARGS`` in-process: (exit code, stdout, stderr); a crash is raised."""
    from typer.testing import CliRunner

    from phototag.cli.app import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


def ndjson(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- a fake at the onnxruntime boundary ----------------------------------------------------


class FakeInferenceSession:
    """Stands in for ``onnxruntime.InferenceSession`` (rclip's FakeInferenceSession): no
    model is run, so fast tests need no inference time.

    It reads the names the backbone's manifest gives (``backbone.toml`` beside the model)
    and answers deterministically from the pixels: the embedding is a fixed random
    projection of the input averaged over 8 x 8 blocks (so similar photos get similar
    embeddings), the logits the shipped classifier head applied to it in float32 (as a real graph does), a
    detector's rows one box per photo. ``runs`` counts the calls, for tests that must see none.
    """

    runs = 0

    def __init__(self, path: str, sess_options: object = None, providers: object = None,
                 provider_options: object = None) -> None:  # fmt: skip
        import tomllib

        folder = Path(path).parent
        while not (folder / "backbone.toml").is_file() and folder != folder.parent:
            folder = folder.parent
        manifest = tomllib.loads((folder / "backbone.toml").read_text(encoding="utf-8"))
        out = manifest.get("outputs", {})
        self.input = str(out.get("input", "image"))
        self.embedding = out.get("embedding")
        self.logits = out.get("logits")
        self.detections = out.get("detections")
        self.dim = int(manifest.get("embedding_dim", 0) or 64)
        # The face models (phototag.faces.analyzer): the detector finds no face (its four
        # BlazeFace outputs, every score logit far below any threshold), so the face check
        # and descriptor are never asked; a fast scan's face step runs and records "no faces".
        self.kind = str(manifest.get("kind", ""))
        if self.kind == "face-check":
            self.dim = 1
        labels = folder / str(out.get("labels", "labels.txt"))
        self.classes = len(labels.read_text().splitlines()) if labels.is_file() else 10
        self._proj: np.ndarray | None = None
        head = folder / str(out.get("head", ""))
        if out.get("head") and head.is_file():  # the shipped last layer: retag agrees with scan
            with np.load(head) as npz:
                self._head = np.asarray(npz["weight"], np.float32).T
                self._bias = np.asarray(npz["bias"], np.float32)
        else:
            rng = np.random.default_rng(0)
            self._head = rng.standard_normal((self.dim, self.classes)).astype(np.float32)
            self._bias = np.zeros(self.classes, np.float32)

    def get_providers(self) -> list[str]:
        return ["CPUExecutionProvider"]

    def get_inputs(self) -> list[object]:
        from types import SimpleNamespace

        return [SimpleNamespace(name=self.input)]

    def get_outputs(self) -> list[object]:
        from types import SimpleNamespace

        if self.kind == "face-detector":
            return [SimpleNamespace(name=n) for n in self._face_outputs()]
        names = [n for n in (self.embedding, self.logits, self.detections) if n]
        return [SimpleNamespace(name=n) for n in names]

    @staticmethod
    def _face_outputs() -> dict[str, tuple[int, int]]:
        return {"Identity:0": (512, 1), "Identity_1:0": (512, 16), "Identity_2:0": (384, 1),
                "Identity_3:0": (384, 16)}  # fmt: skip

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        type(self).runs += 1
        x = np.asarray(feeds[self.input], np.float32)
        n = len(x)
        if self.kind == "face-detector":
            shapes = self._face_outputs()
            return [np.full((n, *shapes[name]), -100.0 if shapes[name][1] == 1 else 0.0,
                            np.float32) for name in outputs]  # fmt: skip
        if x.ndim == 4 and x.shape[-1] == 3:  # NHWC
            x = x.transpose(0, 3, 1, 2)
        c, h, w = x.shape[1:]
        pooled = (
            x[:, :, : h // 8 * 8, : w // 8 * 8].reshape(n, c, h // 8, 8, w // 8, 8).mean((3, 5))
        )
        flat = pooled.reshape(n, -1)
        if self._proj is None or self._proj.shape[0] != flat.shape[1]:
            self._proj = (
                np.random.default_rng(1)
                .standard_normal((flat.shape[1], self.dim))
                .astype(np.float32)
            )
        emb = flat @ self._proj / np.sqrt(flat.shape[1])
        values = {}
        if self.embedding:
            values[self.embedding] = emb
        if self.logits:
            # As a real graph does: from the float32 embedding, not the float16 one the
            # index stores (phototag.tagging.tagger.as_stored makes scan and retag agree).
            values[self.logits] = emb @ self._head + self._bias
        if self.detections:
            det = np.zeros((n, 100, 6), np.float32)
            det[:, 0] = [64, 64, 448, 448, 0.9, 0]  # one person in 512-pixel units
            values[self.detections] = det
        return [values[name] for name in outputs]


@pytest.fixture
def fake_onnx(monkeypatch: pytest.MonkeyPatch) -> type[FakeInferenceSession]:
    """onnxruntime replaced by :class:`FakeInferenceSession` for this test."""
    import onnxruntime

    FakeInferenceSession.runs = 0
    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeInferenceSession)
    return FakeInferenceSession


class RealModelInFastTest(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _real_models_only_in_the_slow_tier(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast tier never runs a real model in this process: a test that opens a real
    onnxruntime session must be marked ``slow`` (the end-to-end tier) or use ``fake_onnx``.
    What runs in subprocesses is marked by hand (whole modules, see their ``pytestmark``)."""
    if "slow" in request.keywords or "fake_onnx" in request.fixturenames:
        return
    import onnxruntime

    def refuse(*args: object, **kwargs: object) -> None:
        raise RealModelInFastTest(
            f"{request.node.nodeid} opens a real model: mark it @pytest.mark.slow or use fake_onnx"
        )

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


def counting_predicts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(backbone, batch size) of every ``Backbone.predict`` from now on."""
    calls: list[tuple[str, int]] = []
    from phototag.models.backbones import Backbone

    real = Backbone.predict

    def predict(self: Backbone, batch: np.ndarray) -> object:
        calls.append((self.name, len(batch)))
        return real(self, batch)

    monkeypatch.setattr(Backbone, "predict", predict)
    return calls
