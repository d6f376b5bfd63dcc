import numpy as np

from app_modules import media
from app_modules.types import Audio, WordTiming


def test_browser_stereo_int16_becomes_mono_float_in_range():
    left = (np.sin(np.arange(4800) * 0.1) * 32767).astype(np.int16)
    a = media.from_array(np.stack([left, left], axis=1), 48000)
    assert a.samples.dtype == np.float32 and a.samples.ndim == 1
    assert 0.99 < np.abs(a.samples).max() <= 1.0


def test_pad_to_frames_makes_audio_a_whole_number_of_frames():
    a = media.pad_to_frames(Audio(np.ones(16000 + 100, np.float32), 16000), 25)
    assert len(a.samples) == 26 * 640 and media.frame_count(a, 25) == 26


def test_subtitle_cues_break_at_sentences_and_length():
    text = "Hi there. This cue is long enough to need a break somewhere soon"
    words = [WordTiming(w, i * 0.3, i * 0.3 + 0.25) for i, w in enumerate(text.split())]
    cues = media.subtitle_cues(words, max_chars=30)
    assert cues[0].text == "Hi there." and all(len(c.text) <= 30 for c in cues)
    assert cues[0].end <= cues[1].start


def test_silence_is_refused_with_a_message():
    import pytest

    from app_modules.errors import BadInputError

    with pytest.raises(BadInputError, match="no speech detected"):
        media.require_sound(Audio(np.zeros(16000, np.float32), 16000))
