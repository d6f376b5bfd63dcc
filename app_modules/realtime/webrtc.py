"""aiortc media tracks around a ``ConversationEngine``: the avatar's voice and face out, the mic in.

The outgoing tracks pace themselves on the wall clock (aiortc pulls ``recv`` as fast as it returns),
20 ms of audio and one video frame per tick. The engine is audio-clocked, so whichever frame
``pull_video`` returns belongs to the audio just sent: lips stay in sync even if video ticks drift.

Install: ``pip install aiortc`` (it brings PyAV, which also resamples the microphone here).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time

import numpy as np

try:
    import av
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError
except ImportError as e:  # pragma: no cover - depends on the install
    from app_modules.errors import BackendUnavailableError

    raise BackendUnavailableError(f"WebRTC needs aiortc ({e}): pip install aiortc") from e

from app_modules.realtime.engine import ConversationEngine

log = logging.getLogger(__name__)

AUDIO_PTIME = 0.020  # seconds of audio per packet, WebRTC's usual
VIDEO_CLOCK = 90000  # RTP clock rate of video


class _Pacer:
    """Sleeps so that tick ``n`` happens ``n * period`` after the first one; returns the tick number,
    which only ever grows (encoders reject timestamps that go back)."""

    def __init__(self, period: float):
        self.period = period
        self.start: float | None = None
        self.ticks = 0  # ticks since ``start``
        self.total = 0  # ticks ever: the media timestamp

    async def wait(self) -> int:
        if self.start is None:
            self.start = time.perf_counter()
            return 0
        self.ticks += 1
        self.total += 1
        delay = self.start + self.ticks * self.period - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.5:  # the loop stalled: carry on from now rather than burst to catch up
            self.start, self.ticks = time.perf_counter(), 0
        return self.total


class EngineAudioTrack(MediaStreamTrack):
    """The avatar's voice: 20 ms frames of s16 mono at the engine's output rate."""

    kind = "audio"

    def __init__(self, engine: ConversationEngine):
        super().__init__()
        self.engine = engine
        self.rate = engine.settings.sample_rate
        self.samples = int(self.rate * AUDIO_PTIME)
        self._pacer = _Pacer(AUDIO_PTIME)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        tick = await self._pacer.wait()
        pcm = self.engine.pull_audio(self.samples)
        data = (np.clip(pcm, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = tick * self.samples
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame


class EngineVideoTrack(MediaStreamTrack):
    """The avatar's face at the talking head's frame rate; idle motion between answers."""

    kind = "video"

    def __init__(self, engine: ConversationEngine):
        super().__init__()
        self.engine = engine
        self._pacer = _Pacer(1.0 / engine.fps)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        tick = await self._pacer.wait()
        frame = av.VideoFrame.from_ndarray(self.engine.pull_video(), format="rgb24")
        frame.pts = int(tick * VIDEO_CLOCK / self.engine.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


async def feed_microphone(track: MediaStreamTrack, engine: ConversationEngine) -> None:
    """Read the peer's audio track until it ends, handing 16 kHz mono to the engine."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        for out in resampler.resample(frame):
            pcm = out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
            engine.push_audio(pcm)  # a VAD window is well under a millisecond: no thread needed
