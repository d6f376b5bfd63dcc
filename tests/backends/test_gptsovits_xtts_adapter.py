"""The XTTS adapter (it lives beside GPT-SoVITS in VITS/): install hint when coqui-tts is missing, and
the calls it makes, against a fake ``TTS.api``."""

from __future__ import annotations

import importlib.metadata
import types
from typing import ClassVar

import numpy as np
import pytest

from app_modules.errors import BackendUnavailableError, BadInputError
from app_modules.registry import create
from VITS import xtts_tts
from VITS.voices import VoiceLibrary


def test_missing_coqui_names_the_install(monkeypatch):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(BackendUnavailableError, match="pip install coqui-tts"):
        create("tts", "xtts", {"device": "cpu"})  # the registry's own requirement check
    with pytest.raises(BackendUnavailableError, match="pip install coqui-tts"):
        xtts_tts.XTTSTTS(xtts_tts.XTTSTTS.Options(device="cpu"))  # the adapter's guarded import


class _FakeCoqui:
    calls: ClassVar[list] = []

    def __init__(self, model):
        self.model = model
        self.synthesizer = types.SimpleNamespace(output_sample_rate=24000)

    def to(self, device):
        self.device = device
        return self

    def tts(self, text, speaker_wav, language):
        self.calls.append((text, speaker_wav, language))
        return list(np.linspace(-0.5, 0.5, 2400))


def test_synthesize_with_a_library_voice(monkeypatch, tmp_path):
    monkeypatch.setattr(xtts_tts, "_load_coqui", lambda: types.SimpleNamespace(TTS=_FakeCoqui))
    lib = VoiceLibrary(tmp_path)
    t = np.arange(4 * 16000) / 16000
    voice = lib.add("anna", ((0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000), "Hi, I am Anna.", "en")
    # built directly: the registry would refuse first, as torchaudio is not installed here
    tts = xtts_tts.XTTSTTS(xtts_tts.XTTSTTS.Options(device="cpu", voice="anna", voices_dir=str(tmp_path)))
    speech = tts.synthesize("你好")
    assert speech.audio.sample_rate == 24000 and len(speech.audio.samples) == 2400
    assert speech.words[0].end == pytest.approx(0.1)
    assert _FakeCoqui.calls[-1] == ("你好", str(voice.wav), "zh-cn")
    tts.synthesize("Hello.")
    assert _FakeCoqui.calls[-1][2] == "en"
    with pytest.raises(BadInputError):
        tts.synthesize(" ")
