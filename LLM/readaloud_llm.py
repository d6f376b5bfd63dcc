"""No model: the reply is the user's own text, so the avatar reads out what was typed or said.

Useful to test TTS and the talking head without an LLM, and for presenters who script every line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app_modules.options import Declared
from LLM.base import LLM, Message

# A word with the spaces after it, or one CJK character (those scripts do not separate words).
_PIECE = re.compile(r"[\u3000-\u9fff\uac00-\ud7af]|[^\s\u3000-\u9fff\uac00-\ud7af]+\s*|\s+")


class ReadAloudLLM(LLM):
    """Yields the last user message back in word-sized pieces, like a streaming model would."""

    @dataclass(frozen=True)
    class Options(Declared, label="read-aloud"):
        pass

    context_tokens = 1 << 20  # it reads nothing but the last message; never trim for it

    def __init__(self, options: Options | None = None, checkpoints: Any = None):
        self.options = options or self.Options()

    def stream(self, messages: list[Message]) -> Iterator[str]:
        text = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        yield from _PIECE.findall(text.strip())
