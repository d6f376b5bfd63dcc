"""Splitting a streamed reply into sentences, in Chinese and English, as the tokens arrive."""

from __future__ import annotations

import re

# Closing marks that end a sentence at once (CJK ones need no following space).
_CJK_END = "。！？；…\n"
_LATIN_END = ".!?;"
_CLOSERS = "\"'”’）)]」』"
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "no", "jr", "sr"}
# where a sentence too long to wait for is cut instead (after the last of these in the window)
_SOFT_BREAKS = ",，、:：- "


class SentenceSplitter:
    """Feed text pieces; get back every sentence completed so far. ``flush`` returns the rest.

    A Latin full stop ends a sentence only once the next character shows it is not a decimal point
    or an abbreviation, so "3.14" and "Dr. Smith" stay whole. Sentences shorter than ``min_chars``
    are joined to the next, so TTS never gets a lone "OK.". A run longer than ``max_chars`` without
    a sentence end is cut at its last comma or space, so speech starts even for text with no full stop.

    The work is linear in the text: each character is examined about once, however small the pieces
    (``scanned`` counts the characters examined)."""

    def __init__(self, min_chars: int = 6, max_chars: int = 400):
        self.min_chars = min_chars
        self.max_chars = max(max_chars, 16)
        self._buf = ""
        self._scan = 0  # where the search for the next sentence end resumes in _buf
        self._pending = ""
        self.scanned = 0

    def feed(self, piece: str) -> list[str]:
        self._buf += piece
        out: list[str] = []
        start = 0  # the unsent text is _buf[start:]; sliced off once, at the end
        while True:
            cut = self._find_end(start)
            if cut is None:
                if self._scan - start < self.max_chars:
                    break
                cut = self._soft_cut(start)
            out += self._emit(self._buf[start:cut])
            start = self._scan = cut
        if start:
            self._buf = self._buf[start:]
            self._scan -= start
        return out

    def flush(self) -> list[str]:
        out = self._emit(self._buf, force=True)
        self._buf, self._scan = "", 0
        if self._pending.strip():
            out.append(self._pending.strip())
        self._pending = ""
        return out

    def _emit(self, sentence: str, force: bool = False) -> list[str]:
        text = (self._pending + sentence.lstrip()).strip()
        if not text:
            self._pending = ""
            return []
        if not force and len(text) <= 2 * self.min_chars and len(_letters(text)) < self.min_chars:
            self._pending = text + ("" if _is_cjk(text[-1]) else " ")
            return []
        self._pending = ""
        return [text]

    def _find_end(self, start: int) -> int | None:
        """The end of the first complete sentence after ``start``, or None; remembers in ``_scan`` where
        the next call resumes (a full stop at the very end waits there for the next piece)."""
        s, n = self._buf, len(self._buf)
        limit = min(n, start + self.max_chars)  # beyond it the sentence is cut anyway
        i = max(self._scan, start)
        while i < limit:
            ch = s[i]
            self.scanned += 1
            if ch in _CJK_END:
                self._scan = i
                return _after_closers(s, i + 1)
            if ch in _LATIN_END:
                j = _after_closers(s, i + 1)
                self.scanned += j - i - 1
                if j >= n:
                    self._scan = i  # wait: the next piece tells whether this ends the sentence
                    return None
                if (s[j].isspace() and not (ch == "." and _word_before(s, i, start).lower() in _ABBREVIATIONS)) \
                        or any(c in _CJK_END for c in s[i + 1:j]):
                    self._scan = i
                    return j
                i = j  # "3.14", "e.g.x", "Hello.World", "Dr. Smith": not an end
                continue
            i += 1
        self._scan = max(i, limit)
        return None

    def _soft_cut(self, start: int) -> int:
        window = self._buf[start:start + self.max_chars]
        at = max(window.rfind(c) for c in _SOFT_BREAKS)
        return start + (at + 1 if at > self.max_chars // 4 else len(window))


def _after_closers(s: str, j: int) -> int:
    while j < len(s) and (s[j] in _CLOSERS or s[j] in _CJK_END or s[j] in _LATIN_END):
        j += 1
    return j


def _word_before(s: str, i: int, start: int = 0) -> str:
    """The letters and dots just before ``s[i]`` (at most 16: longer is no abbreviation)."""
    j = i
    while j > max(start, i - 16) and (s[j - 1].isascii() and (s[j - 1].isalpha() or s[j - 1] == ".")):
        j -= 1
    return s[j:i]


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
