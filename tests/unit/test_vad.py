"""Silero VAD on real speech (espeak-ng, made in the test), silence and noise; input normalisation."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from app_modules import media
from app_modules.errors import BadInputError, TalkerError
from app_modules.types import Audio
from ASR import vad
from ASR.common import check_language, join_texts, normalise_language, to_16k_mono

SR = 16000


def _espeak(text: str, tmp_path) -> Audio:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    out = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(out), text], check=True, capture_output=True)
    return media.load_audio(out, SR)  # espeak writes 22.05 kHz: this also resamples


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Audio:
    return _espeak("Hello there. How are you today?", tmp_path_factory.mktemp("vad"))


def test_segments_find_speech_between_silences(speech):
    padded = Audio(np.concatenate([_silence(1.5), speech.samples, _silence(2.0)]), SR)
    segs = vad.speech_segments(padded)
    assert segs, "no speech found in espeak speech"
    start, end = segs[0].seconds()[0], segs[-1].seconds()[1]
    assert 1.0 <= start <= 1.8  # speech begins at 1.5 s; the segment keeps a little padding
    assert 1.5 + speech.duration - 0.6 <= end <= 1.5 + speech.duration + 0.5


def test_trim_removes_leading_and_trailing_silence(speech):
    padded = Audio(np.concatenate([_silence(2.0), speech.samples, _silence(2.0)]), SR)
    trimmed = vad.trim(padded)
    assert trimmed.sample_rate == SR
    assert trimmed.duration < padded.duration - 3.0
    assert trimmed.duration > speech.duration * 0.6


def test_split_cuts_long_recordings_at_pauses(speech):
    # four utterances 1.5 s apart; chunks of at most 4 s must cut between them, not inside one
    parts = []
    for _ in range(4):
        parts += [speech.samples, _silence(1.5)]
    long = Audio(np.concatenate(parts), SR)
    opts = vad.VADOptions(max_segment_s=max(4.0, speech.duration + 1.0))
    chunks = vad.split(long, opts)
    assert len(chunks) >= 2
    assert all(c.duration <= opts.max_segment_s + 2 * opts.pad_ms / 1000 for c in chunks)
    # together the chunks hold all the speech and little of the 6 s of pauses
    total = sum(c.duration for c in chunks)
    assert 4 * speech.duration * 0.7 < total < long.duration - 3.0


def test_group_segments_respects_the_limit():
    segs = [vad.Segment(i * 3 * SR, i * 3 * SR + 2 * SR) for i in range(5)]  # five 2 s segments
    groups = vad.group_segments(segs, max_seconds=5.0, gap_ms=100)
    assert [len(g) for g in groups] == [2, 2, 1]


@pytest.mark.parametrize("kind", ["silence", "quiet-noise", "loud-noise", "hum"])
def test_no_speech_in_silence_or_noise(kind):
    rng = np.random.default_rng(0)
    n = 3 * SR
    samples = {
        "silence": np.zeros(n),
        "quiet-noise": rng.standard_normal(n) * 0.01,
        "loud-noise": rng.standard_normal(n) * 0.3,
        "hum": 0.3 * np.sin(2 * np.pi * 50 * np.arange(n) / SR),
    }[kind].astype(np.float32)
    audio = Audio(samples, SR)
    assert not vad.detect_speech(audio)
    with pytest.raises(BadInputError, match="no speech detected"):
        vad.require_speech(audio)


def test_require_speech_returns_chunks(speech):
    chunks = vad.require_speech(speech)
    assert len(chunks) == 1 and chunks[0].sample_rate == SR


def test_tiny_input_has_no_speech():
    assert vad.speech_segments(Audio(np.zeros(100, np.float32), SR)) == []


def test_wrong_rate_is_a_programming_error(speech):
    with pytest.raises(ValueError, match="16000"):
        vad.speech_segments(Audio(speech.samples, 22050))


@pytest.mark.parametrize("rate,channels,dtype", [(44100, 2, np.int16), (48000, 1, np.float32),
                                                 (8000, 1, np.int16), (16000, 2, np.float64)])
def test_browser_recordings_become_16k_mono(speech, rate, channels, dtype):
    """gradio hands over (rate, array): int16 or float, mono or (n, 2) stereo, at the browser's rate."""
    x = media.resample(speech, rate).samples
    if channels == 2:
        x = np.stack([x, x * 0.5], axis=1)
    if dtype == np.int16:
        x = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    out = to_16k_mono((rate, x.astype(dtype)))
    assert out.sample_rate == SR and out.samples.ndim == 1 and out.samples.dtype == np.float32
    assert abs(out.duration - speech.duration) < 0.01
    assert np.max(np.abs(out.samples)) <= 1.0
    assert vad.detect_speech(out)


def test_float_audio_in_int16_range_is_rescaled(speech):
    """Stereo int16 that went through media.from_array arrives as floats up to 32767."""
    from app_modules.media import from_array

    x = (np.stack([speech.samples, speech.samples], axis=1) * 20000).astype(np.int16)
    out = to_16k_mono(from_array(x, SR))
    assert 0.3 < np.max(np.abs(out.samples)) <= 1.0
    assert vad.detect_speech(out)


def test_languages_and_joining():
    assert normalise_language("") is None and normalise_language("auto") is None and normalise_language(None) is None
    assert normalise_language("English") == "en" and normalise_language("zh-CN") == "zh"
    assert check_language("ZH", {"zh", "en"}, "x") == "zh"
    with pytest.raises(TalkerError, match="one of: en, zh"):
        check_language("klingon", {"zh", "en"}, "x")
    assert join_texts(["Hello there.", " How are you?", ""]) == "Hello there. How are you?"
    assert join_texts(["你好。", "世界"]) == "你好。世界"
    assert join_texts(["你好", "world"]) == "你好 world"


def test_loading_the_vad_keeps_the_process_torch_threads():
    # silero_vad's import sets one thread for the whole process; every later torch stage would crawl
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(2); from ASR import vad; vad.load_vad(); "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.stdout.strip().splitlines()[-1] == "2"
