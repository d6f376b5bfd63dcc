"""A live conversation with the avatar, independent of how audio and video travel.

    microphone frames -> TurnDetector (Silero VAD) -> utterance -> Pipeline.turn (ASR, LLM, TTS)
        -> sentence audio -> THG frames, rendered chunk by chunk -> Playout -> paced by the transport

States: ``listening`` (idle face, waiting for speech), ``thinking`` (the user finished; no answer
sound yet), ``speaking`` (answer audio is playing). Speech onset while thinking or speaking is a
barge-in: the turn's workers are cancelled, queued audio and frames are dropped at once, and only the
words the user actually heard are committed to the history.

The engine commits to the history itself. The pipeline gets a scratch copy, because it commits as
soon as the whole answer is synthesised, long before it has been played, and an answer interrupted
then must not be remembered in full.

A transport (``webrtc.py``, ``fastrtc_handler.py``) calls ``push_audio`` with 16 kHz microphone audio
and pulls ``pull_audio`` / ``pull_video`` at real-time pace; the engine holds no event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from app_modules import media
from app_modules.history import ChatHistory
from app_modules.pipeline import Pipeline
from app_modules.realtime.idle import IdleClip, IdleMotion, IdleOptions
from app_modules.realtime.playout import Playout, Segment
from app_modules.realtime.turn_vad import Paused, SpeechStarted, TurnDetector, TurnOptions, UtteranceEnded
from app_modules.types import Audio, Progress, SentenceAudio, StageFailed, Transcript, TurnResult

log = logging.getLogger(__name__)


class State(str, Enum):
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class EngineSettings:
    """How a live session sounds and looks."""

    sample_rate: int = 48000  # of the outgoing audio (WebRTC's Opus runs at 48 kHz)
    max_side: int = 512  # outgoing video is scaled down to this (encoding costs CPU per pixel)
    # a pause this short after an interrupted "thinking" turn means the user was not done: the
    # interrupted utterance is put in front of the next one instead of being lost
    merge_within_s: float = 4.0
    turn: TurnOptions = field(default_factory=TurnOptions)
    idle: IdleOptions = field(default_factory=IdleOptions)


@dataclass
class TurnMetrics:
    """Wall-clock moments (``time.perf_counter``) of one turn; None where it never got there."""

    speech_end: float  # the last speech of the user reached the engine
    detected: float  # the VAD decided the user was done
    transcript: float | None = None
    first_audio: float | None = None  # the first answer sample was handed to the transport
    first_frame: float | None = None  # the first lip-synced frame was handed to the transport
    barge_in: float | None = None  # where the VAD placed the onset of the user's barge-in speech
    interrupted: float | None = None  # the barge-in onset was detected
    stopped: float | None = None  # output was flushed after the barge-in
    early_transcript: bool = False  # recognised during the pause, before the turn ended
    underrun: float = 0.0  # seconds of silence inside the answer while the next sentence was not ready
    user_text: str = ""
    heard: str = ""  # what was committed as the answer

    def latency(self, name: str) -> float | None:
        t = getattr(self, name)
        return None if t is None else t - self.speech_end


class _EarlyTranscript:
    """Speech recognition started at a pause, on a thread, in case the pause ends the utterance."""

    def __init__(self, pipeline: Pipeline, audio: Audio, voiced: int):
        self.voiced = voiced
        self.text: str | None = None  # None: failed or not done; the turn then recognises itself
        self._done = threading.Event()
        self._pipeline = pipeline
        self._audio = audio
        threading.Thread(target=self._run, daemon=True, name="realtime-early-asr").start()

    def _run(self) -> None:
        try:
            media.require_sound(self._audio)
            text = self._pipeline.stages.asr.transcribe(self._audio, self._pipeline.settings.language or None)
            self.text = text.strip() or None
        except Exception:  # noqa: BLE001 - the turn's own recognition reports the error properly
            log.debug("early transcript failed", exc_info=True)
        finally:
            self._done.set()

    def result(self, timeout: float) -> str | None:
        self._done.wait(timeout)
        return self.text


@dataclass
class _Turn:
    audio: Audio
    metrics: TurnMetrics
    playout: Playout
    early: _EarlyTranscript | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    user_text: str = ""
    reply: str | None = None  # set when the pipeline finished the whole answer
    done: bool = False  # the turn thread added its last segment
    failed: bool = False


class ConversationEngine:
    """One live session: its history, its turn detector and what it is saying right now."""

    def __init__(self, pipeline: Pipeline, history: ChatHistory, workdir: str | Path,
                 image: np.ndarray | None = None, settings: EngineSettings = EngineSettings(),
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 detector: TurnDetector | None = None, on_close: Callable[[], None] | None = None):
        self.pipeline = pipeline
        self.history = history
        self.workdir = Path(workdir)
        self.settings = settings
        self.on_event = on_event or (lambda ev: None)
        self.on_close = on_close  # e.g. remove the session's folder
        self.detector = detector or TurnDetector(settings.turn)
        thg = pipeline.stages.thg
        self.fps = getattr(thg, "fps", 25)
        self.avatar = pipeline.avatar(image) if image is not None and thg is not None else None
        self.idle = self._idle_for(image)
        self.metrics: list[TurnMetrics] = []
        self.state = State.LISTENING
        self._turn: _Turn | None = None
        self._carry: tuple[Audio, float] | None = None  # (interrupted utterance, when)
        self._early: _EarlyTranscript | None = None
        self._lock = threading.RLock()
        self._input_lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._closed = False

    # ------------------------------------------------------------------------- setup helpers
    def _idle_for(self, image: np.ndarray | None) -> IdleMotion | IdleClip | None:
        if image is None:
            return None
        thg = self.pipeline.stages.thg
        if self.avatar is not None and hasattr(thg, "idle_frames"):
            # the backend animates silence itself (Ditto's motion model): loop that rather than a warp
            return IdleClip([self._fit(f) for f in thg.idle_frames(self.avatar)], self.fps)
        base = image
        if self.avatar is not None:
            # the backend's own neutral frame (its crop and size), from a moment of silence
            silence = Audio(np.zeros(int(16000 / self.fps), np.float32), 16000)
            base = next(iter(self.pipeline.stages.thg.render(self.avatar, silence)), image)
        return IdleMotion(self._fit(base), self.settings.idle)

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        """Scale a frame down to ``max_side`` (even sides: video encoders need them)."""
        import cv2

        h, w = frame.shape[:2]
        s = min(1.0, self.settings.max_side / max(h, w))
        size = (int(w * s) // 2 * 2, int(h * s) // 2 * 2)
        if size == (w, h):
            return frame
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    @property
    def has_video(self) -> bool:
        return self.idle is not None

    # ------------------------------------------------------------------------------ input side
    def push_audio(self, samples: np.ndarray) -> None:
        """Feed microphone audio: 16 kHz mono float32, any chunk length, in arrival order."""
        if self._closed:
            return
        with self._input_lock:
            events = self.detector.feed(samples)
            now, stream_now = time.perf_counter(), self.detector.stream_time
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._on_speech_started(now - (stream_now - ev.at))
            elif isinstance(ev, Paused):
                if self.pipeline.stages.asr is not None and self._carry is None:
                    self._early = _EarlyTranscript(self.pipeline, ev.audio, ev.voiced)
            elif isinstance(ev, UtteranceEnded):
                # the early transcript holds only if the user said nothing more after that pause
                early, self._early = self._early, None
                if early is not None and early.voiced != ev.voiced:
                    early = None
                # audio arrives in real time, so stream time maps to wall time by its lag behind now
                self._start_turn(ev.audio, now - (stream_now - ev.speech_end), now, early)

    def _on_speech_started(self, onset: float) -> None:
        self.emit({"type": "vad", "speaking": True})
        with self._lock:
            turn = self._turn
            if turn is not None:
                turn.metrics.barge_in = onset
                self.interrupt()

    def interrupt(self) -> str | None:
        """Barge-in: stop the current turn now; returns the heard text that was committed, if any."""
        with self._lock:
            turn = self._turn
            if turn is None:
                return None
            turn.metrics.interrupted = time.perf_counter()
            turn.cancel.set()  # stops the LLM, TTS and rendering of this turn
            heard, _ = turn.playout.flush()
            turn.metrics.stopped = time.perf_counter()
            self._turn = None
            if not turn.playout.started:
                # nothing was said yet: the user was probably still talking after a pause
                self._carry = (turn.audio, time.perf_counter())
            self._commit(turn, heard)
            self._set_state(State.LISTENING)
        log.info("barge-in: kept %r", heard)
        return heard

    def _start_turn(self, audio: Audio, speech_end: float, detected: float,
                    early: _EarlyTranscript | None = None) -> None:
        with self._lock:
            if self._turn is not None:  # cannot normally happen: the onset interrupted it
                self.interrupt()
            if self._carry and detected - self._carry[1] <= self.settings.merge_within_s:
                gap = np.zeros(int(0.15 * audio.sample_rate), np.float32)
                audio = Audio(np.concatenate([self._carry[0].samples, gap, audio.samples]), audio.sample_rate)
                early = None  # it heard only the second half
            self._carry = None
            metrics = TurnMetrics(speech_end=speech_end, detected=detected)
            self.metrics.append(metrics)
            turn = _Turn(audio, metrics, Playout(self.settings.sample_rate, self.fps), early)
            self._turn = turn
            self._set_state(State.THINKING)
        threading.Thread(target=self._run_turn, args=(turn,), daemon=True, name="realtime-turn").start()

    # ------------------------------------------------------------------------------ turn worker
    def _run_turn(self, turn: _Turn) -> None:
        scratch = ChatHistory(self.history.system_prompt, list(self.history.turns))
        # recognition usually finished during the end-of-turn silence; if not, waiting for it is
        # still quicker than starting again
        said = turn.early.result(timeout=30.0) if turn.early is not None else None
        turn.metrics.early_transcript = said is not None
        if said is not None:
            events = self.pipeline.turn(scratch, self.workdir, text=said, cancel=turn.cancel)
        else:
            events = self.pipeline.turn(scratch, self.workdir, audio=turn.audio, cancel=turn.cancel)
        offset = 0.0
        try:
            for ev in events:
                if turn.metrics.interrupted is not None:
                    break  # (the pipeline also sets ``cancel`` itself on a failure: read that event)
                if isinstance(ev, Transcript):
                    turn.user_text = turn.metrics.user_text = ev.text
                    turn.metrics.transcript = time.perf_counter()
                    self.emit({"type": "transcript", "text": ev.text})
                elif isinstance(ev, SentenceAudio):
                    self._play_sentence(turn, ev, offset)
                    offset += ev.audio.duration
                elif isinstance(ev, Progress) and ev.stage == "queue":
                    # the server-wide render limit: this turn waits its place in line
                    self.emit({"type": "queue", "message": ev.message})
                elif isinstance(ev, StageFailed):
                    turn.failed = True
                    self.emit({"type": "error", "stage": ev.stage, "message": ev.message})
                    break  # nothing follows an error
                elif isinstance(ev, TurnResult):
                    turn.reply = ev.reply
        except Exception as e:  # noqa: BLE001 - a crashed turn must not kill the session
            log.exception("realtime turn crashed")
            turn.failed = True
            self.emit({"type": "error", "stage": "turn", "message": f"{type(e).__name__}: {e}"})
        finally:
            events.close()
            turn.playout.close()
            turn.done = True
        self._maybe_finish(turn)

    def _play_sentence(self, turn: _Turn, sa: SentenceAudio, offset: float) -> None:
        """Queue a sentence for playout and render its frames into it, chunk by chunk."""
        samples = media.resample(sa.audio, self.settings.sample_rate).samples
        seg = Segment(sa.index, sa.text, samples, offset, sa.words, has_video=self.avatar is not None)
        turn.playout.add(seg)
        if self.avatar is None:
            return
        try:
            for frame in self.pipeline.stages.thg.render(self.avatar, sa.audio):
                if turn.cancel.is_set():
                    return
                seg.frames.append(self._fit(frame))
        finally:
            seg.rendered = True

    def _maybe_finish(self, turn: _Turn) -> None:
        """End a turn whose answer was played to its end (or that failed with nothing to play)."""
        with self._lock:
            if self._turn is not turn or not turn.done or not turn.playout.finished:
                return
            self._turn = None
            heard = turn.playout.heard_text()
            # played to the end: the reply as the model wrote it; a failure midway keeps what was heard
            self._commit(turn, turn.reply if turn.reply is not None and not turn.failed else heard)
            self._set_state(State.LISTENING)

    def _commit(self, turn: _Turn, answer: str) -> None:
        turn.metrics.heard = answer or ""
        if turn.user_text and answer:
            self.history.commit(turn.user_text, answer)
            self.emit({"type": "reply", "text": answer, "interrupted": turn.metrics.interrupted is not None})

    # ----------------------------------------------------------------------------- output side
    def pull_audio(self, n: int) -> np.ndarray:
        """The next ``n`` output samples (float32 at ``settings.sample_rate``); silence when quiet."""
        with self._lock:
            turn = self._turn
        if turn is None:
            return np.zeros(n, np.float32)
        samples, voiced = turn.playout.pull_audio(n)
        if voiced and turn.metrics.first_audio is None:
            turn.metrics.first_audio = time.perf_counter()
            self._set_state(State.SPEAKING)
        elif not voiced and turn.metrics.first_audio is not None and not turn.playout.finished:
            turn.metrics.underrun += n / self.settings.sample_rate  # slower than real time somewhere
        if turn.done and turn.playout.finished:
            self._maybe_finish(turn)
        return samples

    def pull_video(self) -> np.ndarray | None:
        """The frame to show now (RGB uint8), or None when the session has no video."""
        if self.idle is None:
            return None
        with self._lock:
            turn = self._turn
        frame = None
        if turn is not None:
            frame = turn.playout.current_frame()
            if frame is not None and turn.metrics.first_frame is None:
                turn.metrics.first_frame = time.perf_counter()
        t = time.perf_counter() - self._t0
        if frame is None:
            return self.idle.frame(t)
        # a backend that blinks in its own frames (lite, Ditto) is not blinked over a second time
        return self.idle.over(frame, t, blink=not getattr(self.pipeline.stages.thg, "blinks", False))

    # ---------------------------------------------------------------------------------- misc
    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self.emit({"type": "state", "state": state.value})

    def emit(self, event: dict[str, Any]) -> None:
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a broken listener must not stop the conversation
            log.exception("realtime event listener failed")

    def close(self) -> None:
        """The peer left: stop any turn; what was heard so far stays in the history."""
        if self._closed:
            return
        self._closed = True
        self.interrupt()
        if self.on_close is not None:
            self.on_close()
