"""Fuzzing the code that parses untrusted input: it may refuse, with its own error, but
nothing else may escape -- no crash, no other exception, no hang."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from phototag.config import load_settings
from phototag.errors import ConfigError, MetadataError, ModelError
from phototag.metadata.keywords import Field
from phototag.metadata.xmp import Sidecar, _parse
from phototag.models.manifest import load_backbone_manifest
from phototag.models.recognizers import load_recognizer
from phototag.models.zeroshot import load_vocabulary

ROOT = Path(__file__).resolve().parents[1]
BACKBONE = tomllib.loads((ROOT / "weights" / "efficientnet-lite0" / "backbone.toml").read_text())
LABELS = ["tabby", "espresso", "pizza"]

XML_BITS = st.sampled_from([
    "<x:xmpmeta xmlns:x='adobe:ns:meta/'>", "</x:xmpmeta>", "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>",
    "</rdf:RDF>", "<rdf:Description rdf:about=''>", "</rdf:Description>", "<rdf:Description/>",
    "<dc:subject xmlns:dc='http://purl.org/dc/elements/1.1/'>", "</dc:subject>", "<rdf:Bag>", "</rdf:Bag>",
    "<rdf:Seq>", "</rdf:Seq>", "<rdf:li>", "</rdf:li>", "<!-- c -->", "<?xpacket begin=''?>", "&amp;", "&lt;",
    "<!DOCTYPE x [<!ENTITY a 'b'>]>", "&a;", "<![CDATA[x]]>", "text", "\u00e9\u2615", "<lr:hierarchicalSubject "
    "xmlns:lr='http://ns.adobe.com/lightroom/1.0/'>", "</lr:hierarchicalSubject>", " dc:subject='x'", ">", "<",
])  # fmt: skip


@given(st.lists(XML_BITS, max_size=30).map("".join) | st.binary(max_size=400))
def test_sidecar_parsing_refuses_or_parses_and_round_trips(data: str | bytes) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        root = _parse(raw, "fuzz")
    except MetadataError:
        return
    sidecar = Sidecar(root, raw)
    sidecar.fields()
    try:
        sidecar.set_fields({Field.SUBJECT: ["a", "b & c"], Field.TAGSLIST: []})
    except MetadataError:
        return
    again = Sidecar(_parse(sidecar.to_bytes(), "again"), None)
    assert again.fields().get(Field.SUBJECT) == ["a", "b & c"]


toml_values = st.recursive(
    st.none().map(lambda _: "") | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if not isinstance(value, float) or value == value else "0"
    if isinstance(value, str):
        return (
            '"'
            + value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .encode("unicode_escape")
            .decode()
            .replace('\\\\"', '\\"')
            + '"'
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(
                f'"{k}" = {_toml(v)}' for k, v in value.items() if "\\" not in k and '"' not in k
            )
            + "}"
        )
    return '""'


def _write_table(path: Path, table: dict[str, object]) -> None:
    path.write_text(
        "\n".join(f'"{k}" = {_toml(v)}' for k, v in table.items() if '"' not in k and "\\" not in k)
    )


@given(st.dictionaries(st.sampled_from(list(BACKBONE)), toml_values, max_size=6), st.booleans())
def test_backbone_manifests_refuse_with_model_error(
    tmp_path_factory, mutation: dict[str, object], keep: bool
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("m")
    table = {**BACKBONE, **mutation} if keep else mutation
    _write_table(folder / "backbone.toml", table)
    with contextlib.suppress(ModelError):
        load_backbone_manifest(folder)


@given(st.dictionaries(st.sampled_from(["name", "backbone", "kind", "root", "rollup", "root_tag", "tags", "x"]),
                       toml_values, max_size=7))  # fmt: skip
def test_recognizer_manifests_refuse_with_model_error(
    tmp_path_factory, table: dict[str, object]
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("r") / "r.toml"
    _write_table(path, table)
    with contextlib.suppress(ModelError):
        load_recognizer(path, LABELS)


@given(
    st.dictionaries(
        st.sampled_from(["name", "kind", "templates", "background", "groups", "temperature", "rollup", "x"]),
        toml_values, max_size=7,
    ),
    st.dictionaries(st.sampled_from(["t", "t/a", "t/a/b", "u", "t/|"]),
                    st.dictionaries(st.sampled_from(["tags", "templates", "x"]), toml_values, max_size=2),
                    max_size=3),
)  # fmt: skip
def test_vocabularies_refuse_with_model_error(
    tmp_path_factory, table: dict[str, object], groups: dict[str, object]
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("v") / "v.toml"
    _write_table(path, {"name": "t", "kind": "zero-shot", **table, "groups": groups})
    with contextlib.suppress(ModelError):
        load_vocabulary(path)


@given(st.binary(max_size=300) | st.dictionaries(st.sampled_from(["write", "scan", "x"]), toml_values, max_size=3).map(
    lambda d: "\n".join(f"[{k}]\n" + ("\n".join(f'"{kk}" = {_toml(vv)}' for kk, vv in v.items() if '"' not in kk and "\\" not in kk) if isinstance(v, dict) else "") for k, v in d.items())
))  # fmt: skip
def test_the_config_file_refuses_with_config_error(tmp_path_factory, content: bytes | str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("c") / "config.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with contextlib.suppress(ConfigError):
        load_settings(path)


name_parts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=12,
)


@given(st.lists(st.tuples(st.lists(name_parts, min_size=0, max_size=3), name_parts,
                          st.sampled_from(["photo", "text", "empty", "folder"])), max_size=12))  # fmt: skip
def test_training_folder_layouts_are_collected_or_refused(tmp_path_factory, layout) -> None:  # type: ignore[no-untyped-def]
    """Any tree of folders, files and names: collected into (photo, tags) or problems, no crash."""
    import io

    from PIL import Image

    from phototag.training.train import TrainingError, collect_folder

    root = tmp_path_factory.mktemp("layout")
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    for dirs, name, kind in layout:
        if any(p in (".", "..") for p in [*dirs, name]):
            continue
        folder = root.joinpath(*dirs)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{name}.png"
            if kind == "folder":
                target.mkdir(exist_ok=True)
            elif not target.is_dir():
                target.write_bytes(
                    png.getvalue() if kind == "photo" else b"" if kind == "empty" else b"text"
                )
        except OSError:  # a name the file system refuses (too long, ...): not our concern here
            continue
    try:
        paths, labels, _problems = collect_folder(root, "t")
    except TrainingError:
        return
    assert len(paths) == len(labels)
    for p, tags in zip(paths, labels, strict=True):
        assert p.is_file() and tags and all(t.startswith("t/") for t in tags)


# -- the formats' decoders (issue 18): LibRaw and FFmpeg on hostile bytes ------------------


def _dng_bytes() -> bytes:
    import tempfile

    from conftest import sample
    from media_files import make_dng

    with tempfile.TemporaryDirectory() as tmp:
        return make_dng(Path(tmp) / "f.dng", sample("coffee")[:64, :96]).read_bytes()


def _mp4_bytes() -> bytes:
    import tempfile

    from conftest import sample
    from media_files import make_video, pan_frames

    with tempfile.TemporaryDirectory() as tmp:
        return make_video(
            Path(tmp) / "f.mp4", pan_frames(sample("coffee"), 6, (96, 64))
        ).read_bytes()


_DNG: list[bytes] = []
_MP4: list[bytes] = []


def _cut_or_flip(good: bytes, data: st.DataObject) -> bytes:
    """A real file cut short, or with bytes changed, or random bytes."""
    how = data.draw(st.sampled_from(["cut", "flip", "random"]))
    if how == "random":
        return data.draw(st.binary(max_size=2000))
    if how == "cut":
        return good[: data.draw(st.integers(0, len(good)))]
    b = bytearray(good)
    for _ in range(data.draw(st.integers(1, 20))):
        b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
    return bytes(b)


@given(st.data())
def test_raw_decoding_refuses_with_image_error(data: st.DataObject) -> None:
    from phototag.errors import ImageError
    from phototag.media.raw import decode_raw

    if not _DNG:
        _DNG.append(_dng_bytes())
    blob = _cut_or_flip(_DNG[0], data)
    try:
        photo = decode_raw(blob, min_side=32, max_pixels=10**7)
    except ImageError as e:
        assert "\n" not in str(e)
    else:
        assert photo.image.mode == "RGB" and min(photo.image.size) > 0


@given(st.data())
def test_video_decoding_refuses_with_image_error(data: st.DataObject) -> None:
    import tempfile

    from phototag.errors import ImageError
    from phototag.media.video import decode_video

    if not _MP4:
        _MP4.append(_mp4_bytes())
    blob = _cut_or_flip(_MP4[0], data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.mp4"
        path.write_bytes(blob)
        try:
            clip = decode_video(path, min_side=32, max_pixels=10**7)
        except ImageError as e:
            assert "\n" not in str(e)
        else:
            assert clip.frames and all(f.mode == "RGB" for f in clip.frames)
