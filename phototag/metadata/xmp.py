"""XMP sidecars: read and change the keyword fields, leave every other byte as it was.

Sidecars are untrusted input (other programs wrote them, or anyone did). They are first
checked by defusedxml, which refuses DTDs and entity declarations (billion laughs,
external entities), then parsed with lxml to read and edit the keyword properties.

A rewrite does not re-serialise the document (issue 13, item 7): other programs depend on
bytes an XML serialiser does not keep (exiftool stops recognising a file as XMP when the
newline between a leading comment and ``<x:xmpmeta>`` goes; Lightroom and exiv2 keep the
``<?xpacket?>`` padding; a UTF-16 file must stay UTF-16). :meth:`Sidecar.to_bytes` instead
splices (:mod:`.rewrite`): it finds the byte span of each keyword property it changed (expat's positions)
and replaces just that span, inserts a new property before its ``rdf:Description``'s end
tag, and encodes the text back in the file's own encoding with its own byte-order mark.
Everything else (comments, processing instructions, whitespace, attribute layout,
darktable's history, ratings, GPS) keeps its bytes. Only where that cannot be done (a
keyword property written as an attribute, a document with no ``rdf:Description``) is the
root element re-serialised by lxml, still keeping every byte around the root. The result
is parsed again and checked before it is returned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

from ..errors import MetadataError
from ..fsutil import TMP_SUFFIX, atomic_write, temp_prefix
from . import regions
from .keywords import XMP_FIELDS, Field

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
}
RDF = NS["rdf"]
# (namespace, local name, container): dc:subject and lr:hierarchicalSubject are bags,
# digiKam:TagsList is a sequence (as digiKam writes it).
PROPERTIES: dict[Field, tuple[str, str, str]] = {
    Field.SUBJECT: (NS["dc"], "subject", "Bag"),
    Field.HIERARCHICAL: (NS["lr"], "hierarchicalSubject", "Bag"),
    Field.TAGSLIST: (NS["digiKam"], "TagsList", "Seq"),
    Field.PERSON: (NS["Iptc4xmpExt"], "PersonInImage", "Bag"),
}
PREFIX = {
    NS["dc"]: "dc",
    NS["lr"]: "lr",
    NS["digiKam"]: "digiKam",
    NS["Iptc4xmpExt"]: "Iptc4xmpExt",
}

#: A sidecar larger than this is not parsed (keyword sidecars are kilobytes; darktable's
#: with a long history a few hundred).
MAX_SIDECAR_BYTES = 16 * 2**20

EMPTY = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="phototag">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""/>\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>'
)


def sidecar_path(photo: Path, naming: str = "full") -> Path:
    """``IMG_0001.jpg.xmp`` (digiKam, darktable, Immich) or ``IMG_0001.xmp`` (Lightroom)."""
    if naming == "basename":
        return photo.with_suffix(".xmp")
    return photo.with_name(photo.name + ".xmp")


class Sidecar:
    """A parsed XMP document whose keyword fields can be read and replaced."""

    def __init__(self, root: Any, original: bytes | None) -> None:
        self.root = root
        self.original = original  # the bytes it was parsed from; None for a new one
        self.edited: set[Field] = set()  # the properties set_fields changed
        # The photo's displayed size in pixels, for the AppliedToDimensions of new face regions.
        self.dims: tuple[int, int] | None = None
        # Face regions are structures, not lists: a document whose regions changed is written
        # by re-serialising its root element, not by splicing (phototag.metadata.rewrite).
        self.regions_edited = False

    @classmethod
    def new(cls) -> Sidecar:
        return cls(_parse(EMPTY.encode("utf-8"), "a new sidecar"), None)

    @classmethod
    def read(cls, path: Path) -> Sidecar | None:
        """The sidecar at ``path``, None if there is none. Raises MetadataError if unusable."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        except OSError as e:
            raise MetadataError(f"cannot read sidecar {path}: {e.strerror}") from None
        if size > MAX_SIDECAR_BYTES:
            raise MetadataError(
                f"sidecar {path} is {size / 2**20:.0f} MiB: too large to be XMP, left alone"
            )
        try:
            data = path.read_bytes()
        except OSError as e:
            raise MetadataError(f"cannot read sidecar {path}: {e.strerror}") from None
        return cls(_parse(data, str(path)), data)

    def _descriptions(self) -> list[Any]:
        return list(self.root.iter(f"{{{RDF}}}Description"))

    def fields(self) -> dict[Field, list[str]]:
        out: dict[Field, list[str]] = {}
        faces = regions.read(self.root)
        if faces:
            out[Field.REGIONS] = [r.encode() for r in faces]
        for f in XMP_FIELDS:
            if f not in PROPERTIES:
                continue
            ns, name, _ = PROPERTIES[f]
            values: list[str] = []
            found = False
            for desc in self._descriptions():
                attr = desc.get(f"{{{ns}}}{name}")
                if attr is not None:  # the simple attribute form of a one-value property
                    found = True
                    values.append(attr)
                for prop in desc.findall(f"{{{ns}}}{name}"):
                    found = True
                    values.extend((li.text or "") for li in prop.iter(f"{{{RDF}}}li"))
            if found:
                out[f] = values
        return out

    def set_fields(self, values: Mapping[Field, Sequence[str]]) -> None:
        """Replace the keyword properties named in ``values`` (an empty list removes one)."""
        from lxml import etree

        descs = self._descriptions()
        if not descs:
            rdf = self.root.find(f".//{{{RDF}}}RDF")
            if rdf is None:
                raise MetadataError("the sidecar has no rdf:RDF element")
            descs = [etree.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})]
        for f, vals in values.items():
            if f is Field.REGIONS:
                self.regions_edited |= regions.apply(self.root, descs[0], vals, self.dims)
            if f not in PROPERTIES:
                continue
            self.edited.add(f)
            ns, name, container = PROPERTIES[f]
            existing = None
            for desc in descs:
                if desc.get(f"{{{ns}}}{name}") is not None:
                    del desc.attrib[f"{{{ns}}}{name}"]
                for prop in desc.findall(f"{{{ns}}}{name}"):
                    if existing is None:
                        existing = prop
                    else:
                        desc.remove(prop)
            if not vals:
                if existing is not None:
                    _remove_keeping_tail(existing)
                continue
            if existing is None:
                existing = _append(descs[0], f"{{{ns}}}{name}", {PREFIX[ns]: ns})
            _fill(existing, container, vals)

    def to_bytes(self) -> bytes:
        """The document with its edits, every byte outside the edited properties unchanged.

        Raises MetadataError if the result would not read back as the edited document.
        """
        from lxml import etree

        if self.original is None:
            body: bytes = etree.tostring(self.root.getroottree(), encoding="utf-8")
            return body + b"\n"
        if not self.edited and not self.regions_edited:
            return self.original
        from .rewrite import decode, locate, splice

        text, codec, bom = decode(self.original)
        layout = locate(text)
        spliced = None if self.regions_edited else splice(text, layout, self)
        if spliced is None:  # no way to edit in place: re-serialise the root element only
            root = etree.tostring(self.root, encoding="unicode", with_tail=False)
            spliced = text[: layout.root_start] + root + text[layout.root_end :]
        out = bom + spliced.encode(codec, errors="xmlcharrefreplace")
        again = Sidecar(_parse(out, "the rewritten sidecar", checked=True), out)
        if again.fields() != self.fields():
            raise MetadataError("the rewritten sidecar would not read back as written; left alone")
        return out

    def is_empty(self) -> bool:
        """True if the sidecar says nothing at all: no properties, no attributes but rdf:about."""
        for desc in self._descriptions():
            attrs = [k for k in desc.attrib if k != f"{{{RDF}}}about"]
            if attrs or len(desc):
                return False
        return True


def parse(data: bytes, where: str) -> Any:
    """An XMP document (a sidecar or a packet cut from a photo), checked as sidecars are;
    raises MetadataError."""
    return _parse(data, where)


def _parse(data: bytes, where: str, *, checked: bool = False) -> Any:
    """The root element of ``data``. ``checked``: defusedxml already passed it (a rewrite
    of a checked document that adds only escaped text), so lxml alone parses it again."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring as defused
    from lxml import etree

    try:
        if not checked:
            defused(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise MetadataError(
            f"{where}: refused, the XML declares a DTD or entities ({type(e).__name__})"
        ) from None
    except Exception as e:  # ElementTree.ParseError and friends
        raise MetadataError(f"{where} is not well-formed XML: {e}") from None
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False
    )
    try:
        root = etree.fromstring(data, parser)  # keeps the <?xpacket?> siblings of the root
    except etree.XMLSyntaxError as e:
        raise MetadataError(f"{where} is not well-formed XML: {e}") from None
    if root.tag not in (f"{{{NS['x']}}}xmpmeta", f"{{{RDF}}}RDF"):
        raise MetadataError(f"{where} is XML but not XMP (root element {root.tag!r})")
    return root


def _append(parent: Any, tag: str, nsmap: dict[str, str]) -> Any:
    """Append a child, indented like its siblings (so new sidecars read well)."""
    from lxml import etree

    indent = (parent.text or "\n") if len(parent) else "\n" + _indent_of(parent) + " "
    if len(parent):
        last = parent[-1]
        child = etree.SubElement(parent, tag, nsmap=nsmap)
        child.tail = last.tail
        last.tail = indent if indent.strip() == "" else last.tail
    else:
        parent.text = indent
        child = etree.SubElement(parent, tag, nsmap=nsmap)
        child.tail = "\n" + _indent_of(parent)
    return child


def _indent_of(el: Any) -> str:
    depth = 0
    while el.getparent() is not None:
        el = el.getparent()
        depth += 1
    return " " * depth


def _fill(prop: Any, container: str, values: Sequence[str]) -> None:
    from lxml import etree

    for child in list(prop):
        prop.remove(child)
    pad = "\n" + _indent_of(prop)
    prop.text = pad + " "
    box = etree.SubElement(prop, f"{{{RDF}}}{container}")
    box.tail = pad
    box.text = pad + "  "
    for i, v in enumerate(values):
        li = etree.SubElement(box, f"{{{RDF}}}li")
        li.text = v
        li.tail = pad + ("  " if i < len(values) - 1 else " ")


def _remove_keeping_tail(el: Any) -> None:
    parent = el.getparent()
    prev = el.getprevious()
    if prev is not None:
        prev.tail = el.tail if el.tail is not None else prev.tail
    else:
        parent.text = el.tail if el.tail is not None else parent.text
    parent.remove(el)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new, never half
    (:func:`phototag.fsutil.atomic_write`: keeps the old file's mode). Raises MetadataError.
    """
    for stale in path.parent.glob(glob_escape(temp_prefix(path)) + "*" + TMP_SUFFIX):
        # Left by a run killed between creating its temporary file and the rename.
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        atomic_write(path, data)
    except OSError as e:
        raise MetadataError(f"cannot write {path}: {e.strerror or e}") from None
