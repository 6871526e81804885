"""CLIP's byte-pair-encoding tokenizer, without torch.

The same algorithm as OpenAI CLIP's ``SimpleTokenizer`` (MIT, Copyright (c) 2021 OpenAI),
as OpenCLIP ships it: ftfy + HTML unescape, whitespace collapsed, lower case, the same
split pattern, the same merges from ``bpe_simple_vocab_16e6.txt.gz``, then
``<start_of_text> ... <end_of_text>`` padded with zeros or cut to the context length (the
last kept token replaced by ``<end_of_text>``). A test compares the ids with OpenCLIP's on
thousands of strings; anything that differs here would silently change every text
embedding, so keep this a faithful port rather than an improvement.
"""

from __future__ import annotations

import gzip
import html
import itertools
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError

#: Merges used by CLIP: the file's lines 1..48894 (49152 tokens - 256 bytes - 2 specials).
_MERGES = 49152 - 256 - 2
SPECIAL_TOKENS = ("<start_of_text>", "<end_of_text>")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """Every byte as a printable character (the reversible byte -> symbol table of GPT-2)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def clean(text: str) -> str:
    """OpenCLIP's ``lower`` cleaning: ftfy, HTML entities twice, whitespace, lower case."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(word))


class Tokenizer:
    """Text -> (N, context_length) int64 token ids."""

    def __init__(self, vocab_path: Path, context_length: int = 77) -> None:
        import regex

        try:
            lines = gzip.decompress(vocab_path.read_bytes()).decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise ModelError(f"cannot read the tokenizer vocabulary {vocab_path}: {e}") from None
        merges = [tuple(m.split()) for m in lines[1 : _MERGES + 1]]
        if len(merges) != _MERGES or any(len(m) != 2 for m in merges):
            raise ModelError(f"{vocab_path} is not a CLIP BPE vocabulary")
        self.byte_encoder = bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += list(SPECIAL_TOKENS)
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.cache: dict[str, str] = {t: t for t in SPECIAL_TOKENS}
        self.pattern = regex.compile(
            "|".join(SPECIAL_TOKENS)
            + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )
        self.sot = self.encoder[SPECIAL_TOKENS[0]]
        self.eot = self.encoder[SPECIAL_TOKENS[1]]
        self.context_length = context_length

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = (*token[:-1], token[-1] + "</w>")
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        inf = float("inf")
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, inf))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            merged: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    merged.extend(word[i:])
                    break
                merged.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` without the start/end tokens and without truncation."""
        ids: list[int] = []
        for token in self.pattern.findall(clean(text)):
            symbols = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(symbols).split(" "))
        return ids

    def __call__(self, texts: list[str]) -> np.ndarray:
        n = self.context_length
        out = np.zeros((len(texts), n), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > n:
                ids = ids[:n]
                ids[-1] = self.eot
            out[row, : len(ids)] = ids
        return out
