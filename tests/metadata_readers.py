"""Two independent readers of keyword fields, for round-trip tests: exiftool and exiv2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

FIELDS = ("dc:subject", "lr:hierarchicalSubject", "digiKam:TagsList", "IPTC:Keywords")


def by_exiftool(path: Path) -> dict[str, list[str]]:
    tags = {"XMP-dc:Subject": "dc:subject", "XMP-lr:HierarchicalSubject": "lr:hierarchicalSubject",
            "XMP-digiKam:TagsList": "digiKam:TagsList", "IPTC:Keywords": "IPTC:Keywords"}  # fmt: skip
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-struct", *(f"-{t}" for t in tags), str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    record = json.loads(out)[0]
    result = {}
    for tag, name in tags.items():
        if tag in record:
            v = record[tag]
            result[name] = [str(x) for x in v] if isinstance(v, list) else [str(v)]
    return result


def by_libheif(path: Path) -> dict[str, list[str]]:
    """The XMP packet libheif (through pillow-heif) finds in a HEIC, parsed with ElementTree.

    Debian's exiv2 0.27 is built without HEIF support, so for HEIC the second reader is
    libheif, with a parser that shares no code with phototag's (lxml).
    """
    import xml.etree.ElementTree as ET

    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    with Image.open(path) as im:
        packet = im.info.get("xmp")
    if not packet:
        return {}
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
    props = {"{http://purl.org/dc/elements/1.1/}subject": "dc:subject",
             "{http://ns.adobe.com/lightroom/1.0/}hierarchicalSubject": "lr:hierarchicalSubject",
             "{http://www.digikam.org/ns/1.0/}TagsList": "digiKam:TagsList"}  # fmt: skip
    result: dict[str, list[str]] = {}
    for desc in ET.fromstring(packet).iter(f"{rdf}Description"):
        for prop in desc:
            if prop.tag in props:
                result[props[prop.tag]] = [li.text or "" for li in prop.iter(f"{rdf}li")]
    return result


def by_exiv2(path: Path) -> dict[str, list[str]]:
    keys = {"Xmp.dc.subject": "dc:subject", "Xmp.lr.hierarchicalSubject": "lr:hierarchicalSubject",
            "Xmp.digiKam.TagsList": "digiKam:TagsList", "Iptc.Application2.Keywords": "IPTC:Keywords"}  # fmt: skip
    # For a sidecar, exiv2 would also show IPTC it derives from the XMP: ask for XMP only.
    groups = "-PXkv" if path.suffix.lower() == ".xmp" else "-PXIkv"
    proc = subprocess.run(["exiv2", groups, str(path)], capture_output=True, text=True)
    result: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        name = keys.get(key)
        if name is None:
            continue
        value = value.strip()
        if key.startswith("Iptc"):
            result.setdefault(name, []).append(value)
        else:  # exiv2 prints an XMP bag or seq as "a, b, c"
            result[name] = value.split(", ") if value else []
    return result


def both(path: Path) -> dict[str, list[str]]:
    """What both readers see; the test fails if they disagree."""
    second = by_libheif if path.suffix.lower() in (".heic", ".heif") else by_exiv2
    a, b = by_exiftool(path), second(path)
    assert a == b, f"exiftool and exiv2 disagree on {path}:\n{a}\n{b}"
    return a
