"""The events a conversation turn yields, in the order a client receives them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples in [-1, 1] with their rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True)
class WordTiming:
    """One word (or sentence, where a backend has no word timings) and when it is heard."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    """What the user said, from ASR (or the typed text)."""

    text: str


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply as the LLM streams it."""

    text: str


@dataclass(frozen=True)
class SentenceAudio:
    """One sentence of the reply, spoken."""

    index: int
    text: str
    audio: Audio
    path: Path
    words: tuple[WordTiming, ...] = ()


@dataclass(frozen=True)
class SentenceVideo:
    """One sentence of the reply as a playable mp4 (video and audio)."""

    index: int
    text: str
    path: Path
    duration: float


@dataclass(frozen=True)
class TurnResult:
    """The end of a turn: the whole answer as one mp4 with its subtitles."""

    reply: str
    video: Path | None
    audio: Path | None
    subtitles: Path | None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StageFailed:
    """A stage failed; the history is as it was before the turn. ``bad_input``: the request's fault
    (text a voice cannot say, an unknown language), not the server's."""

    stage: str
    message: str
    bad_input: bool = False


@dataclass(frozen=True)
class Progress:
    """Long work under way (model loading, rendering)."""

    stage: str
    message: str
    fraction: float | None = None


Event = Transcript | TextDelta | SentenceAudio | SentenceVideo | TurnResult | StageFailed | Progress
