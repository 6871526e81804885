"""MWG face regions (``mwg-rs:Regions``): read other programs' named faces, write phototag's.

The Metadata Working Group's region schema (MWG Guidelines 2.0, section 5.9) is what digiKam,
Lightroom Classic, Picasa, Apple Photos' exports and exiftool's ``MWG`` module use for named
faces: ``mwg-rs:Regions`` holds ``AppliedToDimensions`` (the image size the regions were made
for) and a ``RegionList`` bag of regions, each with a ``Name``, a ``Type`` (``Face``) and an
``Area`` whose ``x``/``y`` are the region's *centre* and ``w``/``h`` its size, as fractions of
the image in its displayed orientation (after EXIF rotation), ``unit="normalized"``.

phototag represents each named face region as one string, ``{"name": ..., "area": [x, y, w,
h]}`` (4 decimals), so that regions go through the same merge and ownership rules as keywords
(:mod:`phototag.metadata.keywords`): a region phototag did not write is never changed or
removed, and ``clean`` removes exactly the regions phototag added. Edits touch single
``rdf:li`` items; other regions (pets, focus areas, unnamed faces) and their extra fields are
left as they are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

K = TypeVar("K")

MWG_RS = "http://www.metadataworkinggroup.com/schemas/regions/"
ST_AREA = "http://ns.adobe.com/xmp/sType/Area#"
ST_DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NSMAP = {"mwg-rs": MWG_RS, "stArea": ST_AREA, "stDim": ST_DIM}


@dataclass(frozen=True, slots=True)
class FaceRegion:
    """A named face: centre x, y and size w, h as fractions of the displayed image."""

    name: str
    x: float
    y: float
    w: float
    h: float

    @classmethod
    def from_box(cls, name: str, box: tuple[float, float, float, float]) -> FaceRegion:
        """From corners x1, y1, x2, y2 (fractions), as phototag stores faces."""
        x1, y1, x2, y2 = box
        return cls(name, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x - self.w / 2, self.y - self.h / 2, self.x + self.w / 2, self.y + self.h / 2)

    def encode(self) -> str:
        area = [round(v, 4) for v in (self.x, self.y, self.w, self.h)]
        return json.dumps(
            {"name": self.name, "area": area}, ensure_ascii=False, separators=(",", ":")
        )

    @classmethod
    def decode(cls, value: str) -> FaceRegion | None:
        try:
            d = json.loads(value)
            x, y, w, h = (float(v) for v in d["area"])
            name = str(d["name"])
        except (ValueError, KeyError, TypeError):
            return None
        return cls.checked(name, x, y, w, h)

    @classmethod
    def checked(cls, name: str, x: float, y: float, w: float, h: float) -> FaceRegion | None:
        """A region if the values make sense (finite, inside the image, a name XML can hold), else
        None. Runs of whitespace in the name become one space."""
        name = " ".join(name.split())
        if not name or not all(math.isfinite(v) for v in (x, y, w, h)):
            return None
        if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff" for c in name):
            return None
        if not (0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 and 0 < h <= 1):
            return None
        return cls(name, x, y, w, h)


def _get(el: Any, ns: str, name: str) -> str | None:
    """A property of a struct, in attribute or element form."""
    v = el.get(f"{{{ns}}}{name}")
    if v is not None:
        return str(v)
    child = el.find(f"{{{ns}}}{name}")
    if child is not None and child.text is not None:
        return str(child.text).strip()
    return None


def _struct(el: Any) -> Any:
    """The element holding a struct's fields: ``rdf:li`` itself (parseType Resource or
    attributes) or its ``rdf:Description`` child."""
    desc = el.find(f"{{{RDF}}}Description")
    return desc if desc is not None else el


def _items(root: Any) -> Iterable[tuple[Any, Any]]:
    """(rdf:li, its struct) of every region in every mwg-rs:Regions of the document."""
    for regions in root.iter(f"{{{MWG_RS}}}Regions"):
        info = _struct(regions)
        for rlist in info.findall(f"{{{MWG_RS}}}RegionList"):
            for li in rlist.iter(f"{{{RDF}}}li"):
                yield li, _struct(li)


def face_of(struct: Any) -> FaceRegion | None:
    """The named face a region struct describes, None for other regions or bad values."""
    kind = _get(struct, MWG_RS, "Type")
    name = _get(struct, MWG_RS, "Name")
    if name is None or (kind is not None and kind.casefold() != "face"):
        return None
    area = struct.find(f"{{{MWG_RS}}}Area")
    if area is None:
        return None
    area = _struct(area)
    unit = _get(area, ST_AREA, "unit")
    if unit is not None and unit != "normalized":
        return None  # pixel units would need AppliedToDimensions; no program we know writes them
    try:
        x, y, w, h = (float(_get(area, ST_AREA, k) or "nan") for k in ("x", "y", "w", "h"))
    except ValueError:
        return None
    return FaceRegion.checked(name, x, y, w, h)


def read(root: Any) -> list[FaceRegion]:
    """The named face regions in a parsed XMP document (lxml root)."""
    out = []
    for _, struct in _items(root):
        face = face_of(struct)
        if face is not None:
            out.append(face)
    return out


def apply(
    root: Any, description: Any, values: Sequence[str], dims: tuple[int, int] | None = None
) -> bool:
    """Make the named face regions in the document exactly ``values`` (encoded regions): remove
    the items whose encoding is not among them, add those missing. Other regions are untouched.

    ``description`` is the ``rdf:Description`` to create ``mwg-rs:Regions`` in if there is none;
    ``dims`` (width, height in pixels, displayed orientation) fills ``AppliedToDimensions``.
    Returns whether the document changed.
    """
    from lxml import etree

    wanted = list(dict.fromkeys(values))
    present: set[str] = set()
    changed = False
    for li, struct in list(_items(root)):
        face = face_of(struct)
        if face is None:
            continue
        code = face.encode()
        if code in wanted:
            present.add(code)
        else:
            li.getparent().remove(li)
            changed = True
    missing = [FaceRegion.decode(v) for v in wanted if v not in present]
    add = [r for r in missing if r is not None]
    if not add:
        if changed:
            _drop_empty(root)
        return changed
    bag = None
    for regions in root.iter(f"{{{MWG_RS}}}Regions"):
        for rlist in _struct(regions).findall(f"{{{MWG_RS}}}RegionList"):
            bag = rlist.find(f"{{{RDF}}}Bag")
            if bag is not None:
                break
        if bag is not None:
            break
    if bag is None:
        regions = etree.SubElement(description, f"{{{MWG_RS}}}Regions", nsmap={"mwg-rs": MWG_RS})
        regions.set(f"{{{RDF}}}parseType", "Resource")
        if dims is not None:
            d = etree.SubElement(
                regions, f"{{{MWG_RS}}}AppliedToDimensions", nsmap={"stDim": ST_DIM}
            )
            d.set(f"{{{ST_DIM}}}w", str(int(dims[0])))
            d.set(f"{{{ST_DIM}}}h", str(int(dims[1])))
            d.set(f"{{{ST_DIM}}}unit", "pixel")
        rlist = etree.SubElement(regions, f"{{{MWG_RS}}}RegionList")
        bag = etree.SubElement(rlist, f"{{{RDF}}}Bag")
    for r in add:
        li = etree.SubElement(bag, f"{{{RDF}}}li")
        desc = etree.SubElement(li, f"{{{RDF}}}Description")
        desc.set(f"{{{MWG_RS}}}Name", r.name)
        desc.set(f"{{{MWG_RS}}}Type", "Face")
        area = etree.SubElement(desc, f"{{{MWG_RS}}}Area", nsmap={"stArea": ST_AREA})
        x, y, w, h = (f"{round(v, 4):g}" for v in (r.x, r.y, r.w, r.h))
        for k, v in (("x", x), ("y", y), ("w", w), ("h", h), ("unit", "normalized")):
            area.set(f"{{{ST_AREA}}}{k}", v)
    _drop_empty(root)
    return True


def _drop_empty(root: Any) -> None:
    """An ``mwg-rs:Regions`` left with no region at all goes (phototag created it, or it was
    empty already)."""
    for regions in list(root.iter(f"{{{MWG_RS}}}Regions")):
        if not any(True for _ in regions.iter(f"{{{RDF}}}li")):
            regions.getparent().remove(regions)


# -- exiftool's structured form (embed mode) -------------------------------------------


def read_struct(info: Any) -> list[FaceRegion]:
    """Named faces from exiftool's ``-struct`` JSON of ``XMP-mwg-rs:RegionInfo``."""
    out: list[FaceRegion] = []
    if not isinstance(info, dict):
        return out
    items = info.get("RegionList")
    for item in items if isinstance(items, list) else []:
        face = _struct_face(item)
        if face is not None:
            out.append(face)
    return out


def _struct_face(item: Any) -> FaceRegion | None:
    if not isinstance(item, dict) or "Name" not in item:
        return None
    if str(item.get("Type", "Face")).casefold() != "face":
        return None
    area = item.get("Area")
    if not isinstance(area, dict) or str(area.get("Unit", "normalized")) != "normalized":
        return None
    try:
        x, y, w, h = (float(area[k]) for k in ("X", "Y", "W", "H"))
    except (KeyError, TypeError, ValueError):
        return None
    return FaceRegion.checked(str(item["Name"]), x, y, w, h)


def apply_struct(
    info: Any, values: Sequence[str], dims: tuple[int, int] | None
) -> dict[str, Any] | None:
    """exiftool's RegionInfo struct with its named faces made exactly ``values``; None when
    no region is left (the tag is then deleted)."""
    base: dict[str, Any] = dict(info) if isinstance(info, dict) else {}
    items = base.get("RegionList")
    items = list(items) if isinstance(items, list) else []
    wanted = list(dict.fromkeys(values))
    present: set[str] = set()
    kept = []
    for item in items:
        face = _struct_face(item)
        if face is None:
            kept.append(item)
            continue
        code = face.encode()
        if code in wanted:
            present.add(code)
            kept.append(item)
    for v in wanted:
        r = FaceRegion.decode(v)
        if v in present or r is None:
            continue
        kept.append({"Area": {"X": round(r.x, 4), "Y": round(r.y, 4), "W": round(r.w, 4),
                              "H": round(r.h, 4), "Unit": "normalized"},
                     "Name": r.name, "Type": "Face"})  # fmt: skip
    if not kept:
        return None
    base["RegionList"] = kept
    if "AppliedToDimensions" not in base and dims is not None:
        base["AppliedToDimensions"] = {"W": int(dims[0]), "H": int(dims[1]), "Unit": "pixel"}
    return base


def yield_to_others(
    wanted: Mapping[K, list[str]],
    current: Mapping[K, Sequence[str]],
    ours: Mapping[K, Sequence[str]],
    field: K,
) -> dict[K, list[str]]:
    """``wanted`` without the face regions of people the file already has a region for that
    phototag did not write (another program's region of that person wins: no duplicate)."""
    theirs = {
        r.name.casefold()
        for v in current.get(field, [])
        if v not in set(ours.get(field, [])) and (r := FaceRegion.decode(v)) is not None
    }
    out = dict(wanted)
    if not theirs or field not in wanted:
        return out
    out[field] = [
        v
        for v in wanted[field]
        if (r := FaceRegion.decode(v)) is None or r.name.casefold() not in theirs
    ]
    return out
