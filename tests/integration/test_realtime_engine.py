"""The conversation engine without a network: scripted turn events in, audio and frames pulled out.

Stand-in backends (a tone voice with one word every 0.2 s, grey frames) make every time exact, so
the tests can say precisely which words were heard when the answer was interrupted.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app_modules.errors import StageError
from app_modules.history import ChatHistory
from app_modules.pipeline import Pipeline, Stages
from app_modules.realtime.engine import ConversationEngine, EngineSettings, State
from app_modules.realtime.idle import IdleMotion, IdleOptions
from app_modules.realtime.turn_vad import Paused, SpeechStarted, UtteranceEnded
from app_modules.types import Audio, WordTiming
from LLM.base import LLM
from THG.base import THG
from TTS.base import TTS, Speech

pytestmark = pytest.mark.timeout(60)

RATE = 16000
WORD_S = 0.2  # every word of the tone voice lasts this long
REPLY = "One two three four. Five six seven eight. Nine ten eleven twelve."


class WordLLM(LLM):
    def __init__(self, reply=REPLY, delay=0.0):
        self.reply, self.delay = reply, delay

    def stream(self, messages):
        time.sleep(self.delay)
        for w in self.reply.split(" "):
            yield w + " "


class ToneTTS(TTS):
    """Speaks each word as 0.2 s of tone, with exact word timings."""

    def __init__(self, fail_on=None):
        self.fail_on = fail_on

    def synthesize(self, text):
        if self.fail_on and self.fail_on in text:
            raise StageError("tts", "voice crashed")
        words = text.split()
        n = int(WORD_S * RATE) * len(words)
        samples = (0.3 * np.sin(np.arange(n) * 0.1)).astype(np.float32)
        timings = tuple(WordTiming(w, i * WORD_S, (i + 1) * WORD_S) for i, w in enumerate(words))
        return Speech(Audio(samples, RATE), timings)


class GreyTHG(THG):
    def prepare(self, image):
        return image

    def render(self, avatar, audio):
        # a texture, not a flat colour: sub-pixel motion must be visible in it
        texture = np.random.default_rng(0).integers(0, 200, (64, 48, 3), dtype=np.uint8)
        for i in range(int(np.ceil(audio.duration * self.fps))):
            yield texture + np.uint8(i % 50)


class EchoASR:
    def __init__(self):
        self.heard: list[float] = []

    def transcribe(self, audio, language=None):
        self.heard.append(audio.duration)
        return "tell me the numbers"


class ScriptedDetector:
    """Stands in for the VAD: ``feed`` returns whatever the test queued."""

    def __init__(self):
        self.queued: list = []
        self.stream_time = 0.0

    def feed(self, samples):
        self.stream_time += len(samples) / RATE
        out, self.queued = self.queued, []
        return out


def _utterance(seconds=1.0) -> Audio:
    return Audio((0.2 * np.sin(np.arange(int(seconds * RATE)) * 0.05)).astype(np.float32), RATE)


def _engine(tmp_path, llm=None, tts=None, events=None):
    pipe = Pipeline(Stages(llm=llm or WordLLM(), tts=tts or ToneTTS(), thg=GreyTHG(), asr=EchoASR()))
    detector = ScriptedDetector()
    engine = ConversationEngine(pipe, ChatHistory("be brief"), tmp_path, image=np.zeros((64, 48, 3), np.uint8),
                                settings=EngineSettings(sample_rate=RATE), detector=detector,
                                on_event=(events.append if events is not None else None))
    return engine, detector


def _say(engine, detector, event):
    detector.queued.append(event)
    engine.push_audio(np.zeros(320, np.float32))


def _play(engine, seconds: float) -> int:
    """Pull ``seconds`` of output as a transport would (without waiting); returns voiced chunks."""
    voiced = 0
    for _ in range(int(seconds / 0.02)):
        voiced += bool(np.abs(engine.pull_audio(320)).max() > 0)
        engine.pull_video()
    return voiced


def _wait(predicate, timeout=10.0):
    deadline = time.perf_counter() + timeout
    while not predicate():
        assert time.perf_counter() < deadline, "timed out"
        time.sleep(0.01)


def test_an_answer_played_to_the_end_is_committed_whole(tmp_path):
    events = []
    engine, detector = _engine(tmp_path, events=events)
    _say(engine, detector, SpeechStarted(0.0))
    _say(engine, detector, UtteranceEnded(_utterance(), 1.0))
    assert engine.state == State.THINKING
    _wait(lambda: _play(engine, 0.02) or engine.state == State.SPEAKING)
    _wait(lambda: (_play(engine, 0.5), engine.state == State.LISTENING)[1])
    assert engine.history.as_pairs() == [("tell me the numbers", REPLY)]
    m = engine.metrics[0]
    assert m.first_audio and m.first_frame and m.transcript and m.interrupted is None
    states = [e["state"] for e in events if e["type"] == "state"]
    assert states == ["thinking", "speaking", "listening"]
    assert {"type": "reply", "text": REPLY, "interrupted": False} in events


def test_barge_in_keeps_only_the_words_heard(tmp_path):
    engine, detector = _engine(tmp_path)
    _say(engine, detector, UtteranceEnded(_utterance(), 1.0))
    _wait(lambda: _play(engine, 0.02) > 0)  # the first chunk of the answer is out
    # the first sentence (4 words, 0.8 s) and two words of the second; a third word is half played
    _wait(lambda: engine.metrics[0].first_frame is not None)
    played = 0.02
    while played < 0.8 + 2 * WORD_S + 0.1 - 1e-9:
        if _play(engine, 0.02):
            played += 0.02
    _say(engine, detector, SpeechStarted(2.0))
    assert engine.state == State.LISTENING
    assert engine.history.as_pairs() == [("tell me the numbers", "One two three four. Five six")]
    assert not np.any(engine.pull_audio(16000)), "the answer kept playing after the barge-in"
    m = engine.metrics[0]
    assert m.stopped - m.interrupted < 0.05


def test_barge_in_before_the_answer_is_heard_merges_the_two_utterances(tmp_path):
    llm = WordLLM(delay=0.5)
    engine, detector = _engine(tmp_path, llm=llm)
    _say(engine, detector, UtteranceEnded(_utterance(1.0), 1.0))
    _wait(lambda: engine.metrics[0].transcript is not None)
    _say(engine, detector, SpeechStarted(1.5))  # the user goes on after a pause
    assert engine.state == State.LISTENING and len(engine.history) == 0
    _say(engine, detector, UtteranceEnded(_utterance(0.5), 2.0))
    _wait(lambda: engine.metrics[1].transcript is not None)
    asr = engine.pipeline.stages.asr
    assert asr.heard[-1] > 1.5  # the first utterance went in front of the second
    engine.close()


def test_a_failed_turn_reports_and_listens_again(tmp_path):
    events = []
    engine, detector = _engine(tmp_path, tts=ToneTTS(fail_on="One"), events=events)
    _say(engine, detector, UtteranceEnded(_utterance(), 1.0))
    _wait(lambda: (_play(engine, 0.02), engine.state == State.LISTENING)[1])
    assert len(engine.history) == 0
    assert any(e["type"] == "error" and e["stage"] == "tts" for e in events)


def test_the_idle_face_moves_and_blinks_without_speech(tmp_path):
    engine, _ = _engine(tmp_path)
    assert engine.pull_video().shape == (64, 48, 3)
    sway = [engine.idle.frame(t) for t in (0.0, 1.5, 3.0)]
    assert not np.array_equal(sway[0], sway[1]) and not np.array_equal(sway[1], sway[2]), "a frozen picture"
    # a blink darkens the eye boxes for a moment, then they open again
    idle = IdleMotion(np.full((64, 48, 3), 200, np.uint8), IdleOptions(sway_degrees=0, sway_pixels=0),
                      eyes=[(8, 20, 12, 8), (28, 20, 12, 8)])
    blink = idle._blinks[0] + idle.options.blink_s / 2
    assert idle.blink_amount(blink) > 0.9 and idle.blink_amount(blink + 1.0) == 0
    closed, open_ = idle.frame(blink), idle.frame(blink + 1.0)
    assert closed[24, 14].sum() < open_[24, 14].sum()
    assert np.array_equal(closed[50:], open_[50:])  # only the eyes change


class ClipTHG(GreyTHG):
    """A backend that renders its own idle motion (as Ditto does, from its model on silence)."""

    def idle_frames(self, avatar):
        return [np.full((64, 48, 3), 10 * i, np.uint8) for i in range(4)]


def test_a_backend_with_its_own_idle_clip_is_looped_and_its_speech_is_not_warped(tmp_path):
    pipe = Pipeline(Stages(llm=WordLLM(), tts=ToneTTS(), thg=ClipTHG(), asr=EchoASR()))
    detector = ScriptedDetector()
    engine = ConversationEngine(pipe, ChatHistory(), tmp_path, image=np.zeros((64, 48, 3), np.uint8),
                                settings=EngineSettings(sample_rate=RATE), detector=detector)
    # back and forth at the backend's frame rate: 0 1 2 3 2 1 0 1 ...
    shown = [int(engine.idle.frame(i / 25 + 0.001)[0, 0, 0]) // 10 for i in range(9)]
    assert shown == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert engine.pull_video().shape == (64, 48, 3)
    speaking = GreyTHG().render(None, _utterance(0.04))
    frame = next(iter(speaking))
    assert engine.idle.over(frame, 1.3) is frame  # the backend's own motion: no sway on top
    _say(engine, detector, UtteranceEnded(_utterance(), 1.0))
    _wait(lambda: (_play(engine, 0.5), engine.state == State.LISTENING)[1])
    assert engine.history.as_pairs() == [("tell me the numbers", REPLY)]


def test_two_sessions_on_one_pipeline_keep_their_own_history(tmp_path):
    first, d1 = _engine(tmp_path / "a")
    second = ConversationEngine(first.pipeline, ChatHistory(), tmp_path / "b",
                                settings=EngineSettings(sample_rate=RATE), detector=ScriptedDetector())
    assert second.pull_video() is None  # no portrait: audio only
    _say(first, d1, UtteranceEnded(_utterance(), 1.0))
    _wait(lambda: (_play(first, 0.5), first.state == State.LISTENING and len(first.history) == 1)[1])
    assert len(second.history) == 0


def test_close_during_an_answer_stops_the_workers(tmp_path):
    engine, detector = _engine(tmp_path, llm=WordLLM(reply=" ".join(["word."] * 200)))
    _say(engine, detector, UtteranceEnded(_utterance(), 1.0))
    _wait(lambda: engine.state == State.SPEAKING or _play(engine, 0.02) > 0)
    before = threading.active_count()
    engine.close()
    _wait(lambda: threading.active_count() < before, timeout=5)
    assert engine.state == State.LISTENING


class CountingLLM(WordLLM):
    """A slow model that counts the pieces it was asked for."""

    def __init__(self):
        super().__init__(reply=" ".join(f"Word {i}." for i in range(150)))
        self.pieces = 0

    def stream(self, messages):
        for piece in super().stream(messages):
            self.pieces += 1
            time.sleep(0.02)
            yield piece


def test_barge_in_drops_pending_llm_output_and_speech(tmp_path):
    llm = CountingLLM()
    engine, detector = _engine(tmp_path, llm=llm)
    _say(engine, detector, UtteranceEnded(_utterance(), 1.0))
    _wait(lambda: _play(engine, 0.02) > 0)
    _say(engine, detector, SpeechStarted(2.0))
    time.sleep(0.3)
    stopped_at = llm.pieces
    time.sleep(0.5)
    assert llm.pieces == stopped_at < 100, "the model kept writing after the barge-in"
    assert not np.any(engine.pull_audio(16000))
    assert engine.pull_video().shape == (64, 48, 3)  # back to the idle face


def test_recognition_started_at_the_pause_is_used_when_nothing_was_said_after_it(tmp_path):
    engine, detector = _engine(tmp_path)
    asr = engine.pipeline.stages.asr
    _say(engine, detector, Paused(_utterance(), voiced=20))
    _wait(lambda: len(asr.heard) == 1)
    _say(engine, detector, UtteranceEnded(_utterance(), 1.0, voiced=20))
    _wait(lambda: engine.metrics[0].transcript is not None)
    assert engine.metrics[0].early_transcript and len(asr.heard) == 1  # recognised once, at the pause
    engine.close()


def test_recognition_from_a_pause_the_user_talked_through_is_dropped(tmp_path):
    engine, detector = _engine(tmp_path)
    asr = engine.pipeline.stages.asr
    _say(engine, detector, Paused(_utterance(0.5), voiced=10))
    _say(engine, detector, UtteranceEnded(_utterance(1.5), 1.0, voiced=30))
    _wait(lambda: engine.metrics[0].transcript is not None)
    assert not engine.metrics[0].early_transcript
    assert asr.heard[-1] == pytest.approx(1.5)  # the turn heard the whole utterance
    engine.close()
