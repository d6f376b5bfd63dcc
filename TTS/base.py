"""The TTS stage: one sentence of text in, speech (and word timings where the backend has them) out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from app_modules.types import Audio, WordTiming


@dataclass(frozen=True)
class Speech:
    """Synthesized speech; ``words`` is empty when the backend gives no timings."""

    audio: Audio
    words: tuple[WordTiming, ...] = ()


class TTS(ABC):
    """A voice. ``synthesize`` is called once per sentence, so the first sentence is heard early."""

    @abstractmethod
    def synthesize(self, text: str) -> Speech:
        """Speak ``text``. Failures raise ``StageError``."""
