"""A conversation turn as a stream of events.

    text or speech -> ASR -> LLM tokens -> sentences -> TTS -> talking-head video per sentence

The LLM runs in one thread and hands each finished sentence to a worker that speaks it and renders
its video, so the first sentence is heard and seen while the model is still writing the rest. The
worker takes sentences strictly in order (speak one, render it, then the next): the first video is
never held back behind the synthesis of later sentences, and THG, the slow stage, is never idle
while the LLM is ahead. Whatever fails becomes a ``StageFailed`` event and the history is left as it
was; the history is committed only when the whole answer exists.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app_modules import media
from app_modules.config import LimitSettings, PipelineSettings
from app_modules.errors import BadInputError, BusyError, TalkerError
from app_modules.history import ChatHistory
from app_modules.slots import RenderSlots
from app_modules.text import SentenceSplitter
from app_modules.types import (
    Audio,
    Event,
    Progress,
    SentenceAudio,
    SentenceVideo,
    StageFailed,
    TextDelta,
    Transcript,
    TurnResult,
    WordTiming,
)
from LLM.speakable import to_speech
from TTS.align import written_words
from TTS.text_norm import normalize_text

log = logging.getLogger(__name__)
_DONE = object()


@dataclass
class Stages:
    """The backends of one pipeline; any of them may be None when a turn does not need it."""

    llm: Any
    tts: Any
    thg: Any = None
    asr: Any = None


class Pipeline:
    """Runs turns over one set of backends. Backends are loaded once; a turn holds no shared state
    but the avatar cache, so sessions can run turns side by side on one pipeline."""

    def __init__(self, stages: Stages, settings: PipelineSettings | None = None, max_avatars: int = 8,
                 limits: LimitSettings | None = None, slots: RenderSlots | None = None,
                 face_width: Callable[[np.ndarray], float | None] | None = None):
        """``limits``: how much one turn may ask for; ``slots``: the server-wide render limit every turn
        waits for (None: no limit); ``face_width``: measures a portrait's face for ``limits.min_face_px``."""
        self.stages = stages
        self.settings = settings or PipelineSettings()
        self.limits = limits or LimitSettings()
        self.slots = slots
        self.face_width = face_width
        self._avatars: OrderedDict[str, Any] = OrderedDict()
        self._avatar_lock = threading.Lock()
        self._max_avatars = max_avatars

    # ------------------------------------------------------------------------------------- avatar
    def avatar(self, image: np.ndarray) -> Any:
        """The THG's analysis of a portrait (face detection, crops), computed once per image."""
        if self.stages.thg is None:
            raise TalkerError("no talking-head backend is configured")
        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() + str(image.shape)
        with self._avatar_lock:
            if key in self._avatars:
                self._avatars.move_to_end(key)
                return self._avatars[key]
        self._check_face(image)
        prepared = self.stages.thg.prepare(image)
        with self._avatar_lock:
            self._avatars[key] = prepared
            while len(self._avatars) > self._max_avatars:
                self._avatars.popitem(last=False)
        return prepared

    def _check_face(self, image: np.ndarray) -> None:
        least = self.limits.min_face_px
        media.check_image_size(image.shape[1], image.shape[0], None, least)
        width = self.face_width(image) if self.face_width is not None else None
        if width is not None and width < least:
            raise BadInputError(f"the face is only {width:.0f} pixels wide; a talking head needs at least "
                                f"{least} (limits.min_face_px): use a closer or larger photo")

    # --------------------------------------------------------------------------------------- turn
    def turn(self, history: ChatHistory, workdir: str | Path, *, text: str | None = None,
             audio: Audio | None = None, image: np.ndarray | None = None,
             cancel: threading.Event | None = None) -> Iterator[Event]:
        """Yield the events of one turn. ``image`` None means audio only (no video).

        The turn first waits for a render slot (``Progress("queue", ...)`` events say its place in
        line). A turn that fails or is cancelled leaves no files behind."""
        cancel = cancel or threading.Event()
        try:
            ticket = self.slots.ticket() if self.slots is not None else None
        except BusyError as e:
            yield StageFailed("busy", str(e))
            return
        turn_dir = Path(workdir) / f"turn-{uuid.uuid4().hex[:10]}"
        finished, events = False, None
        try:
            if ticket is not None:
                for place in ticket.positions(cancel):
                    yield Progress("queue", f"Busy: you are number {place} in line…")
                if not ticket.holding:
                    return  # cancelled while waiting
            events = self._turn(history, turn_dir, text, audio, image, cancel)
            for ev in events:
                finished = isinstance(ev, TurnResult)
                yield ev
        finally:
            if events is not None:
                events.close()  # its workers stop (and stop writing) before the folder may go
            if ticket is not None:
                ticket.release()
            if not finished:
                shutil.rmtree(turn_dir, ignore_errors=True)

    def _turn(self, history: ChatHistory, turn_dir: Path, text: str | None, audio: Audio | None,
              image: np.ndarray | None, cancel: threading.Event) -> Iterator[Event]:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        try:
            avatar = self.avatar(image) if image is not None else None
            user_text = self._user_text(text, audio)
        except TalkerError as e:
            yield StageFailed(_stage_of(e, "input"), str(e), isinstance(e, BadInputError))
            return
        turn_dir.mkdir(parents=True, exist_ok=True)
        timings["transcript"] = time.perf_counter() - t0
        yield Transcript(user_text)

        llm = self.stages.llm
        messages = history.messages(user_text, llm.count_tokens, llm.context_tokens,
                                    reserve=llm.reply_tokens, overhead=llm.message_overhead)
        events: queue.Queue = queue.Queue()
        sentences: queue.Queue = queue.Queue()
        reply_parts: list[str] = []
        spoken: list[SentenceAudio] = []
        videos: list[SentenceVideo] = []

        def produce() -> None:
            splitter = SentenceSplitter(self.settings.min_sentence_chars)
            room = self.limits.answer_chars
            try:
                stream = llm.stream(messages)
                for piece in stream:
                    if cancel.is_set():
                        return
                    if not piece:
                        continue
                    piece = piece[:room]
                    room -= len(piece)
                    reply_parts.append(piece)
                    events.put(TextDelta(piece))
                    for s in splitter.feed(piece):
                        sentences.put(s)
                    if room <= 0:  # stop the model: what it said so far is the answer
                        getattr(stream, "close", lambda: None)()
                        events.put(Progress("llm", f"The answer was cut at {self.limits.answer_chars} "
                                                   "characters (limits.answer_chars)."))
                        break
                for s in splitter.flush():
                    sentences.put(s)
            except Exception as e:  # noqa: BLE001 - every failure becomes an event
                events.put(_failure("llm", e))
                cancel.set()
            finally:
                sentences.put(_DONE)

        def consume() -> None:
            turn_dir.mkdir(parents=True, exist_ok=True)
            offset = 0.0
            stage = "tts"
            last_notice = getattr(self.stages.tts, "last_notice", None)
            try:
                index = 0
                while (s := sentences.get()) is not _DONE:
                    if cancel.is_set():
                        return
                    stage = "tts"
                    sa = self._speak(index, s, offset, turn_dir)
                    notice = getattr(self.stages.tts, "last_notice", None)
                    if notice and notice != last_notice:  # e.g. the online voice fell back to espeak
                        events.put(Progress("tts", notice))
                    last_notice = notice
                    offset += sa.audio.duration
                    spoken.append(sa)
                    events.put(sa)
                    if avatar is not None:
                        stage = "thg"
                        sv = self._render(avatar, sa, turn_dir, cancel)
                        if sv is None:
                            return
                        videos.append(sv)
                        events.put(sv)
                    index += 1
            except Exception as e:  # noqa: BLE001
                events.put(_failure(stage, e))
                cancel.set()
            finally:
                events.put(_DONE)

        threads = [threading.Thread(target=produce, daemon=True, name="turn-llm"),
                   threading.Thread(target=consume, daemon=True, name="turn-render")]
        for t in threads:
            t.start()
        failed = False
        try:
            while (ev := events.get()) is not _DONE:
                if failed:
                    continue  # the turn ended with its first failure: nothing follows it
                if isinstance(ev, StageFailed):
                    failed = True
                elif isinstance(ev, TextDelta):
                    timings.setdefault("first_token", time.perf_counter() - t0)
                elif isinstance(ev, SentenceAudio):
                    timings.setdefault("first_audio", time.perf_counter() - t0)
                elif isinstance(ev, SentenceVideo):
                    timings.setdefault("first_video", time.perf_counter() - t0)
                yield ev
            for t in threads:
                t.join()
            # a failure may arrive after the worker finished (the LLM dying mid-answer)
            while not events.empty():
                ev = events.get_nowait()
                if ev is not _DONE and not failed:
                    failed = isinstance(ev, StageFailed)
                    yield ev
            if failed or cancel.is_set():
                return
            reply = "".join(reply_parts).strip()
            if not spoken:
                yield StageFailed("llm", "the model returned an empty answer; try again or rephrase")
                return
            try:
                result = self._finish(reply, spoken, videos, turn_dir, timings, t0)
            except TalkerError as e:
                yield StageFailed("video", str(e))
                return
            history.commit(user_text, reply)
            yield result
        finally:
            cancel.set()  # the consumer stopped listening (barge-in, closed tab): stop the workers
            # the renderer writes into turn_dir: let it stop before the folder of a failed turn goes
            threads[1].join(timeout=10)

    # -------------------------------------------------------------------------------------- steps
    def _user_text(self, text: str | None, audio: Audio | None) -> str:
        if audio is not None:
            if self.stages.asr is None:
                raise TalkerError("no speech recogniser is configured; type the question instead")
            media.require_duration(audio, self.limits.audio_seconds)
            audio = media.resample(audio, 16000)
            media.require_sound(audio)
            said = self.stages.asr.transcribe(audio, self.settings.language or None).strip()
            if not said:
                raise BadInputError("no speech detected in the recording; speak closer to the microphone")
            return said
        said = (text or "").strip()
        if not said:
            raise BadInputError("the text is empty: type something for the avatar to answer")
        require_length(said, self.limits.text_chars)
        return said

    def _speak(self, index: int, sentence: str, offset: float, turn_dir: Path) -> SentenceAudio:
        said = speech_text(sentence)
        speech = self.stages.tts.synthesize(said)
        fps = getattr(self.stages.thg, "fps", 25)
        audio = media.pad_to_frames(speech.audio, fps)
        path = media.write_wav(audio, turn_dir / f"sentence-{index:03d}.wav")
        # subtitles (and the words heard before a barge-in) read as the chat does, "3" not "three",
        # timed by the words the voice said
        written = normalize_text(said, numbers=False) or sentence
        words = written_words(written, speech.words) or (WordTiming(written, 0.0, speech.audio.duration),)
        shifted = tuple(WordTiming(w.text, w.start + offset, w.end + offset) for w in words)
        return SentenceAudio(index, sentence, audio, path, shifted)

    def _render(self, avatar: Any, sa: SentenceAudio, turn_dir: Path, cancel: threading.Event) -> SentenceVideo | None:
        thg = self.stages.thg
        out = turn_dir / f"sentence-{sa.index:03d}.mp4"
        writer = media.VideoWriter(out, thg.fps, audio_path=sa.path)
        want = media.frame_count(sa.audio, thg.fps)
        try:
            for frame in thg.render(avatar, sa.audio):
                if cancel.is_set():
                    writer.abort()
                    return None
                if writer.frames < want:
                    writer.write(frame)
            while writer.frames < want and writer.frames > 0:  # a backend one frame short: hold the last
                writer.write(frame)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        return SentenceVideo(sa.index, sa.text, out, want / thg.fps)

    def _finish(self, reply: str, spoken: list[SentenceAudio], videos: list[SentenceVideo], turn_dir: Path,
                timings: dict[str, float], t0: float) -> TurnResult:
        audio = media.concat_audio(s.audio for s in spoken)
        audio_path = media.write_wav(audio, turn_dir / "answer.wav")
        # cues per sentence: a cue never runs across the end of one
        cues = [c for s in spoken for c in media.subtitle_cues(s.words)]
        srt = media.write_srt(cues, turn_dir / "answer.srt")
        video = None
        if videos:
            burn = srt if self.settings.subtitles == "burn" else None
            video = media.concat_videos([v.path for v in videos], audio_path, turn_dir / "answer.mp4", burn)
        timings["total"] = time.perf_counter() - t0
        return TurnResult(reply, video, audio_path, srt, dict(timings))


def speech_text(sentence: str) -> str:
    """What TTS should read: markdown, emoji and URLs are not spoken."""
    return to_speech(sentence).strip() or sentence


def require_length(text: str, most: int, what: str = "the text") -> None:
    if len(text) > most:
        raise BadInputError(f"{what} is too long ({len(text)} characters); the most this server takes is "
                            f"{most} (limits.text_chars): shorten it")


def _failure(stage: str, e: BaseException) -> StageFailed:
    if isinstance(e, TalkerError):
        return StageFailed(getattr(e, "stage", stage), str(e).removeprefix(f"{getattr(e, 'stage', '')}: "),
                           isinstance(e, BadInputError))
    log.exception("%s stage crashed", stage)
    return StageFailed(stage, f"{type(e).__name__}: {e}")


def _stage_of(e: TalkerError, default: str) -> str:
    return getattr(e, "stage", default)


def collect(events: Iterator[Event]) -> list[Event]:
    """All events of a turn (tests and the CLI)."""
    return list(events)
