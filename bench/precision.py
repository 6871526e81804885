"""How often the ImageNet-mapped recognizers fire on real photos outside and inside their domain,
with the old scoring rule (a group scores the plain sum of its classes) and the shipped one (a
group must also be backed by the photo's most probable classes: ``[evidence]`` in the TOML), in
ONE run over the same model outputs.

    python bench/precision_photos.py PHOTOS     # once: gathers the labelled photos
    python bench/precision.py PHOTOS [--calibrate]

A recognizer *fires* on a photo when it proposes any tag at the default threshold (0.25) and
top-k (5), as ``phototag scan`` would; ``album --tag animal`` gathers exactly those photos.
Per recognizer it prints the recall (fires on photos labelled with its domain), the
false-positive rate (fires on photos labelled otherwise) and the precision, before and after.

``--calibrate`` searches ``[evidence] share`` (0, 0.1 .. 0.9) per recognizer for the highest
recall - 3 x false-positive rate (a wrong keyword in the user's only copy costs more than a
missing one; ties go to the weaker rule), prints the table, and checks the choice by leaving
each photo source out in turn: calibrated on the other sources, measured on the one left out.
``top`` stays at 5, the number of candidates a scan keeps (one knob less to fit to ~360
photos); the tables for top 3 and 10 are printed to show that it matters little.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phototag import config  # noqa: E402
from phototag.media.imaging import decode, preprocess  # noqa: E402
from phototag.models.backbones import Backbone  # noqa: E402
from phototag.models.catalog import Catalog  # noqa: E402
from phototag.models.recognizers import NO_EVIDENCE, Evidence, MappedRecognizer  # noqa: E402

LABELS = Path(__file__).resolve().with_name("precision_photos.csv")
RECOGNIZERS = ("animal", "food", "flower", "scene")
FP_COST = 3.0
TOPS = (3, 5, 10)
CALIBRATED_TOP = 5
SHARES = tuple(round(0.1 * i, 1) for i in range(10))


def load_rows(photos: Path) -> list[dict[str, str]]:
    with LABELS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [r["file"] for r in rows if not (photos / r["file"]).is_file()]
    if missing:
        sys.exit(
            f"{len(missing)} of {len(rows)} labelled photos are not in {photos} (first: "
            f"{missing[0]}); run: python bench/precision_photos.py {photos}"
        )
    return rows


def probabilities(backbone: Backbone, files: list[Path], batch: int = 32) -> np.ndarray:
    """The classifier's (N, 1000) probabilities, decoded and preprocessed as a scan does."""
    p = backbone.manifest.preprocess
    out = []
    for i in range(0, len(files), batch):
        x = np.stack(
            [
                preprocess(
                    decode(
                        f.read_bytes(), min_side=p.resize, max_pixels=config.DEFAULT_MAX_PIXELS
                    ).image,
                    p,
                )
                for f in files[i : i + batch]
            ]
        )
        probs = backbone.predict(x).probs
        assert probs is not None
        out.append(probs)
    return np.concatenate(out)


def fires(r: MappedRecognizer, probs: np.ndarray) -> np.ndarray:
    """(N,) bool: whether the recognizer proposes any tag, at the defaults of a scan."""
    ranked = r.candidates(
        _output(probs), threshold=config.DEFAULT_THRESHOLD, top_k=config.DEFAULT_TOP_K
    )
    return np.array([bool(c) for c in ranked])


def _output(probs: np.ndarray):  # type: ignore[no-untyped-def]
    from phototag.models.backbones import BackboneOutput

    return BackboneOutput(probs=probs, embeddings=np.zeros((len(probs), 1), np.float32))


@dataclasses.dataclass
class Rates:
    inside: int
    outside: int
    hits: int  # fires inside the domain
    false: int  # fires outside it

    @property
    def recall(self) -> float:
        return self.hits / self.inside if self.inside else float("nan")

    @property
    def fp_rate(self) -> float:
        return self.false / self.outside if self.outside else float("nan")

    @property
    def precision(self) -> float:
        fired = self.hits + self.false
        return self.hits / fired if fired else float("nan")

    @property
    def objective(self) -> float:
        return self.recall - FP_COST * self.fp_rate


def rates(fired: np.ndarray, inside: np.ndarray) -> Rates:
    return Rates(
        int(inside.sum()), int((~inside).sum()),
        int((fired & inside).sum()), int((fired & ~inside).sum()),
    )  # fmt: skip


def calibrate(
    r: MappedRecognizer, probs: np.ndarray, inside: np.ndarray
) -> tuple[Evidence, dict[Evidence, Rates]]:
    """The ``[evidence]`` with the highest recall - FP_COST x false-positive rate."""
    table = {}
    for top in (CALIBRATED_TOP,):
        for share in SHARES:
            ev = Evidence(top=top, share=share)
            table[ev] = rates(fires(dataclasses.replace(r, evidence=ev), probs), inside)
    # Highest objective; ties to the weaker rule (lower share, then fewer classes looked at).
    best = max(table, key=lambda e: (round(table[e].objective, 9), -e.share, -e.top))
    return (best if best.share > 0 else NO_EVIDENCE), table


def pct(x: float) -> str:
    return "  -  " if x != x else f"{100 * x:5.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", type=Path, help="the folder bench/precision_photos.py filled")
    ap.add_argument("--calibrate", action="store_true", help="search [evidence] per recognizer")
    args = ap.parse_args()
    rows = load_rows(args.photos)
    files = [args.photos / r["file"] for r in rows]
    domains = [set(r["domain"].split("+")) for r in rows]
    sources = np.array([r["source"] for r in rows])

    catalog = Catalog.discover()
    backbone = Backbone(catalog.backbone("efficientnet-lite0"), device=config.Device.CPU)
    t0 = time.perf_counter()
    probs = probabilities(backbone, files)
    took = time.perf_counter() - t0

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    counts = {d: sum(d in ds for ds in domains) for d in (*RECOGNIZERS, "none")}
    print(
        f"{len(rows)} real photos ({', '.join(f'{d} {n}' for d, n in counts.items())}) from "
        f"{', '.join(sorted(set(sources)))}; classified in {took:.1f} s"
    )
    print(
        f"fires = proposes any tag at threshold {config.DEFAULT_THRESHOLD}, top-k "
        f"{config.DEFAULT_TOP_K}.  before: groups score the sum of their classes; after: "
        "the shipped [evidence]\n"
    )
    print(
        f"{'recognizer':10} {'evidence':>16} {'in':>4} {'recall % before -> after':>25} "
        f"{'out':>4} {'false-positive % before -> after':>33} {'precision % before -> after':>28}"
    )
    wrong_after: dict[str, list[str]] = {}
    for name in RECOGNIZERS:
        shipped = catalog.recognizer(name)
        assert isinstance(shipped, MappedRecognizer)
        inside = np.array([name in d for d in domains])
        before = rates(fires(dataclasses.replace(shipped, evidence=NO_EVIDENCE), probs), inside)
        fired_after = fires(shipped, probs)
        after = rates(fired_after, inside)
        ev = shipped.evidence
        rule = f"top {ev.top}, {ev.share:.1f}" if ev.active else "off"
        print(
            f"{name:10} {rule:>16} {after.inside:4d} "
            f"{pct(before.recall):>14} -> {pct(after.recall)} "
            f"{after.outside:4d} {pct(before.fp_rate):>22} -> {pct(after.fp_rate)} "
            f"({before.false} -> {after.false}) "
            f"{pct(before.precision):>12} -> {pct(after.precision)}"
        )
        wrong_after[name] = [rows[i]["file"] for i in np.flatnonzero(fired_after & ~inside)]
    print("\nstill firing outside the domain (after):")
    for name, wrong in wrong_after.items():
        print(f"  {name}: {', '.join(wrong) if wrong else 'none'}")

    if args.calibrate:
        print(f"\ncalibration: highest recall - {FP_COST:g} x false-positive rate")
        for name in RECOGNIZERS:
            r = catalog.recognizer(name)
            assert isinstance(r, MappedRecognizer)
            inside = np.array([name in d for d in domains])
            best, _ = calibrate(r, probs, inside)
            print(
                f"  {name}: top {best.top}, share {best.share:.1f}"
                if best.active
                else f"  {name}: off"
            )
            for top in TOPS:
                got = {
                    s: rates(
                        fires(dataclasses.replace(r, evidence=Evidence(top, s)), probs), inside
                    )
                    for s in SHARES
                }
                cells = "  ".join(
                    f"{s:.1f}:{pct(g.recall).strip()}/{pct(g.fp_rate).strip()}"
                    for s, g in got.items()
                )
                print(f"    top {top:2d} (share:recall%/fp%)  {cells}")
            # Leave one source out: calibrate without it, measure on it.
            held = Rates(0, 0, 0, 0)
            for src in sorted(set(sources)):
                train, test = sources != src, sources == src
                ev, _ = calibrate(r, probs[train], inside[train])
                got = rates(fires(dataclasses.replace(r, evidence=ev), probs[test]), inside[test])
                held = Rates(held.inside + got.inside, held.outside + got.outside,
                             held.hits + got.hits, held.false + got.false)  # fmt: skip
            print(
                f"    leave-one-source-out: recall {pct(held.recall).strip()} %, "
                f"false positives {pct(held.fp_rate).strip()} % ({held.false} of {held.outside})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
