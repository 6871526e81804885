"""Gather the real, hand-labelled photos that bench/precision.py measures the recognizers on.

    python bench/precision_photos.py DIR

Writes every photo named in bench/precision_photos.csv into DIR as a JPEG (transparent
cut-outs composited on white), from:

* scikit-image's bundled samples (``skimage.data``) and scikit-learn's sample images, both
  in the test extra;
* four Debian packages, fetched with ``apt-get download`` (no root needed, nothing is
  installed) and unpacked with ``dpkg-deb -x``, unless their files are already installed:
    - palapeli-data (KDE's jigsaw puzzles: five photos),
    - opencv-doc (OpenCV's sample data: fruit, a mandrill, a squirrel, buildings, ...),
    - gcompris-qt-data (GCompris: photos of animals, fish, monuments, tools, windmills,
      planets; they live in Qt resource files, unpacked by ``read_rcc`` below),
    - tuxpaint-stamps-default (Tux Paint's stamps: photos of fruit, vegetables, nuts,
      flowers and mushrooms, cut out on transparency).

Photos that are drawings, renders or cartoons in those packages are not in the CSV. Its
columns: ``file`` (where the photo goes under DIR), ``domain`` (animal, food, flower, scene,
or several joined by '+', or none), ``source``, ``path`` (a ``skimage.data`` function, a
scikit-learn sample, a file of the Debian package, or ``BUNDLE.rcc:PATH`` inside a GCompris
resource) and ``note`` (what the photo shows, where the name does not say).
"""

from __future__ import annotations

import csv
import io
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
LABELS = HERE / "precision_photos.csv"

#: Debian package -> the folder (inside the package) that the CSV's paths start from.
PACKAGES = {
    "palapeli": ("palapeli-data", "usr/share/palapeli/collection"),
    "opencv": ("opencv-doc", "usr/share/doc/opencv-doc/examples"),
    "gcompris": ("gcompris-qt-data", "usr/share/gcompris-qt/rcc"),
    "tuxpaint": ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps"),
}


def read_rcc(data: bytes) -> dict[str, bytes]:
    """The files of a Qt binary resource (``.rcc``, format versions 1-3), by path.

    Layout as written by Qt's ``rcc`` (qtbase src/tools/rcc/rcc.cpp): a 'qres' header with
    the offsets of the tree, data and names; tree nodes of 14 bytes (22 from version 2,
    with a modification time); flags 1 = zlib (qCompress: a 4-byte size, then zlib),
    2 = directory, 4 = zstd.
    """
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node = 22 if version >= 2 else 14
    out: dict[str, bytes] = {}

    def name(offset: int) -> str:
        (n,) = struct.unpack(">H", data[names + offset : names + offset + 2])
        return data[names + offset + 6 : names + offset + 6 + 2 * n].decode("utf-16-be")

    def walk(i: int, prefix: str) -> None:
        p = tree + i * node
        name_offset, flags = struct.unpack(">IH", data[p : p + 6])
        here = f"{prefix}/{name(name_offset)}" if i else ""
        if flags & 2:
            count, first = struct.unpack(">II", data[p + 6 : p + 14])
            for child in range(first, first + count):
                walk(child, here)
            return
        (offset,) = struct.unpack(">I", data[p + 10 : p + 14])
        (size,) = struct.unpack(">I", data[payload + offset : payload + offset + 4])
        raw = data[payload + offset + 4 : payload + offset + 4 + size]
        if flags & 4:
            raise ValueError(f"{here}: zstd-compressed resources are not supported")
        out[here.lstrip("/")] = zlib.decompress(raw[4:]) if flags & 1 else raw

    walk(0, "")
    return out


def package_root(source: str, work: Path) -> Path:
    """Where the files of ``source``'s Debian package are: installed, or unpacked in ``work``."""
    package, inside = PACKAGES[source]
    installed = Path("/") / inside
    if installed.is_dir():
        return installed
    unpacked = work / package
    if not (unpacked / inside).is_dir():
        try:
            subprocess.run(["apt-get", "download", package], cwd=work, check=True)
            (deb,) = work.glob(f"{package}_*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        except (OSError, ValueError, subprocess.CalledProcessError) as e:
            sys.exit(
                f"cannot fetch the Debian package {package} ({e}); on a Debian or "
                f"Ubuntu machine, 'apt-get update' first, or install it"
            )
    return unpacked / inside


def sample(source: str, name: str) -> Image.Image:
    if source == "skimage":
        import numpy as np
        from skimage import data

        a = getattr(data, name)()
        if isinstance(a, tuple):  # stereo_motorcycle: (left, right, disparity)
            a = a[0]
        if a.dtype == bool:
            a = a.astype(np.uint8) * 255
        return Image.fromarray(a)
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image(name))


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB, with anything transparent composited on white (Tux Paint's cut-outs)."""
    if im.mode in ("RGBA", "LA", "P", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    with LABELS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        roots: dict[str, Path] = {}
        rcc: dict[str, dict[str, bytes]] = {}
        for row in rows:
            source, path = row["source"], row["path"]
            dest = out / row["file"]
            if dest.exists():
                continue
            if source in ("skimage", "sklearn"):
                im = sample(source, path)
            else:
                if source not in roots:
                    roots[source] = package_root(source, work)
                if source == "gcompris":
                    # path: <resource file>.rcc:<path inside it>
                    bundle, inner = path.split(":", 1)
                    if bundle not in rcc:
                        rcc[bundle] = read_rcc((roots[source] / bundle).read_bytes())
                    im = Image.open(io.BytesIO(rcc[bundle][inner]))
                else:
                    im = Image.open(roots[source] / path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp_file = dest.with_suffix(".part")
            to_rgb(im).save(tmp_file, "JPEG", quality=92)
            tmp_file.replace(dest)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(rows)} photos in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
