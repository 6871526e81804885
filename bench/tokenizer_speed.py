"""Tokenizing prompts: phototag's BPE port (tokenizer.py) against CLIP's tokenizer.json run by
the tokenizers library (hftokenizer.py), on the default vocabularies' prompts and on 3,000
mixed strings, in one run. Needs open_clip (the test extra) for CLIP's vocabulary file.

    python bench/tokenizer_speed.py
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from phototag.models.catalog import Catalog
from phototag.models.hftokenizer import HubTokenizer, clip_bpe_tokenizer
from phototag.models.tokenizer import Tokenizer
from phototag.models.zeroshot import load_vocabulary


def best_of(n: int, make: object, texts: list[str]) -> tuple[float, float]:
    """(load, tokenize) seconds, the best of ``n`` fresh tokenizers (no warm BPE cache)."""
    loads, runs = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        tok = make()  # type: ignore[operator]
        t1 = time.perf_counter()
        tok(texts)
        loads.append(t1 - t0)
        runs.append(time.perf_counter() - t1)
    return min(loads), min(runs)


def main() -> None:
    import open_clip

    vocab = Path(open_clip.tokenizer.default_bpe())
    catalog = Catalog.discover()
    prompts = [t for v in catalog.vocabularies.values() for row in load_vocabulary(v).texts()
               for t in row]  # fmt: skip
    rng = random.Random(0)
    words = [w for p in prompts for w in p.split()] + ["海辺で遊ぶ子供たち", "手巻き寿司", "🍣"]
    mixed = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        clip_bpe_tokenizer(vocab).save(str(path))
        for name, texts in (("vocabulary prompts", prompts), ("mixed strings", mixed)):
            port = best_of(3, lambda: Tokenizer(vocab), texts)
            hub = best_of(3, lambda: HubTokenizer(path, 77, clean="lower"), texts)
            print(f"{name} ({len(texts)}): tokenizing: port {port[1]:.3f} s, tokenizers "
                  f"{hub[1]:.3f} s, ratio {port[1] / hub[1]:.1f}x; loading: port {port[0]:.3f} s, "
                  f"tokenizers {hub[0]:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
