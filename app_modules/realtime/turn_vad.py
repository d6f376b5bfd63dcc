"""Streaming turn detection: Silero VAD over live microphone audio, one decision per 32 ms window.

``TurnDetector.feed`` takes 16 kHz mono float32 chunks of any length (browser frames are 10 or 20 ms)
and returns what happened in them: the user started speaking (``SpeechStarted``, used for barge-in)
and the user finished an utterance (``UtteranceEnded`` with its audio, used to start a turn). A
``Paused`` in between says the user went quiet long enough that the utterance may be over, so the
transcript can be started before the end-of-turn silence has run out.

Each detector owns its own model instance, because Silero keeps recurrent state between windows and
two sessions sharing one model would mix their audio up. The ONNX model loads in milliseconds from
the ``silero-vad`` wheel (``pip install silero-vad``); nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app_modules.types import Audio

SAMPLE_RATE = 16000
WINDOW = 512  # samples per Silero decision at 16 kHz (32 ms)


@dataclass(frozen=True)
class TurnOptions:
    """When speech counts as the user talking, and when their turn is over."""

    threshold: float = 0.5  # speech probability that starts (or continues) speech
    # below this a window counts as silence; between the two the previous state holds (hysteresis)
    neg_threshold: float = 0.35
    # speech must last this long before it counts: shorter bursts (clicks, a cough) start nothing.
    # It is also the barge-in delay, so it stays well under the 300 ms the avatar has to stop in.
    onset_ms: int = 96
    # the pause that ends a turn; shorter pauses (between words, a breath) keep the turn going
    end_silence_ms: int = 640
    # an utterance with less speech than this in total (a knock, "hm") is dropped, not answered
    min_utterance_ms: int = 250
    # a pause this long inside an utterance may be its end: ``Paused`` lets speech recognition start
    # early, so the transcript is ready when the turn ends; 0 turns it off
    speculate_ms: int = 224
    pre_roll_ms: int = 300  # audio kept before the onset so the first syllable is not clipped
    max_utterance_s: float = 28.0  # a monologue is cut here so ASR stays inside Whisper's window

    @classmethod
    def from_settings(cls, realtime) -> TurnOptions:
        """The options the settings file's ``realtime`` section sets (``config.RealtimeSettings``);
        the rest keep their defaults."""
        return cls(end_silence_ms=realtime.end_silence_ms, min_utterance_ms=realtime.min_utterance_ms,
                   onset_ms=realtime.onset_ms)


@dataclass(frozen=True)
class SpeechStarted:
    """The user started speaking; ``at`` is the stream time (seconds of audio fed) of the onset."""

    at: float


@dataclass(frozen=True)
class Paused:
    """The user paused long enough that this may be the end of the utterance (``audio`` so far).

    ``voiced`` counts the utterance's speech windows: an ``UtteranceEnded`` with the same count has
    had no speech since, so whatever was worked out from this audio still holds."""

    audio: Audio
    voiced: int


@dataclass(frozen=True)
class UtteranceEnded:
    """The user finished speaking. ``speech_end`` is the stream time of the last speech window."""

    audio: Audio
    speech_end: float
    voiced: int = 0


TurnEvent = SpeechStarted | Paused | UtteranceEnded


def load_model():
    """A fresh Silero VAD model (each detector keeps its own recurrent state)."""
    from ASR.vad import new_silero_model

    return new_silero_model("turn detection")


class TurnDetector:
    """Segments a live 16 kHz stream into utterances. Not thread-safe: one feeder per detector."""

    def __init__(self, options: TurnOptions = TurnOptions(), model=None):
        self.options = options
        self._model = model or load_model()
        self._pending = np.zeros(0, np.float32)  # samples not yet filling a window
        self._fed = 0  # windows processed, the stream clock
        self._history: list[np.ndarray] = []  # recent windows, for the pre-roll
        self._utterance: list[np.ndarray] = []
        self._speaking = False  # inside an utterance (onset confirmed, end not yet)
        self._voiced_run = 0  # consecutive speech windows before onset
        self._silent_run = 0  # consecutive silent windows inside an utterance
        self._voiced_total = 0
        self._last_voiced = 0  # window index of the last speech window
        self._in_speech = False  # the hysteresis state of the last window

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def stream_time(self) -> float:
        return self._fed * WINDOW / SAMPLE_RATE

    def reset(self) -> None:
        """Forget the stream (a new session, or after the microphone was muted)."""
        self._model.reset_states()
        self.__init__(self.options, self._model)

    def probability(self, window: np.ndarray) -> float:
        import torch

        return float(self._model(torch.from_numpy(window), SAMPLE_RATE).item())

    def feed(self, samples: np.ndarray) -> list[TurnEvent]:
        """Process ``samples`` (16 kHz mono float32); returns the events they completed, in order."""
        x = np.concatenate([self._pending, np.asarray(samples, np.float32).ravel()])
        n = len(x) // WINDOW
        self._pending = x[n * WINDOW:]
        events: list[TurnEvent] = []
        for i in range(n):
            event = self._window(np.ascontiguousarray(x[i * WINDOW:(i + 1) * WINDOW]))
            if event is not None:
                events.append(event)
        return events

    def _ms(self, windows: int) -> float:
        return windows * WINDOW * 1000 / SAMPLE_RATE

    def _window(self, w: np.ndarray) -> TurnEvent | None:
        o = self.options
        p = self.probability(w)
        self._fed += 1
        self._in_speech = p >= o.threshold or (self._in_speech and p >= o.neg_threshold)
        if not self._speaking:
            self._history.append(w)
            keep = max(1, int(np.ceil((o.pre_roll_ms + o.onset_ms) / self._ms(1))))
            del self._history[:-keep]
            self._voiced_run = self._voiced_run + 1 if self._in_speech else 0
            if self._voiced_run and self._ms(self._voiced_run) >= o.onset_ms:
                self._speaking = True
                self._utterance = list(self._history)
                self._history = []
                self._voiced_total = self._voiced_run
                self._silent_run = 0
                self._last_voiced = self._fed
                return SpeechStarted((self._fed - self._voiced_run) * WINDOW / SAMPLE_RATE)
            return None
        self._utterance.append(w)
        if self._in_speech:
            self._silent_run = 0
            self._voiced_total += 1
            self._last_voiced = self._fed
        else:
            self._silent_run += 1
        too_long = len(self._utterance) * WINDOW / SAMPLE_RATE >= o.max_utterance_s
        if self._ms(self._silent_run) >= o.end_silence_ms or too_long:
            return self._close()
        speculate = int(np.ceil(o.speculate_ms / self._ms(1))) if o.speculate_ms else 0
        if speculate and self._silent_run == speculate and self._ms(self._voiced_total) >= o.min_utterance_ms:
            return Paused(self._audio(), self._voiced_total)
        return None

    def _audio(self) -> Audio:
        """The utterance so far, with a short tail after its last speech, not the whole silence."""
        tail = max(0, self._silent_run - int(np.ceil(200 / self._ms(1))))
        windows = self._utterance[:len(self._utterance) - tail] if tail else self._utterance
        return Audio(np.concatenate(windows).astype(np.float32), SAMPLE_RATE)

    def _close(self) -> UtteranceEnded | None:
        o = self.options
        audio, voiced = self._audio(), self._voiced_total
        self._speaking = False
        self._utterance, self._voiced_run, self._silent_run, self._voiced_total = [], 0, 0, 0
        if self._ms(voiced) < o.min_utterance_ms:
            return None
        return UtteranceEnded(audio, self._last_voiced * WINDOW / SAMPLE_RATE, voiced)
