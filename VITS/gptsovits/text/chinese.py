"""Mandarin text -> v2 phonemes (initial + toned final per character) with word2ph for BERT alignment.

Follows GPT-SoVITS's ``chinese2`` front end in its pypinyin mode (the g2pW neural polyphone model it
uses by default is not reimplemented): jieba POS segmentation, word merges, tone sandhi, then
pypinyin's strict initials/finals mapped to the opencpop-style symbols.
"""

from __future__ import annotations

import re

from VITS.gptsovits.text.numbers_zh import normalize_numbers
from VITS.gptsovits.text.symbols import PUNCTUATION
from VITS.gptsovits.text.tone_sandhi import merge_for_sandhi, modify_tones

_PUNCT_MAP = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
              "...": "…", "$": ".", "/": ",", "—": "-", "~": "…", "～": "…",
              ":": ",", ";": ","}
_PUNCT_RE = re.compile("|".join(re.escape(p) for p in sorted(_PUNCT_MAP, key=len, reverse=True)))
_KEEP = "".join(re.escape(p) for p in PUNCTUATION)


def normalize(text: str) -> str:
    """Numbers to words, punctuation to the six v2 marks, and everything else that is not a CJK
    ideograph dropped (the original also drops Latin letters in Chinese mode)."""
    text = normalize_numbers(text)
    text = text.replace("嗯", "恩").replace("呣", "母")  # pypinyin has no good reading for these
    text = _PUNCT_RE.sub(lambda m: _PUNCT_MAP[m.group()], text)
    text = re.sub(r"[^\u4e00-\u9fa5" + _KEEP + r"]+", "", text)
    return re.sub(f"([{_KEEP}])([{_KEEP}])+", r"\1", text)  # a run of marks counts once


def split_pinyin(initial: str, final: str) -> tuple[str, str]:
    """pypinyin's strict (initial, final-without-tone) -> the two v2 symbols (without the tone).

    Zero-initial syllables get a pseudo-initial: AA/EE/OO before a/e/o, y before i/ü, w before u; the
    written forms ian -> En and ie -> E keep the y-row vowels apart. zi/ci/si take i0, zhi/chi/shi/ri ir."""
    if not initial:
        head = final[0]
        if head in "aeo":
            return {"a": "AA", "e": "EE", "o": "OO"}[head], final
        if head == "i":
            return "y", {"i": "i", "in": "in", "ing": "ing", "ian": "En", "ie": "E"}.get(final, final[1:])
        if head == "u":
            return "w", {"u": "u", "uei": "ei", "uen": "en", "ueng": "eng"}.get(final, final[1:])
        if head == "v":
            return "y", final
        raise ValueError(f"unexpected pinyin final {final!r}")
    if initial in ("j", "q", "x") and final.startswith("u"):
        final = "v" + final[1:]  # written u after j/q/x is ü
    final = {"uei": "ui", "iou": "iu", "uen": "un"}.get(final, final)
    if final == "i" and initial in ("zh", "ch", "sh", "r"):
        final = "ir"
    elif final == "i" and initial in ("z", "c", "s"):
        final = "i0"
    return initial, final


def _erhua(word: str, finals: list[str]) -> list[str]:
    """A word-final 儿 read er2/er5 takes the tone of the syllable before it (花儿 -> hua1 er1)."""
    if len(finals) >= 2 and len(finals) == len(word) and word[-1] == "儿" and finals[-1] in ("er2", "er5"):
        finals = finals[:-1] + ["er" + finals[-2][-1]]
    return finals


def g2p(text: str) -> tuple[list[str], list[int]]:
    """Normalized text -> (phones, word2ph): each character gives 2 phones, each punctuation mark 1."""
    import jieba.posseg as psg
    from pypinyin import Style, lazy_pinyin

    phones: list[str] = []
    word2ph: list[int] = []
    for word, pos in merge_for_sandhi([(p.word, p.flag) for p in psg.lcut(text)]):
        if all(ch in PUNCTUATION for ch in word):
            phones += list(word)
            word2ph += [1] * len(word)
            continue
        initials = lazy_pinyin(word, style=Style.INITIALS, strict=True)
        finals = lazy_pinyin(word, style=Style.FINALS_TONE3, strict=True, neutral_tone_with_five=True)
        if len(finals) != len(word):
            raise ValueError(f"pypinyin could not split {word!r} into characters")
        finals = _erhua(word, modify_tones(word, pos, finals))
        for ch, c, v in zip(word, initials, finals, strict=True):
            if ch in PUNCTUATION:
                phones.append(ch)
                word2ph.append(1)
                continue
            new_c, new_v = split_pinyin(c, v[:-1])
            phones += [new_c, new_v + v[-1]]
            word2ph.append(2)
    return phones, word2ph
