"""Tokenizers from a model's own ``tokenizer.json``, run by the Hugging Face ``tokenizers`` library.

This is how Immich runs the text encoders it publishes (immich_ml/models/clip/textual.py):
``Tokenizer.from_file``, padding to the context length with the ``pad_token`` of
``tokenizer_config.json``, truncation to the context length. One file covers every family:
CLIP's byte-level BPE (OpenAI and OpenCLIP models), SentencePiece Unigram (XLM-R for
M-CLIP, NLLB, SigLIP's Gemma/T5 vocabularies).

Before tokenizing, the text is cleaned as OpenCLIP cleans it for that model
(open_clip/tokenizer.py ``get_clean_fn``): ``lower`` (ftfy repair, HTML entities, whitespace
collapsed, lower case: CLIP's BPE), ``whitespace`` (the same without lower case: OpenCLIP's
``HFTokenizer`` default) or ``canonicalize`` (also punctuation removed: SigLIP). Immich
collapses whitespace only; ftfy's repairs (full-width Latin letters, half-width katakana,
mojibake) are what the models were trained with, so they are kept here -- which is also what
makes the ids equal to the BPE port in tokenizer.py on every string tested
(tests/test_hub_models.py).

NLLB-CLIP models read the text after its FLORES-200 language code (``jpn_Jpan``); as in
Immich, the code is put in front of the text, where the tokenizer finds it as a special token.
"""

from __future__ import annotations

import html
import string
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

#: ISO 639-1 language -> the FLORES-200 code NLLB-200 knows it by (Japanese: jpn_Jpan; Immich's
#: table says jpn_Hira, which is not among NLLB's language tokens).
FLORES200 = {
    "ar": "arb_Arab", "de": "deu_Latn", "en": "eng_Latn", "es": "spa_Latn", "fr": "fra_Latn",
    "hi": "hin_Deva", "id": "ind_Latn", "it": "ita_Latn", "ja": "jpn_Jpan", "ko": "kor_Hang",
    "nl": "nld_Latn", "pl": "pol_Latn", "pt": "por_Latn", "ru": "rus_Cyrl", "sv": "swe_Latn",
    "th": "tha_Thai", "tr": "tur_Latn", "uk": "ukr_Cyrl", "vi": "vie_Latn", "zh": "zho_Hans",
}  # fmt: skip

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def guess_language(text: str, default: str = "en") -> str:
    """``ja`` for text with kana, ``ko`` with hangul, else ``default``: enough for telling an
    NLLB text encoder what a search query is written in (Han characters alone are left to
    ``default``: they are Chinese or Japanese)."""
    for ch in text:
        o = ord(ch)
        if 0x3040 <= o <= 0x30FF or 0xFF66 <= o <= 0xFF9F:  # hiragana, katakana (half-width)
            return "ja"
        if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF:
            return "ko"
    return default


def basic_clean(text: str) -> str:
    """OpenCLIP's ``basic_clean``: ftfy's repairs, HTML entities unescaped twice, stripped."""
    import ftfy

    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def clean_text(text: str, how: str) -> str:
    """``text`` cleaned as OpenCLIP's ``lower``, ``whitespace`` or ``canonicalize`` does."""
    text = " ".join(basic_clean(text).split())
    if how == "lower":
        return text.lower()
    if how == "canonicalize":  # big_vision's prompt canonicalization, as OpenCLIP copies it
        return " ".join(text.replace("_", " ").translate(_PUNCTUATION).lower().split())
    return text


class HubTokenizer:
    """Text -> (N, context_length) int64 token ids, from a ``tokenizer.json``.

    ``pad_token`` is the token padding is made of (``tokenizer_config.json``'s); None: the
    tokenizer's own padding token, else id 0. ``language`` is an ISO 639-1 code, used only
    with ``language_prefix`` (NLLB): a text with kana or hangul gets Japanese's or Korean's
    code whatever ``language`` says (:func:`guess_language`), so prompts and queries in
    several languages each get their own. Raises :class:`ModelError` for a file the library cannot
    read.
    """

    def __init__(
        self,
        path: Path,
        context_length: int,
        *,
        clean: str = "whitespace",
        pad_token: str | None = None,
        language_prefix: bool = False,
        language: str = "en",
    ) -> None:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the library reports every kind of bad file as Exception
            raise ModelError(f"cannot read the tokenizer {path}: {e}") from None
        pad_id = 0
        if pad_token is not None:
            found = tok.token_to_id(pad_token)
            if found is None:
                raise ModelError(
                    f"{path}: the padding token {pad_token!r} is not in its vocabulary"
                )
            pad_id = found
        elif (padding := tok.padding) is not None:
            pad_token, pad_id = str(padding["pad_token"]), int(padding["pad_id"])
        tok.enable_padding(length=context_length, pad_id=pad_id, pad_token=pad_token or "")
        tok.enable_truncation(max_length=context_length)
        self.tokenizer: Any = tok
        self.context_length = context_length
        self.clean = clean
        self.language_prefix = language_prefix
        self.language = language.split("-")[0].lower()
        if language_prefix:
            code = FLORES200.get(self.language, FLORES200["en"])
            if tok.token_to_id(code) is None:
                raise ModelError(f"{path}: no language token {code!r} for language {language!r}")
        # No end-of-text shortcut: these encoders are run on all context_length tokens.
        self.eot: int | None = None

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, attention mask), both (N, context_length) int64; the mask is 1 for real
        tokens and 0 for padding (M-CLIP's XLM-R text towers take it as a second input)."""
        cleaned = [self._prefix(t) + clean_text(t, self.clean) for t in texts]
        encodings = self.tokenizer.encode_batch(cleaned)
        shape = (len(texts), self.context_length)
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(shape)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(shape)
        return ids, mask

    def _prefix(self, text: str) -> str:
        if not self.language_prefix:
            return ""
        code = FLORES200.get(guess_language(text, self.language), FLORES200["en"])
        return code if self.tokenizer.token_to_id(code) is not None else FLORES200["en"]

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts)[0]


def clip_bpe_tokenizer(vocab_path: Path) -> Any:
    """CLIP's BPE (``bpe_simple_vocab_16e6.txt.gz``) as a ``tokenizers.Tokenizer``: the
    ``tokenizer.json`` that transformers' ``CLIPTokenizerFast`` saves for OpenAI's CLIP, which
    is what Immich ships in ``textual/`` -- byte-level BPE with ``</w>`` word ends, NFC +
    whitespace + lower-case normalisation, CLIP's split pattern, ``<|startoftext|> $A
    <|endoftext|>`` around the ids (49406 and 49407, as in the port in tokenizer.py).
    Used to make tokenizer.json files for exports and tests; no download involved."""
    import gzip

    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    from .tokenizer import _MERGES, bytes_to_unicode

    try:
        lines = gzip.decompress(vocab_path.read_bytes()).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read the tokenizer vocabulary {vocab_path}: {e}") from None
    merges = [tuple(m.split()) for m in lines[1 : _MERGES + 1]]
    if len(merges) != _MERGES or any(len(m) != 2 for m in merges):
        raise ModelError(f"{vocab_path} is not a CLIP BPE vocabulary")
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(
        BPE(vocab=vocab, merges=[(a, b) for a, b in merges], continuing_subword_prefix="",
            end_of_word_suffix="</w>", fuse_unk=False, unk_token="<|endoftext|>")
    )  # fmt: skip
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(
            Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
            behavior="removed", invert=True,
        ),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])  # fmt: skip
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        ("<|endoftext|>", vocab["<|endoftext|>"]), ("<|startoftext|>", vocab["<|startoftext|>"]),
        trim_offsets=False, add_prefix_space=False,
    )  # fmt: skip
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    return tok
