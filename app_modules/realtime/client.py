"""A scripted WebRTC peer for tests and benchmarks: speaks recorded audio, records what comes back.

``LoopbackClient`` connects to a ``RealtimeServer`` over HTTP on 127.0.0.1, sends a microphone track
whose content the caller scripts (``mic.say(samples)``; silence otherwise) and keeps, for every audio
and video frame it receives, the wall-clock time (``time.perf_counter``) and its loudness, so a test
can tell when the avatar started and stopped talking.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import av
import numpy as np
from aiohttp import ClientSession
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

RATE = 48000
PTIME = 0.020


class ScriptedMicrophone(MediaStreamTrack):
    """An audio track that plays queued samples (48 kHz mono float32) in real time, else silence."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self._buffer = np.zeros(0, np.float32)
        self._lock = threading.Lock()
        self._sent = 0  # samples sent so far
        self._start: float | None = None
        self.n = int(RATE * PTIME)

    def say(self, samples: np.ndarray) -> float:
        """Queue ``samples`` after what is queued; returns when their first sample will be sent."""
        with self._lock:
            at = self._sent + len(self._buffer)
            self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float32)])
        return self.time_of(at)

    def interrupt_with(self, samples: np.ndarray) -> float:
        """Drop what is queued and send ``samples`` next; returns when they start."""
        with self._lock:
            self._buffer = np.asarray(samples, np.float32)
            at = self._sent
        return self.time_of(at)

    def time_of(self, sample: int) -> float:
        """Wall time at which sample number ``sample`` is (or will be) sent."""
        start = self._start if self._start is not None else time.perf_counter()
        return start + sample / RATE

    @property
    def idle(self) -> bool:
        with self._lock:
            return len(self._buffer) == 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.perf_counter()
        delay = self._start + self._sent / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        with self._lock:
            chunk = np.zeros(self.n, np.float32)
            take = min(self.n, len(self._buffer))
            chunk[:take] = self._buffer[:take]
            self._buffer = self._buffer[take:]
            pts = self._sent
            self._sent += self.n
        frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16).reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


@dataclass
class Received:
    """What came back: per audio frame (time, RMS), per video frame (time, a small copy)."""

    audio: list[tuple[float, float]] = field(default_factory=list)
    video: list[tuple[float, np.ndarray]] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def first_sound_after(self, t: float, level: float = 0.01) -> float | None:
        return next((at for at, rms in self.audio if at >= t and rms >= level), None)

    def silent_from(self, t: float, level: float = 0.01, hold: float = 0.2) -> float | None:
        """The first time after ``t`` from which the audio stays below ``level`` for ``hold`` seconds."""
        start = None
        for at, rms in self.audio:
            if at < t:
                continue
            if rms < level:
                start = at if start is None else start
                if at - start >= hold:
                    return start
            else:
                start = None
        return None


class LoopbackClient:
    """One peer connection to ``http://127.0.0.1:port/offer``."""

    def __init__(self, port: int, host: str = "127.0.0.1", keep_video_every: int = 5, path: str = "/offer",
                 send_video: bool = False):
        self.url = f"http://{host}:{port}{path}"
        self.send_video = send_video  # a camera track too (fastrtc's audio-video mode expects one)
        self.mic = ScriptedMicrophone()
        self.received = Received()
        self.session: str | None = None
        self.keep_video_every = keep_video_every
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._tasks: list[asyncio.Task] = []

    async def connect(self, timeout: float = 30.0) -> None:
        pc = self._pc
        pc.addTrack(self.mic)
        if self.send_video:
            from aiortc import VideoStreamTrack

            pc.addTrack(VideoStreamTrack())  # a blank camera
        else:
            pc.addTransceiver("video", direction="recvonly")
        channel = pc.createDataChannel("events")
        channel.on("message", lambda m: self.received.events.append(json.loads(m)))

        @pc.on("track")
        def on_track(track):
            reader = self._read_audio if track.kind == "audio" else self._read_video
            self._tasks.append(asyncio.ensure_future(reader(track)))

        await pc.setLocalDescription(await pc.createOffer())
        async with ClientSession() as http:
            # webrtc_id: fastrtc's name for the connection; the realtime server names its own
            offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type,
                     "webrtc_id": uuid.uuid4().hex[:12]}
            async with http.post(self.url, json=offer) as r:
                r.raise_for_status()
                answer = await r.json()
        if "sdp" not in answer:
            raise ConnectionError(f"the server refused the offer: {answer}")
        self.session = answer.get("session", offer["webrtc_id"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        deadline = time.perf_counter() + timeout
        while pc.connectionState != "connected":
            if time.perf_counter() > deadline or pc.connectionState == "failed":
                raise TimeoutError(f"WebRTC connection not established ({pc.connectionState})")
            await asyncio.sleep(0.05)

    async def _read_audio(self, track) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = frame.to_ndarray().astype(np.float32) / 32768.0
            self.received.audio.append((time.perf_counter(), float(np.sqrt(np.mean(pcm ** 2)))))

    async def _read_video(self, track) -> None:
        n = 0
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            keep = frame.to_ndarray(format="rgb24")[::4, ::4].copy() if n % self.keep_video_every == 0 else None
            self.received.video.append((time.perf_counter(), keep))
            n += 1

    async def wait_for(self, predicate, timeout: float, what: str, poll: float = 0.02):
        """Poll ``predicate()`` until it returns something truthy; ``TimeoutError`` naming ``what``."""
        deadline = time.perf_counter() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.perf_counter() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(poll)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self._pc.close()


def speech_bounds(samples: np.ndarray, rate: int = RATE, level: float = 0.02) -> tuple[float, float]:
    """(first, last) second where ``samples`` are louder than ``level``: where the speech really is."""
    loud = np.flatnonzero(np.abs(samples) > level)
    if loud.size == 0:
        return 0.0, 0.0
    return loud[0] / rate, loud[-1] / rate
