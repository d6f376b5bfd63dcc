"""Splitting a streamed reply into sentences, in Chinese and English, as the tokens arrive."""

from __future__ import annotations

import re

# Closing marks that end a sentence at once (CJK ones need no following space).
_CJK_END = "。！？；…\n"
_LATIN_END = ".!?;"
_CLOSERS = "\"'”’）)]」』"
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "no", "jr", "sr"}


class SentenceSplitter:
    """Feed text pieces; get back every sentence completed so far. ``flush`` returns the rest.

    A Latin full stop ends a sentence only once the next character shows it is not a decimal point
    or an abbreviation, so "3.14" and "Dr. Smith" stay whole. Sentences shorter than ``min_chars``
    are joined to the next, so TTS never gets a lone "OK."."""

    def __init__(self, min_chars: int = 6):
        self.min_chars = min_chars
        self._buf = ""
        self._pending = ""

    def feed(self, piece: str) -> list[str]:
        self._buf += piece
        out: list[str] = []
        while True:
            cut = self._find_end(self._buf)
            if cut is None:
                break
            out += self._emit(self._buf[:cut])
            self._buf = self._buf[cut:]
        return out

    def flush(self) -> list[str]:
        out = self._emit(self._buf, force=True)
        self._buf = ""
        if self._pending.strip():
            out.append(self._pending.strip())
        self._pending = ""
        return out

    def _emit(self, sentence: str, force: bool = False) -> list[str]:
        text = (self._pending + sentence.lstrip()).strip()
        if not text:
            self._pending = ""
            return []
        if len(_letters(text)) < self.min_chars and not force:
            self._pending = text + ("" if _is_cjk(text[-1]) else " ")
            return []
        self._pending = ""
        return [text]

    @staticmethod
    def _find_end(s: str) -> int | None:
        for i, ch in enumerate(s):
            if ch in _CJK_END:
                return _after_closers(s, i + 1)
            if ch in _LATIN_END:
                j = _after_closers(s, i + 1)
                if j >= len(s):
                    return None  # wait: the next piece tells whether this ends the sentence
                if not s[j].isspace():
                    continue  # "3.14", "e.g.x", "Hello.World"
                if ch == "." and _word_before(s, i).lower() in _ABBREVIATIONS:
                    continue
                return j
        return None


def _after_closers(s: str, j: int) -> int:
    while j < len(s) and (s[j] in _CLOSERS or s[j] in _CJK_END or s[j] in _LATIN_END):
        j += 1
    return j


def _word_before(s: str, i: int) -> str:
    m = re.search(r"([A-Za-z.]+)$", s[:i])
    return m.group(1) if m else ""


def _letters(text: str) -> str:
    return re.sub(r"[\W_]+", "", text)


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef"


def split_sentences(text: str, min_chars: int = 6) -> list[str]:
    sp = SentenceSplitter(min_chars)
    return sp.feed(text) + sp.flush()


def ends_sentence(word: str) -> bool:
    """Whether a word with its punctuation ("soon.", "你。", "Dr.") ends a sentence, by the same rules
    as ``SentenceSplitter``: "Dr." and "e.g." do not."""
    core = word.rstrip(_CLOSERS)
    if not core:
        return False
    if core[-1] in _CJK_END:
        return True
    if core[-1] not in _LATIN_END:
        return False
    return not (core[-1] == "." and _word_before(core, len(core) - 1).lower() in _ABBREVIATIONS)
