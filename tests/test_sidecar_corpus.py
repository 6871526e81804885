"""A rewritten sidecar stays readable by every other program (issue 13, item 7).

Real sidecars written by other programs (tests/data/sidecars/, sources in SOURCES.md) go
through ``write``, a second ``write`` and ``clean``. After each step exiftool and exiv2
read ALL values of the file: nothing but the keyword properties may change, the keywords
must be the user's followed by phototag's, and ``clean`` must give back the original bytes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from metadata_readers import by_exiftool, by_exiv2

from phototag.config import WriteSettings
from phototag.index import Index
from phototag.index.store import PhotoRecord
from phototag.metadata.keywords import Field
from phototag.metadata.write import Unchanged, WriteFailed, Wrote, clean, write_tags
from phototag.metadata.xmp import Sidecar, _parse
from phototag.models.recognizers import Candidate

CORPUS = Path(__file__).parent / "data" / "sidecars"
FILES = sorted(CORPUS.glob("*.xmp"))
TAGS = ["food/drink/espresso", "animal/cat"]
OURS = {
    "dc:subject": ["espresso", "cat"],
    "lr:hierarchicalSubject": ["phototag|food|drink|espresso", "phototag|animal|cat"],
    "digiKam:TagsList": ["phototag/food/drink/espresso", "phototag/animal/cat"],
}
KEYWORD_TAGS = {"XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList"}
KEYWORD_KEYS = {"Xmp.dc.subject", "Xmp.lr.hierarchicalSubject", "Xmp.digiKam.TagsList"}


def exiftool_all(path: Path) -> dict[str, object]:
    """Every tag exiftool reads from the file (XMP and what it derives), by group."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-struct", "-a", "-XMP:All", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    record: dict[str, object] = json.loads(out)[0]
    record.pop("SourceFile", None)
    return record


def exiv2_all(path: Path) -> tuple[int, list[str]]:
    """exiv2's exit status and every XMP key/value line it prints (empty if it cannot read it).

    Sorted: exiv2 prints properties grouped by namespace in the order it first met each
    namespace, so a new dc:subject moves the dc:title line without changing any value.
    """
    proc = subprocess.run(["exiv2", "-PXkv", str(path)], capture_output=True, text=True)
    return proc.returncode, sorted(proc.stdout.splitlines())


def without_keywords(
    et: dict[str, object], ex: tuple[int, list[str]]
) -> tuple[dict[str, object], tuple[int, list[str]]]:
    return (
        {k: v for k, v in et.items() if k not in KEYWORD_TAGS},
        (ex[0], [line for line in ex[1] if line.split(" ", 1)[0] not in KEYWORD_KEYS]),
    )


@pytest.fixture
def idx(tmp_path: Path) -> Iterator[Index]:
    index = Index.open(tmp_path / "i.sqlite")
    yield index
    index.close()


def test_the_corpus_is_there_and_recorded() -> None:
    sources = (CORPUS / "SOURCES.md").read_text()
    assert len(FILES) >= 15
    for f in FILES:
        assert f"`{f.name}`" in sources, f"{f.name} is not in SOURCES.md"


@pytest.mark.parametrize("original", FILES, ids=[f.name for f in FILES])
def test_real_sidecars_keep_every_value_through_write_and_clean(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path], original: Path
) -> None:
    photo = make_photo("lib/photo.jpg", "coffee", size=(32, 24))
    sidecar = tmp_path / "lib" / "photo.jpg.xmp"
    data = original.read_bytes()
    sidecar.write_bytes(data)
    before_et, before_ex = exiftool_all(sidecar), exiv2_all(sidecar)
    user = Sidecar.read(sidecar)
    assert user is not None
    user_fields = {f.value: v for f, v in user.fields().items()}
    st = photo.stat()
    with idx.transaction():
        pid = idx.upsert_photo(PhotoRecord(photo, st.st_size, st.st_mtime_ns, "h", 32, 24, None))
        idx.set_results(pid, "test", "fp", [Candidate(t.split("/")[-1], 0.9, t) for t in TAGS])

    events = list(write_tags(idx, [tmp_path / "lib"], WriteSettings()))
    assert not [e for e in events if isinstance(e, WriteFailed)], events
    assert [type(e) for e in events] == [Wrote]
    after_et, after_ex = exiftool_all(sidecar), exiv2_all(sidecar)
    # Every value but the keywords is as it was, for both readers ...
    assert without_keywords(after_et, after_ex) == without_keywords(before_et, before_ex)
    # ... and the keywords are the user's, in their order, then phototag's (case-insensitive
    # duplicates of a user's value are not added).
    if before_et:
        got = by_exiftool(sidecar)
    elif before_ex[0] == 0:
        got = by_exiv2(sidecar)
    else:  # neither reads this file (XMP SDK's bare <rdf:RDF> example): phototag's reader
        read = Sidecar.read(sidecar)
        assert read is not None
        got = {f.value: v for f, v in read.fields().items()}
    assert set(got) == set(OURS)
    for name, ours in OURS.items():
        mine = user_fields.get(name, [])
        folded = {v.casefold() for v in mine}
        assert got[name][: len(mine)] == mine
        assert sorted(got[name][len(mine) :]) == sorted(
            v for v in ours if v.casefold() not in folded
        )
    if before_ex[0] == 0:  # exiv2 reads this file: it must read the same keywords
        assert by_exiv2(sidecar) == got

    # A second write changes no byte.
    written = sidecar.read_bytes()
    assert [type(e) for e in write_tags(idx, [tmp_path / "lib"], WriteSettings())] == [Unchanged]
    assert sidecar.read_bytes() == written

    # clean gives back the file exactly as the other program wrote it.
    assert not [e for e in clean(idx, [tmp_path / "lib"]) if isinstance(e, WriteFailed)]
    assert sidecar.read_bytes() == data
    assert (exiftool_all(sidecar), exiv2_all(sidecar)) == (before_et, before_ex)


OSXPHOTOS_STYLE = """<!-- Created with osxphotos https://github.com/RhetTbull/osxphotos -->
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 5.4.0">
    <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
        <rdf:Description rdf:about=""
            xmlns:dc="http://purl.org/dc/elements/1.1/"
            xmlns:xmp="http://ns.adobe.com/xap/1.0/"
            xmlns:exif="http://ns.adobe.com/exif/1.0/">
        <dc:title>St. James's Park</dc:title>
        <dc:subject>
            <rdf:Seq>
                <rdf:li>Holiday</rdf:li>
            </rdf:Seq>
        </dc:subject>
        <xmp:Rating>3</xmp:Rating>
        <exif:GPSLatitude>51.50357167</exif:GPSLatitude>
        <exif:GPSLatitudeRef>N</exif:GPSLatitudeRef>
        </rdf:Description>
   </rdf:RDF>
</x:xmpmeta>"""

LATIN1 = (
    '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
    + OSXPHOTOS_STYLE.replace("St. James", "Caf\u00e9 James")
).encode("latin-1")

XPACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="3"/>'
    "</rdf:RDF></x:xmpmeta>\n" + " " * 2048 + "\n"
    '<?xml-stylesheet href="x.css"?>\n<?xpacket end="w"?>'
)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("comment-first (osxphotos)", OSXPHOTOS_STYLE.encode("utf-8")),
        ("comment-first, CRLF line ends", OSXPHOTOS_STYLE.replace("\n", "\r\n").encode("utf-8")),
        ("xpacket padding and a PI, one-line root", XPACKET.encode("utf-8")),
        ("UTF-16 with a BOM", OSXPHOTOS_STYLE.encode("utf-16")),
        ("UTF-16BE with a BOM", b"\xfe\xff" + OSXPHOTOS_STYLE.encode("utf-16-be")),
        ("UTF-8 with a BOM", b"\xef\xbb\xbf" + OSXPHOTOS_STYLE.encode("utf-8")),
        ("declared Latin-1", LATIN1),
    ],
)
def test_bytes_around_the_root_and_the_encoding_survive(
    tmp_path: Path, idx: Index, make_photo: Callable[..., Path], name: str, data: bytes
) -> None:
    photo = make_photo("lib/photo.jpg", "coffee", size=(32, 24))
    sidecar = tmp_path / "lib" / "photo.jpg.xmp"
    sidecar.write_bytes(data)
    before = exiftool_all(sidecar), exiv2_all(sidecar)
    st = photo.stat()
    with idx.transaction():
        pid = idx.upsert_photo(PhotoRecord(photo, st.st_size, st.st_mtime_ns, "h", 32, 24, None))
        idx.set_results(pid, "test", "fp", [Candidate("espresso", 0.9, "food/espresso")])
    assert [type(e) for e in write_tags(idx, [tmp_path / "lib"], WriteSettings())] == [Wrote]
    out = sidecar.read_bytes()
    assert out[:4] == data[:4]  # the same byte-order mark / first bytes: the same encoding
    et, ex = exiftool_all(sidecar), exiv2_all(sidecar)
    # Each reader reads what it read before, and the new keyword where it read anything.
    assert without_keywords(et, ex) == without_keywords(*before)
    if before[0]:
        assert et["XMP-dc:Subject"] in (["Holiday", "espresso"], ["espresso"], "espresso")
    else:
        assert et == {}  # exiftool reads no comment-first file that does not start with '<'
    if before[1][0] == 0:
        assert "Xmp.dc.subject" in " ".join(ex[1])
    read = Sidecar.read(sidecar)
    assert read is not None and read.fields()[Field.SUBJECT][-1] == "espresso"
    list(clean(idx, [tmp_path / "lib"]))
    assert sidecar.read_bytes() == data


KEYWORD = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff"),
    max_size=12,
)


@given(
    original=st.sampled_from(FILES),
    field=st.sampled_from([Field.SUBJECT, Field.HIERARCHICAL, Field.TAGSLIST]),
    added=st.lists(KEYWORD, min_size=1, max_size=4, unique=True),
)
def test_any_keywords_added_and_taken_back_leave_the_original_bytes(
    original: Path, field: Field, added: list[str]
) -> None:
    """Fuzzed: any text (markup characters, non-BMP, whitespace) into any corpus file."""
    data = original.read_bytes()
    first = Sidecar(_parse(data, "corpus"), data)
    mine = first.fields().get(field)
    new = [v for v in added if v not in (mine or [])]
    first.set_fields({field: [*(mine or []), *new]})
    out = first.to_bytes()
    again = Sidecar(_parse(out, "written"), out)
    assert again.fields()[field] == [*(mine or []), *new]
    again.set_fields({field: mine or []})
    assert again.to_bytes() == data
