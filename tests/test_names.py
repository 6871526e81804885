"""Japanese tag names: every shipped tag has one, and --lang ja (or write.language) writes
keywords, album names and listings in Japanese while the index stays English."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path

import conftest
import pytest
from hypothesis import given
from hypothesis import strategies as st
from metadata_readers import both

from phototag.cli.console import ExitCode
from phototag.config import weights_dirs
from phototag.errors import ConfigError
from phototag.models.zeroshot import load_vocabulary
from phototag.names import tag_names


def _shipped_tag_paths() -> dict[str, list[str]]:
    """Every tag path of every shipped vocabulary and recognizer, by file."""
    weights = Path(__file__).parent.parent / "weights"
    out: dict[str, list[str]] = {}
    for f in sorted((weights / "vocabularies").glob("*.toml")):
        out[f"vocabularies/{f.name}"] = list(load_vocabulary(f).leaves)
    for f in sorted((weights / "recognizers").glob("*.toml")):
        data = tomllib.loads(f.read_text(encoding="utf-8"))
        if data.get("kind") == "people":  # counted person boxes (recognizers.py)
            out[f"recognizers/{f.name}"] = [f"people/{t}" for t in
                                            ("portrait", "person", "couple", "group", "crowd")]  # fmt: skip
        elif data.get("kind") == "labels":  # the backbone's own classes, each a tag
            labels = (weights / data["backbone"] / "labels.txt").read_text().splitlines()
            out[f"recognizers/{f.name}"] = [f"{data['name']}/{label}" for label in labels]
        else:
            out[f"recognizers/{f.name}"] = [t["path"] for t in data["tags"]]
    return out


def _has_japanese(text: str) -> bool:
    return any(
        0x3040 <= ord(c) <= 0x30FF or 0x4E00 <= ord(c) <= 0x9FFF or c in "ー・々" for c in text
    )


def test_every_shipped_tag_has_a_japanese_name() -> None:
    names = tag_names("ja")
    missing = []
    for where, paths in _shipped_tag_paths().items():
        for path in paths:
            for i, part in enumerate(path.split("/")):
                full = "/".join(path.split("/")[: i + 1])
                name = names.names.get(full) or names.names.get(part)
                # Names that are Latin in Japanese too (Tシャツ has a letter, DVD none) pass
                # only with a Japanese character somewhere in the name.
                if name is None or not _has_japanese(name):
                    missing.append(f"{where}: {full}")
    assert not missing, f"{len(missing)} without a Japanese name, e.g. {missing[:10]}"
    for english, japanese in [
        ("scene/event/wedding ceremony", "シーン/行事/結婚式"),
        ("scene/event/field day", "シーン/行事/運動会"),
        ("food/japanese/sushi and sashimi/hand-rolled sushi", "食べ物/和食/寿司・刺身/手巻き寿司"),
        ("food/japanese/rice dishes/curry rice", "食べ物/和食/ご飯もの/カレーライス"),
        ("flower/garden and wild/tulip", "花/草花/チューリップ"),
        ("mushroom/deadly poisonous/destroying angel", "きのこ/猛毒/ドクツルタケ"),
    ]:
        assert names.path(english) == japanese
        assert names.english(japanese) == english


def test_names_files_are_checked_and_unknown_languages_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no tag names for language 'xx'; phototag has: en, ja"):
        tag_names("xx")
    bad = tmp_path / "names"
    bad.mkdir()
    (bad / "ja.toml").write_text('[names]\n"food" = "食べ/物"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="without '/'"):
        tag_names("ja", [tmp_path, *weights_dirs()])
    (bad / "ja.toml").write_text('[names]\n"food" = "フード"\n', encoding="utf-8")
    mine = tag_names("ja", [tmp_path, *weights_dirs()])  # the user's own name wins
    assert mine.path("food/japanese") == "フード/和食"
    assert tag_names("en").path("food/japanese") == "food/japanese"


@pytest.mark.slow  # the real models
def test_lang_ja_writes_japanese_keywords_albums_and_listings(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    """scan --lang ja: the sidecar's keywords are Japanese (read back by exiftool and exiv2),
    the index keeps English; album --tag in Japanese finds the photo and names the album in
    Japanese; tags lists Japanese names."""
    photo = make_photo("lib/coffee.jpg", "coffee")
    code, out, err = conftest.invoke("--lang", "ja", "scan", tmp_path / "lib", "-m", "food",
                                     "--write", "sidecar")  # fmt: skip
    assert code == ExitCode.OK, out + err
    read = both(Path(str(photo) + ".xmp"))
    subject = read["dc:subject"]
    assert "エスプレッソ" in subject, read
    assert "phototag|食べ物|飲み物|エスプレッソ" in read["lr:hierarchicalSubject"]
    assert "phototag/食べ物/飲み物/エスプレッソ" in read["digiKam:TagsList"]
    assert not any(v.isascii() for v in subject if v != "food"), subject
    code, out, _ = conftest.invoke("tags", "--json")
    assert {r["path"] for r in conftest.ndjson(out)} >= {"food/drink/espresso"}  # English index
    code, out, _ = conftest.invoke("--lang", "ja", "tags", "--json")
    espresso = next(r for r in conftest.ndjson(out) if r["path"] == "food/drink/espresso")
    assert (
        espresso["name"] == "エスプレッソ" and espresso["name_path"] == "食べ物/飲み物/エスプレッソ"
    )
    albums = Path(os.environ["XDG_DATA_HOME"])
    code, out, err = conftest.invoke("--lang", "ja", "album", "--tag", "エスプレッソ")
    assert code == ExitCode.OK, out + err
    made = [p for p in albums.rglob("エスプレッソ") if p.is_dir()]
    assert len(made) == 1
    assert [p.name.endswith("coffee.jpg") for p in made[0].iterdir() if p.suffix == ".jpg"] == [
        True
    ]
    code, out, err = conftest.invoke("--lang", "ja", "show", photo)
    assert code == ExitCode.OK and "エスプレッソ" in out and "食べ物/飲み物/エスプレッソ" in out
    code, out, err = conftest.invoke("--lang", "ja", "classify", photo, "-m", "food")
    assert code == ExitCode.OK and "エスプレッソ" in out, out + err
    # Back in English: the keywords are replaced, not added to.
    code, out, err = conftest.invoke("write", tmp_path / "lib")
    assert code == ExitCode.OK, out + err
    read = both(Path(str(photo) + ".xmp"))
    assert "espresso" in read["dc:subject"] and "エスプレッソ" not in read["dc:subject"]


def test_an_unknown_language_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, _out, err = conftest.invoke("--lang", "xx", "tags")
    assert code in (ExitCode.USAGE, ExitCode.ERROR)
    assert "no tag names for language 'xx'" in err and "Traceback" not in err


@pytest.mark.slow  # the real models
def test_japanese_keywords_embedded_in_iptc_are_utf8_and_read_back_by_both_tools(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    """Embed mode with IPTC: Japanese keywords in IPTC:Keywords with the UTF-8 charset
    declared (CodedCharacterSet), read back the same by exiftool and exiv2."""
    import subprocess

    photo = make_photo("lib/coffee.jpg", "coffee")
    code, out, err = conftest.invoke("--lang", "ja", "scan", tmp_path / "lib", "-m", "food",
                                     "--write", "embed", "--iptc", "always")  # fmt: skip
    assert code == ExitCode.OK, out + err
    read = both(photo)
    assert "エスプレッソ" in read["IPTC:Keywords"] and "エスプレッソ" in read["dc:subject"]
    charset = subprocess.run(["exiftool", "-s3", "-IPTC:CodedCharacterSet", str(photo)],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert charset == "UTF8"


def test_every_japanese_name_fits_an_iptc_keyword() -> None:
    """IPTC IIM keeps a keyword to 64 bytes: no Japanese name (3 bytes a character) is cut."""
    too_long = {v for v in tag_names("ja").names.values() if len(v.encode("utf-8")) > 64}
    assert not too_long


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def test_a_names_file_of_any_content_is_read_or_refused_in_one_line(tmp_path: Path) -> None:
    """Fuzzed names files (valid TOML of random tables, then random bytes): a TagNames that
    translates any path without raising, or a ConfigError -- never another exception."""
    import json

    folder = tmp_path / "names"
    folder.mkdir()

    def check() -> None:
        try:
            names = tag_names("ja", [tmp_path])
        except ConfigError as e:
            assert "\n" not in str(e).strip()
            return
        for p in ("food/japanese", "", "/", "a//b", "食べ物"):
            names.path(p)
            names.english(p)

    @given(st.dictionaries(_text, _text | st.integers(), max_size=6), st.booleans())
    def tables(table: dict[str, object], nested: bool) -> None:
        body = "\n".join(f"{json.dumps(k, ensure_ascii=False)} = {json.dumps(v, ensure_ascii=False)}"
                         for k, v in table.items())  # fmt: skip
        (folder / "ja.toml").write_text(
            ("[names]\n" if nested else "") + body + "\n", encoding="utf-8"
        )
        check()

    @given(st.binary(max_size=200))
    def raw(data: bytes) -> None:
        (folder / "ja.toml").write_bytes(data)
        check()

    tables()
    raw()
