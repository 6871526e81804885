"""Cost of the byte-preserving sidecar rewrite (issue 13, item 7), in ONE run.

    python bench/sidecar_rewrite.py [--rounds 200]

For each sidecar of tests/data/sidecars/ and for a darktable-style sidecar with a 2,000-step
edit history (about 1 MB), times reading it, setting the three keyword properties and
producing the new bytes, two ways: the splice phototag now does (``Sidecar.to_bytes``: expat
positions, only the edited properties replaced) and the whole-document lxml serialisation it
did before (``etree.tostring`` of the tree, which lost bytes around the root). Prints
milliseconds per rewrite and the ratio, measured in this one run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phototag.metadata.keywords import Field  # noqa: E402
from phototag.metadata.xmp import Sidecar, _parse  # noqa: E402

WANTED = {
    Field.SUBJECT: ["espresso", "cat"],
    Field.HIERARCHICAL: ["phototag|food|drink|espresso", "phototag|animal|cat"],
    Field.TAGSLIST: ["phototag/food/drink/espresso", "phototag/animal/cat"],
}


def big_darktable(steps: int) -> bytes:
    item = (
        '     <rdf:li darktable:num="{i}" darktable:operation="exposure" darktable:enabled="1"\n'
        '      darktable:params="00000000000080b9feffdf3f00004842000080c00100000001000000"\n'
        '      darktable:blendop_params="gz08eJxjYGBgYAFiCQYYOOHEgAZY0QWAgBGLGANDgz0Ej1Q"/>\n'
    )
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/" darktable:history_end="5">\n'
        "   <darktable:history>\n    <rdf:Seq>\n"
    )
    tail = (
        "    </rdf:Seq>\n   </darktable:history>\n"
        "   <dc:subject>\n    <rdf:Bag>\n     <rdf:li>Holiday</rdf:li>\n    </rdf:Bag>\n"
        "   </dc:subject>\n  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n"
    )
    return (head + "".join(item.format(i=i) for i in range(steps)) + tail).encode()


def splice(data: bytes) -> bytes:
    s = Sidecar(_parse(data, "bench"), data)
    current = s.fields()
    s.set_fields({f: [*current.get(f, []), *v] for f, v in WANTED.items()})
    return s.to_bytes()


def whole(data: bytes) -> bytes:
    from lxml import etree

    s = Sidecar(_parse(data, "bench"), data)
    current = s.fields()
    s.set_fields({f: [*current.get(f, []), *v] for f, v in WANTED.items()})
    body: bytes = etree.tostring(s.root.getroottree(), encoding="utf-8")
    return body + b"\n"


def per_call(fn: object, data: bytes, rounds: int) -> float:
    assert callable(fn)
    fn(data)  # warm
    start = time.perf_counter()
    for _ in range(rounds):
        fn(data)
    return (time.perf_counter() - start) / rounds * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    corpus = [p.read_bytes() for p in sorted((ROOT / "tests/data/sidecars").glob("*.xmp"))]
    big = big_darktable(2000)
    print(f"{platform.machine()}, Python {platform.python_version()}, {args.rounds} rounds each")
    print(f"{'sidecars':<34} {'splice ms':>10} {'lxml ms':>10} {'ratio':>7}")
    rows = [(f"corpus ({len(corpus)} files, summed)", corpus, args.rounds),
            (f"darktable, 2000 steps ({len(big) / 1e6:.1f} MB)", [big], max(3, args.rounds // 40))]  # fmt: skip
    for name, files, rounds in rows:
        a = sum(per_call(splice, d, rounds) for d in files)
        b = sum(per_call(whole, d, rounds) for d in files)
        print(f"{name:<34} {a:>10.3f} {b:>10.3f} {a / b:>7.2f}")


if __name__ == "__main__":
    main()
