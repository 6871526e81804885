"""Byte-preserving edits of an XMP document (issue 13, item 7): see :mod:`.xmp`.

:func:`locate` finds, with expat's byte positions, where the root, ``rdf:RDF``, each
``rdf:Description``, its properties and the list items of the keyword properties are;
:func:`splice` replaces only the keyword properties (or list items) that changed.
Everything else keeps its bytes; :func:`decode` gives the text in the file's own encoding,
which :meth:`.xmp.Sidecar.to_bytes` encodes back with the file's own byte-order mark.
"""

from __future__ import annotations

import codecs
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import MetadataError
from .keywords import Field
from .xmp import PREFIX, PROPERTIES, RDF

if TYPE_CHECKING:
    from .xmp import Sidecar

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def decode(data: bytes) -> tuple[str, str, bytes]:
    """(text, codec, byte-order mark) of an XML document, as XML 1.0 appendix F finds them."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec), codec, bom
    if data.startswith(b"<\0?\0"):
        codec = "utf-16-le"
    elif data.startswith(b"\0<\0?"):
        codec = "utf-16-be"
    else:
        m = _DECLARED.match(data)
        codec = m.group(1).decode("ascii") if m else "utf-8"
    try:
        codecs.lookup(codec)
        return data.decode(codec), codec, b""
    except (LookupError, UnicodeDecodeError):
        raise MetadataError(f"cannot decode the sidecar as {codec}") from None


@dataclass
class _Element:
    start: int  # index of '<'
    end: int  # index after the last '>'
    qname: str  # as written: prefix:local
    key: tuple[str, str]  # (namespace, local name)
    empty: bool  # <a/>
    content_end: int = -1  # index of '</' of the end tag
    text: str = ""  # direct character data (of list items only)
    children: list[_Element] = field(default_factory=list)  # the located ones
    nested: bool = False  # has child elements


@dataclass
class _Layout:
    root_start: int = -1
    root_end: int = -1
    rdf: _Element | None = None
    descriptions: list[_Element] = field(default_factory=list)
    attributes: set[tuple[str, str]] = field(default_factory=set)  # properties as attributes

    def properties(self, key: tuple[str, str]) -> list[tuple[int, _Element]]:
        return [
            (i, el) for i, d in enumerate(self.descriptions) for el in d.children if el.key == key
        ]


_TAG = re.compile(r"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")


def _tag_end(text: str, i: int) -> int:
    """Index after the '>' closing the tag that starts at ``text[i] == '<'``."""
    m = _TAG.match(text, i)
    if m is None:
        raise MetadataError("the sidecar ends inside a tag")
    return m.end()


def locate(text: str) -> _Layout:
    """Where the root, the rdf:Description elements and their properties are in ``text``."""
    import xml.parsers.expat as expat

    data = text.encode("utf-8")
    ascii_only = len(data) == len(text)
    cursor = [0, 0]  # (byte, char) of the last position asked: expat's positions only grow

    def char(byte_index: int) -> int:
        if ascii_only:
            return byte_index
        b, c = cursor
        if byte_index < b:
            b, c = 0, 0
        c += len(data[b:byte_index].decode("utf-8"))
        cursor[:] = [byte_index, c]
        return c

    layout = _Layout()
    # Only the levels a keyword edit needs are located (root, rdf:RDF, rdf:Description,
    # its properties, and the list and items of a keyword property); deeper elements
    # (darktable's history, regions) are passed over: None on the stack.
    stack: list[tuple[_Element | None, str]] = []
    keywords = {(n, local) for n, local, _ in PROPERTIES.values()}
    parser = expat.ParserCreate("UTF-8", " ")  # the text is UTF-8 now, whatever it declares
    parser.namespace_prefixes = True
    parser.buffer_text = True

    def start(name: str, attrs: dict[str, str]) -> None:
        parent, role = stack[-1] if stack else (None, "")
        parts = name.split(" ")
        key = (parts[0], parts[1]) if len(parts) >= 2 else ("", parts[0])
        if not stack:
            mine = "rdf" if key == (RDF, "RDF") else "root"
        elif role == "root" and key == (RDF, "RDF"):
            mine = "rdf"
        elif role == "rdf" and key == (RDF, "Description"):
            mine = "desc"
        elif role == "desc":
            mine = "prop"
        elif role == "prop" and parent is not None and parent.key in keywords:
            mine = "box"
        elif role == "box":
            mine = "li"
        else:
            if parent is not None:
                parent.nested = True
            stack.append((None, ""))
            return
        i = char(parser.CurrentByteIndex)
        end = _tag_end(text, i)
        qname = f"{parts[2]}:{parts[1]}" if len(parts) == 3 else parts[-1]
        el = _Element(i, end, qname, key, text[end - 2] == "/")
        if parent is not None:
            parent.children.append(el)
            parent.nested = True
        if not stack:
            layout.root_start = i
        if mine == "rdf" and layout.rdf is None:
            layout.rdf = el
        if mine == "desc":
            layout.descriptions.append(el)
            for a in attrs:
                ap = a.split(" ")
                if len(ap) >= 2:
                    layout.attributes.add((ap[0], ap[1]))
        stack.append((el, mine))

    def end(name: str) -> None:
        el, _ = stack.pop()
        if el is not None and not el.empty:
            el.content_end = char(parser.CurrentByteIndex)
            el.end = _tag_end(text, el.content_end)
        if not stack:
            if el is None:
                raise MetadataError("the sidecar's root element could not be located")
            layout.root_end = el.end

    def data_(chunk: str) -> None:
        if stack and stack[-1][1] == "li":
            el = stack[-1][0]
            assert el is not None
            el.text += chunk

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data_
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise MetadataError(f"the sidecar is not well-formed XML: {e}") from None
    return layout


def _escape(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("\r", "&#13;")
    )  # fmt: skip


def _indent_before(text: str, i: int) -> str:
    """The whitespace between the last line break before ``i`` and ``i`` ('' if not only spaces)."""
    line = text.rfind("\n", 0, i) + 1
    pad = text[line:i]
    return pad if pad.strip() == "" else ""


def _ws_start(text: str, i: int) -> int:
    """Start of the run of whitespace that ends at ``i``."""
    while i > 0 and text[i - 1] in " \t\r\n":
        i -= 1
    return i


def _prefix_for(nsmap: Mapping[str | None, str], ns: str, preferred: str) -> tuple[str, str]:
    """A prefix bound to ``ns`` in scope, and the declaration to add ('' if none is needed)."""
    if nsmap.get(preferred) == ns:
        return preferred, ""
    for prefix, uri in nsmap.items():
        if uri == ns and prefix:
            return prefix, ""
    return preferred, f' xmlns:{preferred}="{ns}"'


def _property_text(
    qname: str, decl: str, rdf: str, container: str, values: Sequence[str], indent: str
) -> str:
    lines = [f"<{qname}{decl}>", f"{indent} <{rdf}:{container}>"]
    lines += [f"{indent}  <{rdf}:li>{_escape(v)}</{rdf}:li>" for v in values]
    lines += [f"{indent} </{rdf}:{container}>", f"{indent}</{qname}>"]
    return "\n".join(lines)


#: The start tag of an rdf:Description phototag adds; one left empty is removed again.
def _own_description(rdf: str) -> str:
    return f'<{rdf}:Description {rdf}:about="">'


Edit = tuple[int, int, str]  # (start, end, replacement)


def _edit_items(text: str, prop: _Element, values: Sequence[str], rdf: str) -> list[Edit] | None:
    """Edits that turn the items of an existing ``<prop><rdf:Bag>`` into ``values``.

    The items that stay keep their bytes; removed ones go with the whitespace before them;
    new ones are appended after the last, indented like it. None if ``values`` is not the
    kept items in their order followed by new ones, or the property is not a plain list.
    """
    if len(prop.children) != 1 or prop.children[0].key[0] != RDF:
        return None
    box = prop.children[0]
    items = box.children
    if box.empty or any(li.key != (RDF, "li") or li.nested for li in items):
        return None
    edits: list[Edit] = []
    k = 0
    for li in items:
        if k < len(values) and li.text == values[k]:
            k += 1
        else:
            edits.append((_ws_start(text, li.start), li.end, ""))
    added = values[k:]
    if any(
        li.text in added for li in items if (li.start, li.end) not in {(e[0], e[1]) for e in edits}
    ):
        return None
    if added:
        kept = [li for li in items if not any(e[1] == li.end for e in edits)]
        if kept:
            indent = _indent_before(text, kept[-1].start)
            at = kept[-1].end
        else:
            indent = _indent_before(text, box.start) + " "
            at = _ws_start(text, box.content_end)
        new = "".join(f"\n{indent}<{rdf}:li>{_escape(v)}</{rdf}:li>" for v in added)
        edits.append((at, at, new))
    return edits


def splice(text: str, layout: _Layout, sidecar: Sidecar) -> str | None:
    """``text`` with the edited properties changed in place; None if that cannot be done."""
    if layout.rdf is None or layout.rdf.empty:
        return None
    descs = sidecar._descriptions()
    if len(descs) != len(layout.descriptions):
        return None
    rdf_nsmap = descs[0].nsmap if descs else {}
    rdf = next((p for p, u in rdf_nsmap.items() if u == RDF and p), None)
    if rdf is None:
        return None
    values = sidecar.fields()
    edits: list[Edit] = []
    new_props: list[tuple[Field, list[str]]] = []
    emptied: dict[int, int] = {}  # description index -> properties removed from it
    for f in sorted(sidecar.edited):
        ns, name, container = PROPERTIES[f]
        if (ns, name) in layout.attributes:
            return None  # the attribute form: the Description's start tag would change
        found = layout.properties((ns, name))
        vals = values.get(f, [])
        if not found:
            if vals:
                new_props.append((f, vals))
            continue
        (_, first), rest = found[0], found[1:]
        if vals:
            items = _edit_items(text, first, vals, rdf)
            if items is None:
                indent = _indent_before(text, first.start)
                items = [(first.start, first.end,
                          _property_text(first.qname, "", rdf, container, vals, indent))]  # fmt: skip
            edits += items
        else:
            rest = found
        for d, el in rest:
            edits.append((_ws_start(text, el.start), el.end, ""))
            emptied[d] = emptied.get(d, 0) + 1
    # A Description phototag added, left with nothing: it goes too.
    for d, n in emptied.items():
        desc = layout.descriptions[d]
        start_tag = text[desc.start : _tag_end(text, desc.start)]
        if n == len(desc.children) and start_tag == _own_description(rdf) and not desc.text.strip():
            edits = [e for e in edits if not (desc.start <= e[0] < desc.end)]
            edits.append((_ws_start(text, desc.start), desc.end, ""))
    if new_props:
        edits.append(_insert(text, layout, descs, rdf, new_props))
    edits.sort()
    for (_, e1, _), (s2, _, _) in itertools.pairwise(edits):
        if s2 < e1:
            return None
    out = []
    pos = 0
    for start, end, repl in edits:
        out.append(text[pos:start])
        out.append(repl)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _insert(
    text: str, layout: _Layout, descs: list[Any], rdf: str, new: list[tuple[Field, list[str]]]
) -> Edit:
    """One edit adding the ``new`` properties: into the Description that holds the other
    keyword properties, else the first one with content; when every Description is
    self-closing, in a Description of phototag's own after the last one (so that the
    user's ``<rdf:Description .../>`` is never opened, and ``clean`` can take it all back).
    """
    keywords = {(n, local) for n, local, _ in PROPERTIES.values()}
    host = next(
        (i for i, d in enumerate(layout.descriptions) for el in d.children if el.key in keywords),
        None,
    )
    if host is None:
        host = next((i for i, d in enumerate(layout.descriptions) if not d.empty), None)
    if host is not None:
        desc = layout.descriptions[host]
        own = _indent_before(text, desc.start)
        children = desc.children
        indent = _indent_before(text, children[0].start) if children else own + " "
        body = "".join(
            "\n" + indent + _property_text(
                f"{prefix}:{PROPERTIES[f][1]}", decl, rdf, PROPERTIES[f][2], vals, indent
            )
            for f, vals in new
            for prefix, decl in [_prefix_for(descs[host].nsmap, PROPERTIES[f][0], PREFIX[PROPERTIES[f][0]])]
        )  # fmt: skip
        at = _ws_start(text, desc.content_end)
        return (at, at, body)
    rdf_el = layout.rdf
    assert rdf_el is not None
    if layout.descriptions:
        last = layout.descriptions[-1]
        own = _indent_before(text, last.start)
        at = last.end
    else:
        own = _indent_before(text, rdf_el.start) + " "
        at = _ws_start(text, rdf_el.content_end)
    indent = own + " "
    body = "".join(
        "\n" + indent + _property_text(
            f"{PREFIX[PROPERTIES[f][0]]}:{PROPERTIES[f][1]}",
            f' xmlns:{PREFIX[PROPERTIES[f][0]]}="{PROPERTIES[f][0]}"',
            rdf, PROPERTIES[f][2], vals, indent,
        )
        for f, vals in new
    )  # fmt: skip
    return (at, at, f"\n{own}{_own_description(rdf)}{body}\n{own}</{rdf}:Description>")
