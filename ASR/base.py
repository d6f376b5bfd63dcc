"""The ASR stage: 16 kHz mono speech in, text out."""

from __future__ import annotations

from abc import ABC, abstractmethod

from app_modules.types import Audio

SAMPLE_RATE = 16000


class ASR(ABC):
    """A speech recogniser. Weights are loaded once, in ``__init__``."""

    @abstractmethod
    def transcribe(self, audio: Audio, language: str | None = None) -> str:
        """Return the text spoken in ``audio`` (16 kHz mono float32); ``language`` None means detect."""
