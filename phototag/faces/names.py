"""Names from the user's other programs: MWG face regions in the photo or its sidecar.

digiKam, Lightroom Classic, Picasa and Apple Photos' exports store a named face as an MWG
region (:mod:`phototag.metadata.regions`). When a scan finds faces in a photo, it reads the
photo's regions -- from its XMP sidecars (``IMG.jpg.xmp`` and ``IMG.xmp``) and from the XMP
packet embedded in the first :data:`MAX_PACKET_SEARCH` bytes of the file -- and gives each
region's name to the detected face it covers. Grouping then makes the named person
(:func:`phototag.faces.grouping.group`), so one named photo per person names the whole library.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import MetadataError
from ..metadata import regions
from ..metadata.regions import FaceRegion
from ..metadata.xmp import MAX_SIDECAR_BYTES, Sidecar, parse, sidecar_path

#: Where an embedded XMP packet is looked for: JPEG's APP1 comes first; TIFF/PNG writers put
#: it early too. Photos whose packet is further in are not searched (one read, bounded).
MAX_PACKET_SEARCH = 1 << 20


def embedded_packet(path: Path) -> bytes | None:
    """The XMP packet (``<x:xmpmeta>...</x:xmpmeta>``) near the start of a file, if any."""
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_PACKET_SEARCH)
    except OSError:
        return None
    if b"mwg-rs" not in head:
        return None
    start = head.find(b"<x:xmpmeta")
    end = head.find(b"</x:xmpmeta>", start)
    if start < 0 or end < 0 or end - start > MAX_SIDECAR_BYTES:
        return None
    return head[start : end + len(b"</x:xmpmeta>")]


def regions_of(path: Path) -> list[FaceRegion]:
    """The named face regions of a photo: its sidecars' and its own. A damaged or hostile
    sidecar or packet gives none (the scan goes on; 'phototag write' reports such files)."""
    out: list[FaceRegion] = []
    for naming in ("full", "basename"):
        side = sidecar_path(path, naming)
        if side == path or not os.path.isfile(side):
            continue
        try:
            sc = Sidecar.read(side)
        except MetadataError:
            continue
        if sc is not None:
            out += regions.read(sc.root)
    packet = embedded_packet(path)
    if packet is not None:
        with contextlib.suppress(MetadataError):
            out += regions.read(parse(packet, str(path)))
    return list(dict.fromkeys(out))


def match(
    boxes: Sequence[tuple[float, float, float, float]], named: Sequence[FaceRegion]
) -> dict[int, str]:
    """Which detected face (index into ``boxes``, corners as fractions) each region names.

    A region names a face when the face's centre lies inside the region and the region's
    centre inside the face box grown 1.5 times (regions drawn by hand are larger and looser
    than a detector's box); each face and each region is used once, closest centres first.
    """
    pairs = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        for j, r in enumerate(named):
            rx1, ry1, rx2, ry2 = r.box
            inside = rx1 <= cx <= rx2 and ry1 <= cy <= ry2
            near = abs(r.x - cx) <= 0.75 * w and abs(r.y - cy) <= 0.75 * h
            if inside and near:
                pairs.append(((r.x - cx) ** 2 + (r.y - cy) ** 2, i, j))
    out: dict[int, str] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs):
        if i not in out and j not in used:
            out[i] = named[j].name
            used.add(j)
    return out
