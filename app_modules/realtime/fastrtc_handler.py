"""The conversation engine as a fastrtc handler: ``fastrtc.Stream(EngineHandler(make_engine),
modality="audio-video", mode="send-receive")`` serves it on fastrtc's endpoints (``stream.mount(app)``)
or its own UI.

fastrtc installs next to gradio 6 with ``pip install --no-deps fastrtc`` (its pin asks for gradio < 6).
Its server side works with 6; its Gradio component's front end does not load there, which is why the
Real-time tab talks to ``server.py``'s aiortc peers instead.

fastrtc calls ``copy()`` once per connection, ``receive`` with each microphone frame, ``emit`` for the
next audio frame and ``video_emit`` for the next video frame. The engine is made lazily for each
connection by ``make_engine``; its events (what the user said, what the avatar answered) reach the
page as ``AdditionalOutputs``.

``emit`` runs on a worker thread and waits for its 20 ms slot: fastrtc queues whatever ``emit``
returns, and a handler that returned faster than real time would queue seconds of silence in front
of the answer (and behind a barge-in).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from fastrtc import AdditionalOutputs, AudioVideoStreamHandler
except ImportError as e:  # pragma: no cover - depends on the install
    from app_modules.errors import BackendUnavailableError

    raise BackendUnavailableError(f"the fastrtc handler needs fastrtc ({e}): pip install --no-deps fastrtc "
                                  "&& pip install aiortc librosa") from e

from app_modules.realtime.engine import ConversationEngine

PTIME = 0.020
OUTPUT_RATE = 48000

EngineFactory = Callable[[Callable[[dict[str, Any]], None]], ConversationEngine]


class EngineHandler(AudioVideoStreamHandler):
    """One browser connection's conversation, spoken and shown through fastrtc."""

    def __init__(self, make_engine: EngineFactory):
        super().__init__(expected_layout="mono", output_sample_rate=OUTPUT_RATE, input_sample_rate=16000)
        self.make_engine = make_engine
        self.engine: ConversationEngine | None = None
        self._lock = threading.Lock()
        self._next: float | None = None  # when the next audio frame is due
        self._chat: list[dict[str, str]] = []  # the conversation as the page shows it
        self._chat_changed = False

    def copy(self) -> EngineHandler:
        return EngineHandler(self.make_engine)

    def _engine(self) -> ConversationEngine:
        with self._lock:
            if self.engine is None:
                self.engine = self.make_engine(self._on_event)
            return self.engine

    def _on_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "transcript":
            self._chat.append({"role": "user", "content": event["text"]})
        elif event["type"] == "reply":
            self._chat.append({"role": "assistant", "content": event["text"]
                               + (" …" if event.get("interrupted") else "")})
        elif event["type"] == "error":
            self._chat.append({"role": "assistant", "content": f"⚠ {event['stage']}: {event['message']}"})
        else:
            return
        self._chat_changed = True

    # ------------------------------------------------------------------------------ fastrtc API
    def start_up(self) -> None:
        self._engine()  # load the avatar before the first frame is asked for

    def receive(self, frame: tuple[int, np.ndarray]) -> None:
        rate, pcm = frame
        samples = pcm.reshape(-1).astype(np.float32)
        if pcm.dtype == np.int16:
            samples /= 32768.0
        if rate != 16000:  # fastrtc resamples to input_sample_rate; this guards a changed default
            from app_modules import media
            from app_modules.types import Audio

            samples = media.resample(Audio(samples, rate), 16000).samples
        self._engine().push_audio(samples)

    def emit(self):
        now = time.perf_counter()
        if self._next is None or now - self._next > 0.5:  # first frame, or after a stall
            self._next = now
        elif self._next > now:
            time.sleep(self._next - now)
        self._next += PTIME
        pcm = self._engine().pull_audio(int(OUTPUT_RATE * PTIME))
        audio = (OUTPUT_RATE, (np.clip(pcm, -1, 1) * 32767).astype(np.int16).reshape(1, -1))
        if self._chat_changed:
            self._chat_changed = False
            return audio, AdditionalOutputs(list(self._chat))
        return audio

    def video_receive(self, frame: np.ndarray) -> None:
        pass  # the user's camera is not used: the avatar listens, it does not watch

    def video_emit(self) -> np.ndarray | None:
        frame = self._engine().pull_video()
        # fastrtc builds its frames as BGR (OpenCV's order); the engine's are RGB
        return None if frame is None else np.ascontiguousarray(frame[..., ::-1])

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.close()
