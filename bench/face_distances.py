"""Where the face match distance comes from: descriptor distances on real faces, in one run.

    python bench/face_distances.py [--messi PATH]

  one person     each of scikit-image's astronaut and cameraman (and, if given, OpenCV's
                 samples/data/messi5.jpg from the Debian package opencv-doc) cropped, halved,
                 rotated, darkened, brightened, flattened, mirrored and JPEG-compressed:
                 cosine distances between copies of one face, and between different people
  small faces    each face shrunk to 40, 32, 24 and 16 pixels high: distance to itself
  LFW            100 faces of scikit-image's lfw_subset (25 px crops, upscaled): all pairwise
                 distances (identities unknown; some may be one person), and detection on its
                 100 faces and 100 non-faces

phototag.faces.grouping.MATCH_DISTANCE and phototag.faces.analyzer.MIN_DESCRIBE_PX are chosen
from these figures (docs/people.md, "How the numbers were chosen").
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageEnhance  # noqa: E402

import phototag.faces.analyzer as analyzer_module  # noqa: E402
from phototag.faces.analyzer import Face, FaceAnalyzer  # noqa: E402
from phototag.faces.grouping import MATCH_DISTANCE  # noqa: E402
from phototag.models.catalog import Catalog  # noqa: E402


def rgb(a: np.ndarray) -> np.ndarray:
    a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
    return np.ascontiguousarray(a.astype(np.uint8))


def variants(a: np.ndarray) -> dict[str, np.ndarray]:
    im = Image.fromarray(a)
    w, h = im.size
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=40)
    return {
        "original": a,
        "cropped": np.asarray(im.crop((w // 10, 0, w - w // 10, h - h // 5))),
        "half": np.asarray(im.resize((w // 2, h // 2), Image.Resampling.BICUBIC)),
        "rot10": np.asarray(im.rotate(10, expand=True)),
        "rot-15": np.asarray(im.rotate(-15, expand=True)),
        "dark": np.asarray(ImageEnhance.Brightness(im).enhance(0.6)),
        "bright": np.asarray(ImageEnhance.Brightness(im).enhance(1.4)),
        "flat": np.asarray(ImageEnhance.Contrast(im).enhance(0.6)),
        "mirrored": np.asarray(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "jpeg40": np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")),
    }


def biggest(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: f.area)


def main() -> None:
    from skimage import data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--messi", type=Path, default=Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")
    )
    args = ap.parse_args()
    an = FaceAnalyzer(Catalog.discover())
    an.load()
    people = {"astronaut": rgb(data.astronaut()), "camera": rgb(data.camera())}
    if args.messi.exists():
        people["messi"] = rgb(np.asarray(Image.open(args.messi).convert("RGB")))
    print(f"match distance {MATCH_DISTANCE}; people: {', '.join(people)}")
    vecs = []
    for who, a in people.items():
        for how, img in variants(a).items():
            found = [
                f for f in an.analyze([np.ascontiguousarray(img)])[0] if f.descriptor is not None
            ]
            if not found:
                print(f"  {who} {how}: no describable face")
                continue
            vecs.append((who, how, biggest(found).descriptor))
    same, diff = [], []
    for (p, h1, a), (q, h2, b) in itertools.combinations(vecs, 2):
        (same if p == q else diff).append((1 - float(a @ b), f"{p}/{h1}", f"{q}/{h2}"))
    print(
        f"one person:  max {max(same)[0]:.3f}  mean {np.mean([s[0] for s in same]):.3f}  worst pair {max(same)[1:]}"
    )
    print(
        f"different:   min {min(diff)[0]:.3f}  mean {np.mean([d[0] for d in diff]):.3f}  closest pair {min(diff)[1:]}"
    )

    analyzer_module.MIN_DESCRIBE_PX = 1  # describe every face, to see how small ones drift
    for who, a in people.items():
        f0 = biggest(an.analyze([a])[0])
        h0 = (f0.box[3] - f0.box[1]) * a.shape[0]
        row = []
        for px in (40, 32, 24, 16):
            s = px / h0
            if s > 1:
                continue
            im = Image.fromarray(a).resize((max(1, round(a.shape[1] * s)), max(1, round(a.shape[0] * s))),
                                           Image.Resampling.BILINEAR)  # fmt: skip
            found = an.analyze([np.ascontiguousarray(np.asarray(im))])[0]
            if not found:
                row.append(f"{px} px: not found")
                continue
            f = biggest(found)
            assert f.descriptor is not None and f0.descriptor is not None
            row.append(f"{px} px: {1 - float(f.descriptor @ f0.descriptor):.3f}")
        print(f"small {who} (full size {h0:.0f} px): " + ", ".join(row))

    lfw = data.lfw_subset()

    def canvas(i: int) -> np.ndarray:
        big = np.asarray(
            Image.fromarray((lfw[i] * 255).astype(np.uint8)).resize(
                (96, 96), Image.Resampling.BICUBIC
            )
        )
        c = np.full((288, 288), 128, np.uint8)
        c[96:192, 96:192] = big
        return np.stack([c] * 3, -1)

    faces = [an.analyze([canvas(i)])[0] for i in range(100)]
    non = [an.analyze([canvas(i)])[0] for i in range(100, 200)]
    print(f"LFW subset: faces found in {sum(bool(f) for f in faces)}/100 faces, "
          f"in {sum(bool(f) for f in non)}/100 non-faces")  # fmt: skip
    d = [1 - float(a[0].descriptor @ b[0].descriptor)  # type: ignore[operator]
         for a, b in itertools.combinations([f for f in faces if f and f[0].descriptor is not None], 2)]  # fmt: skip
    print(
        f"LFW pairwise ({len(d)}): min {min(d):.3f}  1st percentile {np.percentile(d, 1):.3f}  "
        f"median {np.median(d):.3f}  pairs under the match distance {sum(x <= MATCH_DISTANCE for x in d)}"
    )


if __name__ == "__main__":
    main()
