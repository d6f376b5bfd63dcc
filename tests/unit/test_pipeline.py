"""The pipeline's order of events, its streaming, and that a failed turn leaves the history alone."""

import threading
import time

import numpy as np
import pytest

from app_modules.errors import StageError
from app_modules.history import ChatHistory
from app_modules.pipeline import Pipeline, Stages
from app_modules.types import (
    Audio,
    SentenceAudio,
    SentenceVideo,
    StageFailed,
    TextDelta,
    Transcript,
    TurnResult,
)
from LLM.base import LLM
from THG.base import THG
from TTS.base import TTS, Speech


class ScriptedLLM(LLM):
    def __init__(self, pieces, fail_after=None, delay=0.0):
        self.pieces, self.fail_after, self.delay = pieces, fail_after, delay
        self.seen = []

    def stream(self, messages):
        self.seen.append(messages)
        for i, p in enumerate(self.pieces):
            if self.fail_after is not None and i == self.fail_after:
                raise StageError("llm", "the server closed the connection")
            time.sleep(self.delay)
            yield p


class ToneTTS(TTS):
    def __init__(self, fail_on=None):
        self.log, self.fail_on = [], fail_on

    def synthesize(self, text):
        if self.fail_on and self.fail_on in text:
            raise StageError("tts", "voice crashed")
        self.log.append(("tts", text, time.perf_counter()))
        n = int(0.3 * 16000)
        return Speech(Audio((0.3 * np.sin(np.arange(n) * 0.05)).astype(np.float32), 16000))


class GreyTHG(THG):
    def __init__(self, log):
        self.log = log

    def prepare(self, image):
        return image

    def render(self, avatar, audio):
        n = int(np.ceil(audio.duration * self.fps))
        for i in range(n):
            yield np.full((64, 48, 3), (i * 7) % 255, np.uint8)
        self.log.append(("thg", None, time.perf_counter()))


IMAGE = np.zeros((64, 48, 3), np.uint8)


def run(pipe, history, tmp_path, **kw):
    return list(pipe.turn(history, tmp_path, image=IMAGE, **kw))


def test_events_in_order_and_first_video_before_last_sentence_is_spoken(tmp_path):
    tts = ToneTTS()
    pipe = Pipeline(Stages(llm=ScriptedLLM(["First sentence here. ", "Second one is ", "here. Third and last."]),
                           tts=tts, thg=GreyTHG(tts.log)))
    history = ChatHistory("be brief")
    events = run(pipe, history, tmp_path, text="hi")
    kinds = [type(e) for e in events]
    assert kinds[0] is Transcript and kinds[-1] is TurnResult
    assert TextDelta in kinds
    audios = [e for e in events if isinstance(e, SentenceAudio)]
    videos = [e for e in events if isinstance(e, SentenceVideo)]
    assert [a.text for a in audios] == ["First sentence here.", "Second one is here.", "Third and last."]
    assert [v.index for v in videos] == [0, 1, 2]
    # per sentence: audio, then its video; video 0 exists before sentence 3 is synthesized
    assert events.index(videos[0]) < events.index(audios[2])
    first_video_done = next(t for k, _, t in tts.log if k == "thg")
    last_tts = [t for k, _, t in tts.log if k == "tts"][-1]
    assert first_video_done < last_tts
    result = events[-1]
    assert result.video.is_file() and result.subtitles.read_text().count("-->") >= 3
    assert history.as_pairs() == [("hi", "First sentence here. Second one is here. Third and last.")]


def test_first_sentence_is_spoken_while_the_llm_is_still_writing(tmp_path):
    tts = ToneTTS()
    llm = ScriptedLLM(["One sentence comes first. "] + ["more "] * 10 + ["end."], delay=0.05)
    pipe = Pipeline(Stages(llm=llm, tts=tts, thg=GreyTHG(tts.log)))
    events = run(pipe, ChatHistory(), tmp_path, text="go")
    first_audio = next(i for i, e in enumerate(events) if isinstance(e, SentenceAudio))
    last_delta = max(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert first_audio < last_delta


@pytest.mark.parametrize("where", ["llm", "tts"])
def test_failed_turn_keeps_history(tmp_path, where):
    history = ChatHistory("persona")
    history.commit("earlier question", "earlier answer")
    before = history.as_pairs()
    tts = ToneTTS(fail_on="Second" if where == "tts" else None)
    llm = ScriptedLLM(["First sentence here. ", "Second sentence. ", "Third."],
                      fail_after=2 if where == "llm" else None)
    pipe = Pipeline(Stages(llm=llm, tts=tts, thg=GreyTHG(tts.log)))
    events = run(pipe, history, tmp_path, text="new question")
    failures = [e for e in events if isinstance(e, StageFailed)]
    assert len(failures) == 1 and failures[0].stage == where
    assert not any(isinstance(e, TurnResult) for e in events)
    assert history.as_pairs() == before
    # the earlier turn reached the model
    assert {"role": "assistant", "content": "earlier answer"} in llm.seen[0]


def test_empty_text_is_refused_before_any_stage_runs(tmp_path):
    llm = ScriptedLLM(["never"])
    pipe = Pipeline(Stages(llm=llm, tts=ToneTTS(), thg=GreyTHG([])))
    events = run(pipe, ChatHistory(), tmp_path, text="   ")
    assert len(events) == 1 and isinstance(events[0], StageFailed) and "empty" in events[0].message
    assert llm.seen == []


def test_silent_audio_is_refused(tmp_path):
    pipe = Pipeline(Stages(llm=ScriptedLLM(["x"]), tts=ToneTTS(), thg=GreyTHG([]), asr=object()))
    events = run(pipe, ChatHistory(), tmp_path, audio=Audio(np.zeros(16000, np.float32), 16000))
    assert isinstance(events[0], StageFailed) and "no speech detected" in events[0].message


def test_closing_the_stream_cancels_the_workers(tmp_path):
    tts = ToneTTS()
    llm = ScriptedLLM(["Sentence number one. "] + ["Another sentence. "] * 20, delay=0.02)
    pipe = Pipeline(Stages(llm=llm, tts=tts, thg=GreyTHG(tts.log)))
    history = ChatHistory()
    gen = pipe.turn(history, tmp_path, text="talk", image=IMAGE)
    for ev in gen:
        if isinstance(ev, SentenceVideo):
            break
    gen.close()
    time.sleep(0.5)
    spoken = len([x for x in tts.log if x[0] == "tts"])
    time.sleep(0.5)
    assert len([x for x in tts.log if x[0] == "tts"]) == spoken  # nothing more is synthesized
    assert spoken < 21
    assert history.as_pairs() == []
    assert not [t for t in threading.enumerate() if t.name.startswith("turn-") and t.is_alive()]


def test_a_failed_or_cancelled_turn_leaves_no_files(tmp_path):
    tts = ToneTTS(fail_on="Third")
    pipe = Pipeline(Stages(llm=ScriptedLLM(["First sentence here. Second one here. Third and last."]), tts=tts,
                           thg=GreyTHG(tts.log)))
    events = run(pipe, ChatHistory(), tmp_path / "failed", text="talk")
    assert any(isinstance(e, SentenceVideo) for e in events) and isinstance(events[-1], StageFailed)
    assert list((tmp_path / "failed").rglob("*.*")) == []  # the two rendered sentences went with the turn

    gen = Pipeline(Stages(llm=ScriptedLLM(["One more sentence. "] * 30, delay=0.01), tts=ToneTTS(),
                          thg=GreyTHG([]))).turn(ChatHistory(), tmp_path / "cancelled", text="talk", image=IMAGE)
    for ev in gen:
        if isinstance(ev, SentenceVideo):
            break
    gen.close()  # the tab closed, or the user interrupted
    assert list((tmp_path / "cancelled").rglob("*.*")) == []

    done = run(Pipeline(Stages(llm=ScriptedLLM(["Fine, all good."]), tts=ToneTTS(), thg=GreyTHG([]))),
               ChatHistory(), tmp_path / "ok", text="talk")
    assert isinstance(done[-1], TurnResult) and done[-1].video.is_file()  # a finished turn keeps its files


def test_a_turn_over_the_limits_is_refused_and_a_long_answer_is_cut(tmp_path):
    from app_modules.config import LimitSettings
    from app_modules.types import Progress

    llm = ScriptedLLM(["word " * 50] * 100)
    pipe = Pipeline(Stages(llm=llm, tts=ToneTTS(), thg=GreyTHG([])), limits=LimitSettings(text_chars=100,
                                                                                         answer_chars=300))
    refused = run(pipe, ChatHistory(), tmp_path, text="x" * 101)
    assert len(refused) == 1 and refused[0].bad_input and "limits.text_chars" in refused[0].message
    assert llm.seen == []
    events = run(pipe, ChatHistory(), tmp_path, text="talk a lot")
    result = events[-1]
    assert isinstance(result, TurnResult) and len(result.reply) <= 300
    assert any(isinstance(e, Progress) and "cut at 300" in e.message for e in events)
    too_long = Audio(np.zeros(16000 * 200, np.float32), 16000)
    pipe.stages.asr = object()  # never asked: the recording is refused before recognition
    refused = run(pipe, ChatHistory(), tmp_path, audio=too_long)
    assert refused[0].bad_input and "limits.audio_seconds" in refused[0].message


def test_turns_wait_for_the_shared_render_limit_and_see_their_place(tmp_path):
    from app_modules.slots import RenderSlots
    from app_modules.types import Progress

    slots = RenderSlots(capacity=1, max_waiting=1)
    pipe = Pipeline(Stages(llm=ScriptedLLM(["A sentence to say."]), tts=ToneTTS(), thg=GreyTHG([])), slots=slots)
    first = pipe.turn(ChatHistory(), tmp_path, text="one", image=IMAGE)
    assert isinstance(next(first), Transcript) and slots.running == 1  # the first holds the slot
    second = pipe.turn(ChatHistory(), tmp_path, text="two", image=IMAGE)
    waiting = next(second)
    assert isinstance(waiting, Progress) and "number 1" in waiting.message
    third = run(pipe, ChatHistory(), tmp_path, text="three")
    assert len(third) == 1 and third[0].stage == "busy" and "busy" in third[0].message  # the line is full
    assert isinstance(list(first)[-1], TurnResult)  # the first ends, and the second gets its turn
    assert isinstance(list(second)[-1], TurnResult)
    assert slots.running == 0 and slots.waiting == 0


def test_nothing_follows_a_failure(tmp_path):
    class SlowTTS(ToneTTS):
        def synthesize(self, text):
            time.sleep(0.4)  # still speaking the first sentence when the model dies
            return super().synthesize(text)

    llm = ScriptedLLM(["First sentence is here. ", "Second sentence is here. ", "Third"], fail_after=2)
    events = run(Pipeline(Stages(llm=llm, tts=SlowTTS(), thg=GreyTHG([]))), ChatHistory(), tmp_path, text="go")
    failures = [i for i, e in enumerate(events) if isinstance(e, StageFailed)]
    assert failures == [len(events) - 1], [type(e).__name__ for e in events]
