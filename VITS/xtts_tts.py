"""Coqui XTTS v2 voice cloning as a Talker TTS backend (through coqui-tts's ``TTS.api``).

coqui-tts needs torchaudio, which does not load against the CPU torch wheel used here, so this adapter
imports it only in the constructor and says how to install it when it is missing. Its import package is
also called ``TTS``, the name of Talker's own TTS stage package; ``_load_coqui`` imports it from its
install location under that name for the duration of the import and then restores ours.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import (
    BackendUnavailableError,
    BadInputError,
    StageError,
    TalkerError,
)
from app_modules.options import Declared, option
from app_modules.types import Audio, WordTiming
from TTS.base import TTS, Speech
from VITS.voices import VoiceLibrary

INSTALL_HINT = ("XTTS needs coqui-tts and a torchaudio that loads with your torch (a CUDA machine): "
                "`pip install coqui-tts`")
# XTTS language codes for the languages Talker's voice library knows
_LANGS = {"en": "en", "zh": "zh-cn"}
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _load_coqui():
    """coqui-tts's ``TTS.api`` module, imported past the name clash with Talker's ``TTS`` package."""
    try:
        dist = importlib.metadata.distribution("coqui-tts")
    except importlib.metadata.PackageNotFoundError:
        raise BackendUnavailableError(INSTALL_HINT) from None
    site = Path(dist.locate_file(""))
    ours = {k: v for k, v in sys.modules.items() if k == "TTS" or k.startswith("TTS.")}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, str(site))
    try:
        return importlib.import_module("TTS.api")
    except Exception as e:  # torchaudio / torchcodec failures surface as many exception types
        raise BackendUnavailableError(f"coqui-tts is installed but does not import ({e}). {INSTALL_HINT}") from e
    finally:
        sys.path.remove(str(site))
        # keep coqui's modules reachable under a private prefix, and give ``TTS`` back to Talker
        for k in [k for k in sys.modules if k == "TTS" or k.startswith("TTS.")]:
            sys.modules["_coqui_" + k] = sys.modules.pop(k)
        sys.modules.update(ours)


class XTTSTTS(TTS):
    """Speaks in a library voice with XTTS v2 (24 kHz). Best on a GPU: about 13 tokens/s on 2 CPU cores."""

    @dataclass(frozen=True)
    class Options(Declared, label="xtts"):
        """Settings; each field can be set in settings.yaml or on the command line."""

        model: str = "tts_models/multilingual/multi-dataset/xtts_v2"  # coqui model name or local folder
        voice: str = option("default", visitor=True, max_len=64)  # a name in the voice library (VITS.voices)
        language: str = option("auto", visitor=True, max_len=16)  # "auto", "en" or "zh"
        device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda"
        voices_dir: str = ""  # voice library folder; empty = TALKER_VOICES or checkpoints/voices

    def __init__(self, options: XTTSTTS.Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = o = options or XTTSTTS.Options()
        if o.language not in ("auto", *_LANGS):
            raise BadInputError(f"unsupported language {o.language!r}; choose auto, {', '.join(_LANGS)}")
        api = _load_coqui()
        import torch

        device = ("cuda" if torch.cuda.is_available() else "cpu") if o.device == "auto" else o.device
        try:
            self.model = api.TTS(o.model).to(device)
        except Exception as e:
            raise BackendUnavailableError(f"cannot load XTTS model {o.model!r}: {e}") from e
        self.voices = VoiceLibrary(o.voices_dir or None)
        self._lock = threading.Lock()

    def _language(self, text: str) -> str:
        lang = self.options.language
        if lang == "auto":
            lang = "zh" if _CJK.search(text) else "en"
        return _LANGS[lang]

    def synthesize(self, text: str) -> Speech:
        text = (text or "").strip()
        if not text:
            raise BadInputError("no text to speak")
        voice = self.voices.get(self.options.voice)
        with self._lock:
            try:
                wav = self.model.tts(text=text, speaker_wav=str(voice.wav), language=self._language(text))
            except TalkerError:
                raise
            except Exception as e:
                raise StageError("tts", f"XTTS failed on {text!r}: {e}") from e
        samples = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
        sr = int(getattr(getattr(self.model, "synthesizer", None), "output_sample_rate", 24000))
        return Speech(Audio(samples, sr), (WordTiming(text, 0.0, len(samples) / sr),))
