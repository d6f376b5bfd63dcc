"""The one owner of a conversation's multi-turn state.

A turn is committed only when it finished; a failed or cancelled turn leaves the history as it was
(an interrupted one commits only the part that was spoken)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Message = dict[str, str]


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str


@dataclass
class ChatHistory:
    system_prompt: str = ""
    turns: list[Turn] = field(default_factory=list)

    def messages(self, user_text: str, count_tokens: Callable[[str], int] | None = None,
                 max_tokens: int | None = None, reserve: int = 512) -> list[Message]:
        """The messages for the next reply: persona, as many recent turns as fit, the new user text.

        Oldest turns are dropped first so the prompt plus ``reserve`` reply tokens fit ``max_tokens``."""
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        tail = [{"role": "user", "content": user_text}]
        turns = list(self.turns)
        if count_tokens and max_tokens:
            budget = max_tokens - reserve - sum(count_tokens(m["content"]) + 4 for m in head + tail)
            kept: list[Turn] = []
            for t in reversed(turns):
                cost = count_tokens(t.user) + count_tokens(t.assistant) + 8
                if cost > budget:
                    break
                budget -= cost
                kept.append(t)
            turns = kept[::-1]
        body: list[Message] = []
        for t in turns:
            body += [{"role": "user", "content": t.user}, {"role": "assistant", "content": t.assistant}]
        return head + body + tail

    def commit(self, user: str, assistant: str) -> None:
        self.turns.append(Turn(user, assistant))

    def undo(self) -> Turn | None:
        return self.turns.pop() if self.turns else None

    def clear(self) -> None:
        self.turns.clear()

    def as_pairs(self) -> list[tuple[str, str]]:
        return [(t.user, t.assistant) for t in self.turns]
