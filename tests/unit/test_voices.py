"""The voice library: storage, names, the built-in espeak-ng voice, and the reference clip checks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from app_modules.errors import BadInputError
from VITS.voices import BUILTIN, BUILTIN_TEXT, VoiceLibrary, check_clip

SR = 16000


def speechlike(seconds: float, level: float = 0.3, seed: int = 0) -> np.ndarray:
    """A syllable-rate modulated harmonic tone: loud enough, never at full scale."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    tone = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((140, 280, 420, 560)))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    x = tone * env + 0.02 * rng.standard_normal(len(t))
    return (level * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture()
def lib(tmp_path):
    return VoiceLibrary(tmp_path / "voices")


def test_add_list_get_rename_delete(lib, tmp_path):
    wav = tmp_path / "me.wav"
    sf.write(wav, speechlike(4.0), SR)
    v = lib.add("Me", wav, " 你好，我是小明。 ", "zh")
    assert v.name == "Me" and v.transcript == "你好，我是小明。" and v.language == "zh"
    samples, sr = sf.read(v.wav)
    assert sr == SR and abs(len(samples) / sr - 4.0) < 1e-3
    lib.add("other voice", (speechlike(5.0, seed=1), SR), "Hello there.", "en")
    assert lib.names() == ["Me", "other voice"]
    assert lib.get("other voice").transcript == "Hello there."

    renamed = lib.rename("Me", "Ming")
    assert renamed.transcript == "你好，我是小明。" and lib.names() == ["Ming", "other voice"]
    lib.delete("other voice")
    assert lib.names() == ["Ming"]


def test_library_errors_name_the_fix(lib):
    lib.add("a", (speechlike(4.0), SR), "hi there", "en")
    with pytest.raises(BadInputError, match="already exists"):
        lib.add("a", (speechlike(4.0), SR), "hi there", "en")
    with pytest.raises(BadInputError, match="available voices: a"):
        lib.get("nobody")
    with pytest.raises(BadInputError, match="invalid voice name"):
        lib.add("../escape", (speechlike(4.0), SR), "hi", "en")
    with pytest.raises(BadInputError, match="zh, en"):
        lib.add("b", (speechlike(4.0), SR), "hi", "fr")
    with pytest.raises(BadInputError, match="transcript is empty"):
        lib.add("b", (speechlike(4.0), SR), "  ", "en")
    with pytest.raises(BadInputError, match="no voice named"):
        lib.delete("b")
    lib.add("b", (speechlike(4.0), SR), "hi", "en")
    with pytest.raises(BadInputError, match="already exists"):
        lib.rename("a", "b")
    assert lib.names() == ["a", "b"]


def test_unreadable_file(lib, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(BadInputError, match="cannot read"):
        lib.add("x", junk, "hi", "en")
    assert lib.names() == []


@pytest.mark.parametrize("clip,message", [
    (speechlike(2.0), "too short"),
    (speechlike(11.0), "too long"),
    (np.zeros(4 * SR, np.float32), "silent"),
    (1e-4 * speechlike(4.0), "silent"),
    (np.clip(10.0 * speechlike(4.0), -1.0, 1.0), "clipped"),
])
def test_bad_clips_are_refused(lib, clip, message):
    with pytest.raises(BadInputError, match=message):
        check_clip(clip, SR)
    with pytest.raises(BadInputError, match=message):
        lib.add("bad", (clip, SR), "text", "en")
    assert lib.names() == []  # nothing half-written


def test_good_clip_edges_pass():
    check_clip(speechlike(3.0), SR)
    check_clip(speechlike(10.0), SR)
    check_clip(speechlike(5.0, level=0.98), SR)  # loud but not clipped


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_builtin_voice_is_made_on_first_use(lib):
    assert lib.names() == []
    v = lib.get(BUILTIN)
    assert v.transcript == BUILTIN_TEXT and v.language == "en"
    samples, sr = sf.read(v.wav)
    check_clip(samples, sr)
    assert lib.get(BUILTIN).wav == v.wav and lib.names() == [BUILTIN]


def test_fine_tuned_weights_travel_with_the_voice(lib, tmp_path):
    (tmp_path / "me-e15.ckpt").write_bytes(b"gpt weights")
    (tmp_path / "me_e8_s200.pth").write_bytes(b"sovits weights")
    v = lib.add("me", (speechlike(4.0), SR), "Hello there.", "en",
                gpt_weights=tmp_path / "me-e15.ckpt", sovits_weights=tmp_path / "me_e8_s200.pth")
    assert v.gpt_weights.read_bytes() == b"gpt weights" and v.sovits_weights.read_bytes() == b"sovits weights"
    assert lib.get("me") == v and lib.rename("me", "you").gpt_weights.name == "gpt.ckpt"
    plain = lib.add("plain", (speechlike(4.0), SR), "Hello there.", "en")
    assert plain.gpt_weights is None and plain.sovits_weights is None


def test_cache_key_follows_the_files(lib):
    v = lib.add("me", (speechlike(4.0), SR), "Hello there.", "en")
    key = v.cache_key()
    assert lib.get("me").cache_key() == key  # same files, same key
    lib.delete("me")
    again = lib.add("me", (speechlike(5.0, seed=3), SR), "Hello there.", "en")
    assert again.cache_key() != key  # re-recorded under the same name: prepared anew
    lib.delete("me")
    with pytest.raises(BadInputError, match="gone"):
        again.cache_key()
