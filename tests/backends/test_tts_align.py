"""The parts every voice shares: one output format, sentence-by-sentence synthesis, aligned timings."""

from __future__ import annotations

import numpy as np
import pytest

from app_modules.errors import BadInputError
from app_modules.types import Audio, WordTiming
from TTS.align import align_words, attach_punctuation, sentence_timing, tokens, voiced_span
from TTS.base import Speech
from TTS.common import SAMPLE_RATE, by_sentence, finish


def _bursts(spans: list[tuple[float, float]], total: float, sr: int = 16000, level: float = 0.3) -> Audio:
    """Tone during ``spans`` (seconds), silence elsewhere: speech with known pauses."""
    x = np.zeros(int(total * sr), dtype=np.float32)
    t = np.arange(len(x)) / sr
    for a, b in spans:
        m = (t >= a) & (t < b)
        x[m] = level * np.sin(2 * np.pi * 180 * t[m])
    return Audio(x, sr)


def test_tokens_split_words_and_chinese_characters():
    assert tokens("Hello , world! 我们在2024年。ok") == ["Hello,", "world!", "我", "们", "在", "2024", "年。", "ok"]


def test_words_land_in_the_voiced_parts_only():
    audio = _bursts([(0.5, 1.0), (2.0, 2.5)], 3.0)
    assert voiced_span(audio) == pytest.approx((0.5, 2.5), abs=0.021)
    hello, world = align_words("hello world", audio)
    assert (hello.start, hello.end) == pytest.approx((0.5, 1.0), abs=0.021)
    assert (world.start, world.end) == pytest.approx((2.0, 2.5), abs=0.021)
    # four characters over the two bursts: two in each, none in the pause
    starts = [w.start for w in align_words("你好，世界。", audio)]
    assert starts == pytest.approx([0.5, 0.75, 2.0, 2.25], abs=0.021)
    assert sentence_timing(" Hi. ", audio) == WordTiming("Hi.", 0.5, 2.5)


def test_longer_words_get_more_time():
    words = align_words("a extraordinarily b", _bursts([(0.0, 2.0)], 2.0))
    durations = [w.end - w.start for w in words]
    assert durations[1] > 5 * durations[0] and sum(durations) == pytest.approx(2.0, abs=0.03)


def test_silence_still_gets_timings():
    words = align_words("nothing heard", Audio(np.zeros(16000, dtype=np.float32), 16000))
    assert [w.text for w in words] == ["nothing", "heard"] and words[-1].end <= 1.0


def test_punctuation_is_put_back_on_service_word_timings():
    words = [WordTiming("Hello", 0, 1), WordTiming("world", 1, 2), WordTiming("missing", 2, 3)]
    assert [w.text for w in attach_punctuation(words, "Hello, world!")] == ["Hello,", "world!", "missing"]
    zh = attach_punctuation([WordTiming("你好", 0, 1), WordTiming("世界", 1, 2)], "你好，世界。")
    assert [w.text for w in zh] == ["你好，", "世界。"]


def test_finish_gives_one_rate_and_one_loudness():
    quiet, loud = _bursts([(0.1, 0.9)], 1.0, sr=22050, level=0.02), _bursts([(0.1, 0.9)], 1.0, sr=16000, level=0.9)
    a, b = finish(quiet), finish(loud)
    assert a.sample_rate == b.sample_rate == SAMPLE_RATE and a.samples.dtype == np.float32
    rms = [float(np.sqrt(np.mean(x.samples[int(0.2 * SAMPLE_RATE):int(0.8 * SAMPLE_RATE)] ** 2))) for x in (a, b)]
    assert rms[0] == pytest.approx(rms[1], rel=0.05) and np.abs(b.samples).max() <= 0.95 + 1e-6


def test_by_sentence_joins_sentences_with_shifted_timings():
    said = []

    def speak(sentence: str) -> Speech:
        said.append(sentence)
        return Speech(finish(_bursts([(0.1, 0.9)], 1.0)))

    speech = by_sentence("First one. Second one!", speak, gap_s=0.5)
    assert said == ["First one.", "Second one!"]
    assert speech.audio.duration == pytest.approx(2.5, abs=1e-3)
    assert [w.text for w in speech.words] == ["First", "one.", "Second", "one!"]
    assert speech.words[2].start == pytest.approx(1.5 + 0.1, abs=0.021)
    with pytest.raises(BadInputError):
        by_sentence(" ... ", speak)
