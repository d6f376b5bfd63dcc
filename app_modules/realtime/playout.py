"""The avatar's output as it is played: sentence segments, the playback clock, and what was heard.

Audio is the master clock. The transport pulls audio in real time (``pull_audio``); the video frame
shown is the one that belongs to the audio position just played (``current_frame``), so lips stay in
sync whatever the transport's jitter. A sentence starts playing only once its first frame exists
(when it has video at all), so speech never runs ahead of the face at the start of a sentence.

Because the clock counts samples actually handed to the transport, ``heard_words`` tells exactly which
words the user heard when the avatar was interrupted: the only part of a reply worth remembering.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from app_modules.types import WordTiming


@dataclass
class Segment:
    """One sentence: its audio at the output rate, its words (turn times) and its frames as they render."""

    index: int
    text: str
    samples: np.ndarray  # float32 mono at the playout's rate
    start: float  # where the sentence begins in the turn's own timeline (the pipeline's word offset)
    words: tuple[WordTiming, ...]
    has_video: bool
    frames: list[np.ndarray] = field(default_factory=list)
    rendered: bool = False  # every frame is in (or there is no video)

    def ready(self) -> bool:
        return not self.has_video or bool(self.frames) or self.rendered


class Playout:
    """Thread-safe queue of segments and the playback position within the current turn."""

    def __init__(self, sample_rate: int, fps: int = 25):
        self.sample_rate = sample_rate
        self.fps = fps
        self._lock = threading.Lock()
        self._queue: deque[Segment] = deque()
        self._current: Segment | None = None
        self._pos = 0  # samples of the current segment already played
        self._played_s = 0.0  # turn time of the end of the last finished segment
        self._heard: list[str] = []  # text of sentences played to the end
        self._started = False  # at least one sample of this turn was played
        self._closed = False  # the turn will add no more segments

    # ---------------------------------------------------------------- producer side (turn thread)
    def add(self, segment: Segment) -> None:
        with self._lock:
            self._queue.append(segment)

    def close(self) -> None:
        """No more segments for this turn: once the queue drains, the turn is over."""
        with self._lock:
            self._closed = True

    def flush(self) -> tuple[str, float]:
        """Drop everything not yet played (barge-in); returns (the heard text, seconds played)."""
        with self._lock:
            heard = self._heard_locked()
            played = self._clock_locked()
            self._queue.clear()
            self._current = None
            self._pos = 0
            self._closed = True
            return heard, played

    def reset(self) -> None:
        """Start a new turn's timeline."""
        with self._lock:
            self._queue.clear()
            self._current, self._pos, self._played_s = None, 0, 0.0
            self._heard, self._started, self._closed = [], False, False

    # ------------------------------------------------------------------ consumer side (transport)
    def pull_audio(self, n: int) -> tuple[np.ndarray, bool]:
        """The next ``n`` samples and whether any of them were speech (else silence)."""
        out = np.zeros(n, np.float32)
        filled = 0
        with self._lock:
            while filled < n:
                seg = self._current
                if seg is None:
                    if not self._queue or not self._queue[0].ready():
                        break  # a gap: the next sentence is still being spoken or rendered
                    self._current = seg = self._queue.popleft()
                    self._pos = 0
                take = min(n - filled, len(seg.samples) - self._pos)
                out[filled:filled + take] = seg.samples[self._pos:self._pos + take]
                filled += take
                self._pos += take
                self._started = True
                if self._pos >= len(seg.samples):
                    self._played_s = seg.start + len(seg.samples) / self.sample_rate
                    self._heard.append(seg.text)
                    self._current, self._pos = None, 0
        return out, filled > 0

    def current_frame(self) -> np.ndarray | None:
        """The rendered frame for the audio just played; None between sentences and before speech."""
        with self._lock:
            seg = self._current
            if seg is None or not seg.frames:
                return None
            # a frame still rendering: hold the newest one rather than freeze on the idle face
            return seg.frames[min(int(self._pos / self.sample_rate * self.fps), len(seg.frames) - 1)]

    # ------------------------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        """Something is playing or queued."""
        with self._lock:
            return self._current is not None or bool(self._queue)

    @property
    def finished(self) -> bool:
        """The turn is closed and everything in it was played."""
        with self._lock:
            return self._closed and self._current is None and not self._queue

    @property
    def started(self) -> bool:
        with self._lock:
            return self._started

    def heard_text(self) -> str:
        with self._lock:
            return self._heard_locked()

    def _clock_locked(self) -> float:
        if self._current is None:
            return self._played_s
        return self._current.start + self._pos / self.sample_rate

    def _heard_locked(self) -> str:
        parts = list(self._heard)
        seg = self._current
        if seg is not None:
            t = self._clock_locked()
            # a word counts as heard once it was played to its end (a little early is fine: its
            # last sound is trailing off); a word cut in the middle was not really said
            said = [w.text for w in seg.words if w.end <= t + 0.05]
            if said:
                parts.append(" ".join(said))
        return " ".join(p.strip() for p in parts if p.strip())
