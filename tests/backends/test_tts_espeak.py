"""espeak-ng, the always-available voice: English and Chinese, options that reach the program,
sentence-by-sentence synthesis with aligned word timings, and errors a user can act on."""

from __future__ import annotations

import shutil
import stat

import numpy as np
import pytest

if shutil.which("espeak-ng") is None:
    pytest.skip("apt-get install espeak-ng", allow_module_level=True)

from app_modules import registry  # noqa: E402
from app_modules.errors import BadInputError, StageError, TalkerError  # noqa: E402
from app_modules.media import subtitle_cues, write_srt  # noqa: E402
from app_modules.types import Audio  # noqa: E402
from TTS.align import voiced_frames  # noqa: E402
from TTS.espeak_tts import EspeakTTS  # noqa: E402


def _tts(**kw) -> EspeakTTS:
    return EspeakTTS(EspeakTTS.Options(**kw))


def _f0(audio: Audio) -> float:
    """Median pitch of the voiced 40 ms frames, by autocorrelation (60..400 Hz)."""
    n, sr, pitches = int(0.04 * audio.sample_rate), audio.sample_rate, []
    for i in range(0, len(audio.samples) - n, n):
        x = audio.samples[i:i + n] - audio.samples[i:i + n].mean()
        if np.sqrt(np.mean(x**2)) < 0.05:
            continue
        ac = np.correlate(x, x, "full")[n - 1:]
        lo, hi = sr // 400, sr // 60
        pitches.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(pitches))


def test_english_speech_in_the_common_format():
    speech = _tts().synthesize("Hello there. This is espeak speaking on 2024-05-01.")
    a = speech.audio
    assert a.sample_rate == 24000 and a.samples.dtype == np.float32 and a.samples.ndim == 1
    assert 2.0 < a.duration < 8.0 and voiced_frames(a).mean() > 0.4
    words = [w.text for w in speech.words]
    # numbers and dates are spelled out before synthesis, and the subtitles follow what is said
    assert words[:6] == ["Hello", "there.", "This", "is", "espeak", "speaking"]
    assert words[-4:] == ["May", "first", "twenty", "twenty-four."]
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and 0 <= starts[0] and speech.words[-1].end <= a.duration + 1e-3
    # the sentence gap falls between "there." and "This"
    assert speech.words[2].start - speech.words[1].end > 0.1


def test_chinese_text_gets_the_mandarin_voice_when_auto():
    tts = _tts(voice="auto")
    assert tts.voice_for("你好，世界") == "cmn" and tts.voice_for("hello") == "en-us"
    speech = tts.synthesize("你好，世界。今天是2024年5月1日！")
    assert speech.audio.sample_rate == 24000 and 2.0 < speech.audio.duration < 12.0
    assert "".join(w.text for w in speech.words) == "你好，世界。今天是二零二四年五月一日！"
    # an English voice reads each Chinese character as "Chinese letter ...": far longer
    english = _tts(voice="en-us").synthesize("你好，世界。")
    assert english.audio.duration > 1.5 * _tts(voice="cmn").synthesize("你好，世界。").audio.duration


def test_auto_voice_follows_a_reply_that_switches_language():
    tts, voices = _tts(voice="auto+f3"), []
    speak = tts._speak
    tts._speak = lambda sentence, voice: (voices.append((voice, sentence)), speak(sentence, voice))[1]
    speech = tts.synthesize("I have 2 cats. 我有2只猫。")
    assert voices == [("en-us+f3", "I have two cats."), ("cmn+f3", "我有两只猫。")]
    assert [w.text for w in speech.words][-5:] == ["我", "有", "两", "只", "猫。"]


def test_speed_and_pitch_reach_espeak():
    text = "The rain in Spain stays mainly in the plain."
    slow, fast = _tts(speed=120).synthesize(text), _tts(speed=300).synthesize(text)
    assert fast.audio.duration < 0.6 * slow.audio.duration
    low, high = _f0(_tts(pitch=10).synthesize(text).audio), _f0(_tts(pitch=90).synthesize(text).audio)
    assert high > 1.3 * low, (low, high)


def test_text_that_looks_like_an_option_is_spoken():
    assert _tts().synthesize("-v xx --help").audio.duration > 0.5


def test_subtitles_from_the_timings(tmp_path):
    speech = _tts().synthesize("One sentence here. And another one after it.")
    srt = write_srt(subtitle_cues(speech.words), tmp_path / "a.srt").read_text(encoding="utf-8")
    assert "One sentence here." in srt and "-->" in srt


def test_errors_name_the_fix(monkeypatch, tmp_path):
    with pytest.raises(TalkerError, match=r"unknown espeak-ng voice 'en-zz'.*en-us"):
        _tts(voice="en-zz")
    with pytest.raises(TalkerError, match="speed"):
        _tts(speed=5)
    with pytest.raises(BadInputError, match="nothing to say"):
        _tts().synthesize("**  ** 😀")
    tts = _tts()
    broken = tmp_path / "espeak-ng"
    broken.write_text("#!/bin/sh\necho 'espeak-ng: cannot open audio data' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(tts, "exe", str(broken))
    with pytest.raises(StageError, match="tts: espeak-ng failed.*cannot open audio data"):
        tts.synthesize("hello")


def test_registry_builds_it_from_settings():
    tts = registry.create("tts", "espeak", {"voice": "en-gb", "speed": "180"})
    assert isinstance(tts, EspeakTTS) and tts.options.speed == 180
    assert tts.synthesize("Cheerio.").audio.duration > 0.3
