"""The LLM stage: a chat history in, reply tokens out as they are generated."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class LLM(ABC):
    """A chat model. ``stream`` must not change ``messages``; the history has one owner."""

    #: how many tokens of history the model can take; the history is trimmed to fit
    context_tokens: int = 4096
    #: tokens kept free for the reply when the history is trimmed
    reply_tokens: int = 512
    #: tokens a chat template adds around each message
    message_overhead: int = 4

    @abstractmethod
    def stream(self, messages: list[Message]) -> Iterator[str]:
        """Yield the reply to ``messages`` piece by piece. Failures raise ``StageError``."""

    def count_tokens(self, text: str) -> int:
        """A cheap estimate; backends with a tokenizer override it."""
        # CJK characters are about one token each, other scripts about four characters a token.
        cjk = sum(1 for ch in text if "\u3000" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
        return cjk + (len(text) - cjk + 3) // 4
