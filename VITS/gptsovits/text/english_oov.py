"""Pronunciations for English words that CMUdict lacks, the way the original GPT-SoVITS finds them.

The original asks g2p_en for out-of-vocabulary words: short ones (up to 3 letters, mostly acronyms)
are spelled, a possessive ``'s`` is read after its stem, compounds are split with ``wordsegment`` and
each part read, and anything left goes to g2p_en's neural model (a GRU encoder-decoder trained on
CMUdict). Importing g2p_en itself fetches NLTK data over the network at import time, so its weights
file (``checkpoint20.npz``, inside the wheel) is read directly and decoded here in numpy: no network.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from app_modules.errors import BackendUnavailableError

GRAPHEMES = ("<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
# g2p_en's output vocabulary, in the order of its weights' rows
PHONEMES = ("<pad>", "<unk>", "<s>", "</s>",
            *("AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH EH0 EH1 EH2 "
              "ER0 ER1 ER2 EY0 EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG OW0 OW1 OW2 OY0 OY1 OY2 P "
              "R S SH T TH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH").split())
_START, _END = PHONEMES.index("<s>"), PHONEMES.index("</s>")
MAX_PHONES = 20  # g2p_en's decoding limit
INSTALL = "`pip install --no-deps g2p_en wordsegment` (only their data files are used)"
_VOICELESS = {"P", "T", "K", "F", "TH", "HH"}
_SIBILANT = {"S", "Z", "SH", "ZH", "CH", "JH"}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NeuralG2P:
    """g2p_en's seq2seq model: one GRU reads the letters, another emits phones greedily."""

    def __init__(self, weights: str | Path):
        w = np.load(weights)
        self.w = {k: w[k].astype(np.float32) for k in w.files}
        self._letter = {g: i for i, g in enumerate(GRAPHEMES)}

    def _step(self, prefix: str, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """One GRU step (PyTorch's gate order: reset, update, new)."""
        w = self.w
        gi = w[f"{prefix}_w_ih"] @ x + w[f"{prefix}_b_ih"]
        gh = w[f"{prefix}_w_hh"] @ h + w[f"{prefix}_b_hh"]
        n = h.shape[0]
        r = _sigmoid(gi[:n] + gh[:n])
        z = _sigmoid(gi[n:2 * n] + gh[n:2 * n])
        cand = np.tanh(gi[2 * n:] + r * gh[2 * n:])
        return (1 - z) * cand + z * h

    def __call__(self, word: str) -> list[str]:
        w = self.w
        h = np.zeros(w["enc_w_hh"].shape[1], np.float32)
        for ch in [*word.lower(), "</s>"]:
            h = self._step("enc", w["enc_emb"][self._letter.get(ch, 1)], h)
        phones: list[str] = []
        prev = _START
        for _ in range(MAX_PHONES):
            h = self._step("dec", w["dec_emb"][prev], h)
            prev = int(np.argmax(w["fc_w"] @ h + w["fc_b"]))
            if prev == _END:
                break
            phones.append(PHONEMES[prev])
        return phones


def _package_file(package: str, name: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(f"English words outside the dictionary need {package}: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise BackendUnavailableError(f"{package} is installed without {name}; reinstall it: {INSTALL}")
    return path


@lru_cache(maxsize=1)
def neural_g2p() -> NeuralG2P:
    return NeuralG2P(_package_file("g2p_en", "checkpoint20.npz"))


@lru_cache(maxsize=1)
def _segmenter() -> Callable[[str], list[str]]:
    try:
        import wordsegment
    except ImportError as e:
        raise BackendUnavailableError(f"English compound words need wordsegment: {INSTALL}") from e
    wordsegment.load()  # its unigram and bigram counts, from files in the wheel
    return wordsegment.segment


def possessive(stem: list[str]) -> list[str]:
    """The stem's phones plus 's as S, AH0 Z or Z, by the stem's last sound."""
    if stem and stem[-1] in _VOICELESS:
        return [*stem, "S"]
    if stem and stem[-1] in _SIBILANT:
        return [*stem, "AH0", "Z"]
    return [*stem, "Z"]


def oov_phones(word: str, lookup: Callable[[str], list[str] | None]) -> list[str]:
    """Phones for a word ``lookup`` (the dictionary) does not know; ``lookup`` returns None for those."""
    w = word.lower()
    known = lookup(w)
    if known is not None:
        return known
    if len(w) <= 3:  # GPU, TTS, ...: acronyms are read letter by letter, "a" as the letter's name
        return [ph for ch in w for ph in (["EY1"] if ch == "a" else lookup(ch) or [])]
    m = re.fullmatch(r"([a-z]+)'s", w)
    if m:
        return possessive(oov_phones(m.group(1), lookup))
    parts = _segmenter()(w)
    if len(parts) > 1:
        return [ph for p in parts for ph in oov_phones(p, lookup)]
    return neural_g2p()(w)
