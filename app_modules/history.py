"""The one owner of a conversation's multi-turn state.

A turn is committed only when it finished; a failed or cancelled turn leaves the history as it was
(an interrupted one commits only the part that was spoken). Keep one ``ChatHistory`` per session:
the LLM backends get the messages on every call and never store a conversation themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Message = dict[str, str]

# What a chat template adds around each message (role markers, separators), roughly, in tokens.
MESSAGE_OVERHEAD = 4


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str


@dataclass
class ChatHistory:
    """Persona plus finished turns, oldest first."""

    system_prompt: str = ""
    turns: list[Turn] = field(default_factory=list)
    #: how many old turns the last ``messages`` call left out to fit the context (for the UI and logs)
    dropped: int = field(default=0, compare=False)

    def messages(self, user_text: str, count_tokens: Callable[[str], int] | None = None,
                 max_tokens: int | None = None, reserve: int = 512,
                 overhead: int = MESSAGE_OVERHEAD) -> list[Message]:
        """The messages for the next reply: persona, as many recent turns as fit, the new user text.

        Oldest turns are dropped first so the prompt plus ``reserve`` reply tokens fit ``max_tokens``.
        ``overhead`` is what the chat template adds per message (a backend with a tokenizer measures
        it: ``llm.message_overhead``); one more is kept for the reply's own header.
        A turn is kept or dropped whole: half a turn would leave a question without its answer.
        The persona and the new text are always sent, even when they alone are too long; the
        backend's error then says so, which is better than silently cutting what the user said."""
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        tail = [{"role": "user", "content": user_text}]
        turns = list(self.turns)
        if count_tokens and max_tokens:
            budget = max_tokens - reserve - overhead - sum(count_tokens(m["content"]) + overhead
                                                           for m in head + tail)
            kept: list[Turn] = []
            for t in reversed(turns):
                cost = count_tokens(t.user) + count_tokens(t.assistant) + 2 * overhead
                if cost > budget:
                    break  # everything older goes too: a gap in the middle would confuse the model
                budget -= cost
                kept.append(t)
            turns = kept[::-1]
        self.dropped = len(self.turns) - len(turns)
        body: list[Message] = []
        for t in turns:
            body += [{"role": "user", "content": t.user}, {"role": "assistant", "content": t.assistant}]
        return head + body + tail

    def commit(self, user: str, assistant: str) -> None:
        """Record a finished turn. An empty reply (nothing was said) is not worth remembering."""
        if assistant.strip():
            self.turns.append(Turn(user, assistant))

    def undo(self) -> Turn | None:
        """Forget the last turn; returns it (so a UI can put the user's text back), or None."""
        return self.turns.pop() if self.turns else None

    def clear(self) -> None:
        """Forget every turn; the persona stays."""
        self.turns.clear()
        self.dropped = 0

    def as_pairs(self) -> list[tuple[str, str]]:
        return [(t.user, t.assistant) for t in self.turns]

    def __len__(self) -> int:
        return len(self.turns)
