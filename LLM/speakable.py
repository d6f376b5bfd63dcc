"""Replies meant to be spoken: the instruction that asks for them, and clean-up before TTS.

``to_speech`` strips markdown, emoji and model "thinking" from a reply so a TTS voice does not read
out asterisks or code fences; the pipeline applies it to every sentence whatever the LLM was asked.
``with_instruction`` adds ``INSTRUCTION`` to the system message when a backend's ``speakable``
option is on. ``ThinkFilter`` drops ``<think>...</think>`` blocks (Qwen3, DeepSeek-R1) from a stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from LLM.base import Message

INSTRUCTION = ("Your reply will be spoken aloud by a voice. Answer in a few short, plain sentences. "
               "Do not use markdown, lists, tables, code, links or emoji.")

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)
_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`([^`]*)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
_QUOTE = re.compile(r"^\s{0,3}>\s?", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+", re.M)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.M)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$", re.M)
_EMPHASIS = re.compile(r"(?<!\w)(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
# Emoji and pictographs, variation selectors, zero-width joiners, keycap and flag parts.
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U0001F1E6-\U0001F1FF"
                    "\U00002B00-\U00002BFF\U0000FE00-\U0000FE0F\U0000200D\U000020E3\U0001F3FB-\U0001F3FF]")
_SPACES = re.compile(r"[ \t]+")


def to_speech(text: str) -> str:
    """``text`` as a voice should read it: no markdown, emoji, code fences, URLs or thinking."""
    text = _THINK.sub(" ", text)
    text = _CODE_BLOCK.sub(" ", text)  # code is unspeakable; the chat still shows it
    text = _INLINE_CODE.sub(r"\1", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _TABLE_RULE.sub("", text)
    text = _RULE.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    for _ in range(2):  # nested emphasis: **_word_**
        text = _EMPHASIS.sub(r"\2", text)
    text = _HTML_TAG.sub(" ", text)
    text = text.replace("|", " ").replace("#", " ")
    text = _EMOJI.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def with_instruction(messages: list[Message], instruction: str = INSTRUCTION) -> list[Message]:
    """A copy of ``messages`` whose system message ends with ``instruction`` (one is added if none)."""
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        if instruction not in out[0]["content"]:
            out[0]["content"] = f"{out[0]['content'].rstrip()}\n\n{instruction}".strip()
    else:
        out.insert(0, {"role": "system", "content": instruction})
    return out


class ThinkFilter:
    """Drops ``<think>...</think>`` from streamed pieces, even when a tag is split across pieces.

    Reasoning models put their private reasoning there; it must neither be spoken nor kept in the
    history. Feed each piece to ``feed`` and yield what it returns; call ``flush`` at the end."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._buf = ""
        self._inside = False

    def feed(self, piece: str) -> str:
        self._buf += piece
        out = []
        while self._buf:
            tag = self.CLOSE if self._inside else self.OPEN
            i = self._buf.find(tag)
            if i >= 0:
                if not self._inside:
                    out.append(self._buf[:i])
                self._buf = self._buf[i + len(tag):]
                self._inside = not self._inside
                continue
            # keep a tail that could be the start of a tag split across pieces
            keep = next((k for k in range(min(len(tag) - 1, len(self._buf)), 0, -1)
                         if tag.startswith(self._buf[-k:])), 0)
            if not self._inside:
                out.append(self._buf[:len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep:]
            break
        return "".join(out)

    def flush(self) -> str:
        rest, self._buf = ("" if self._inside else self._buf), ""
        return rest


def strip_think(pieces: Iterable[str]) -> Iterator[str]:
    """``pieces`` without their ``<think>`` blocks, streamed (non-empty pieces only)."""
    think = ThinkFilter()
    for piece in pieces:
        text = think.feed(piece)
        if text:
            yield text
    rest = think.flush()
    if rest:
        yield rest
