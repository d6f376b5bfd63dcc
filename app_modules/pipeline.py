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
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app_modules import media
from app_modules.config import PipelineSettings
from app_modules.errors import BadInputError, TalkerError
from app_modules.history import ChatHistory
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

    def __init__(self, stages: Stages, settings: PipelineSettings | None = None, max_avatars: int = 8):
        self.stages = stages
        self.settings = settings or PipelineSettings()
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
        prepared = self.stages.thg.prepare(image)
        with self._avatar_lock:
            self._avatars[key] = prepared
            while len(self._avatars) > self._max_avatars:
                self._avatars.popitem(last=False)
        return prepared

    # --------------------------------------------------------------------------------------- turn
    def turn(self, history: ChatHistory, workdir: str | Path, *, text: str | None = None,
             audio: Audio | None = None, image: np.ndarray | None = None,
             cancel: threading.Event | None = None) -> Iterator[Event]:
        """Yield the events of one turn. ``image`` None means audio only (no video)."""
        cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        turn_dir = Path(workdir) / f"turn-{uuid.uuid4().hex[:10]}"
        turn_dir.mkdir(parents=True, exist_ok=True)
        try:
            avatar = self.avatar(image) if image is not None else None
            user_text = self._user_text(text, audio)
        except TalkerError as e:
            yield StageFailed(_stage_of(e, "input"), str(e))
            return
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
            try:
                for piece in llm.stream(messages):
                    if cancel.is_set():
                        return
                    if not piece:
                        continue
                    reply_parts.append(piece)
                    events.put(TextDelta(piece))
                    for s in splitter.feed(piece):
                        sentences.put(s)
                for s in splitter.flush():
                    sentences.put(s)
            except Exception as e:  # noqa: BLE001 - every failure becomes an event
                events.put(_failure("llm", e))
                cancel.set()
            finally:
                sentences.put(_DONE)

        def consume() -> None:
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
                if ev is not _DONE:
                    failed = failed or isinstance(ev, StageFailed)
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

    # -------------------------------------------------------------------------------------- steps
    def _user_text(self, text: str | None, audio: Audio | None) -> str:
        if audio is not None:
            if self.stages.asr is None:
                raise TalkerError("no speech recogniser is configured; type the question instead")
            audio = media.resample(audio, 16000)
            media.require_sound(audio)
            said = self.stages.asr.transcribe(audio, self.settings.language or None).strip()
            if not said:
                raise BadInputError("no speech detected in the recording; speak closer to the microphone")
            return said
        said = (text or "").strip()
        if not said:
            raise BadInputError("the text is empty: type something for the avatar to answer")
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


def _failure(stage: str, e: BaseException) -> StageFailed:
    if isinstance(e, TalkerError):
        return StageFailed(getattr(e, "stage", stage), str(e).removeprefix(f"{getattr(e, 'stage', '')}: "))
    log.exception("%s stage crashed", stage)
    return StageFailed(stage, f"{type(e).__name__}: {e}")


def _stage_of(e: TalkerError, default: str) -> str:
    return getattr(e, "stage", default)


def collect(events: Iterator[Event]) -> list[Event]:
    """All events of a turn (tests and the CLI)."""
    return list(events)
