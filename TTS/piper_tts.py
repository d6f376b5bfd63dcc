"""Piper: offline neural voices (VITS exported to ONNX), faster than real time on a laptop CPU.

Install: ``pip install piper-tts``. Voices: ``python -m app_modules.cli download piper`` fetches
en_US-lessac-medium (and, as optional files, zh_CN-huayan-medium) into ``checkpoints/piper/``;
any other voice from https://huggingface.co/rhasspy/piper-voices works by path.
Piper gives no word timings here (that needs the ``onnx`` package to patch the model), so
``TTS.align`` spreads the words over the voiced audio.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BackendUnavailableError, MissingWeightsError, StageError, TalkerError
from app_modules.options import Declared, option
from app_modules.types import Audio
from TTS.align import align_words
from TTS.base import TTS, Speech
from TTS.common import by_sentence, finish
from TTS.text_norm import is_chinese, normalize_text

try:
    from piper import PiperVoice, SynthesisConfig
except ImportError as e:  # pragma: no cover - depends on the install
    raise BackendUnavailableError("Piper is not installed: pip install piper-tts") from e

DEFAULT_VOICE = "en_US-lessac-medium"
DEFAULT_ZH_VOICE = "zh_CN-huayan-medium"
DOWNLOAD = "python -m app_modules.cli download piper"

# Voices are loaded once per process and shared by every session (an ONNX session is thread-safe
# for inference); keyed by the resolved model and config paths.
_VOICES: dict[tuple[str, str], PiperVoice] = {}
_LOCK = threading.Lock()


def load_voice(model: Path, config: Path) -> PiperVoice:
    key = (str(model.resolve()), str(config.resolve()))
    with _LOCK:
        if key not in _VOICES:
            try:
                _VOICES[key] = PiperVoice.load(str(model), config_path=str(config))
            except Exception as e:  # onnxruntime and json errors alike: the files are unusable
                raise TalkerError(f"cannot load the Piper voice {model.name}: {e}. The file may be "
                                  f"truncated; delete it and run `{DOWNLOAD}` again") from e
        return _VOICES[key]


class PiperTTS(TTS):
    """A Piper voice; Chinese sentences go to ``zh_model`` when one is set and present."""

    @dataclass(frozen=True)
    class Options(Declared, label="piper"):
        # an .onnx path, or a voice name in checkpoints/piper/ ("en_US-lessac-medium"); "" is the default voice
        model: str = option("", listed=True)
        # the voice's .json; "" is the model path + ".json"
        config: str = ""
        # the voice for Chinese sentences (name or path); "" speaks everything with ``model``
        zh_model: str = option(DEFAULT_ZH_VOICE, listed=True)
        # speaker id, for voices with several speakers (None: the voice's default)
        speaker: int | None = option(None, min=0, max=10000, visitor=True)
        # 1.0 is the voice's own pace; 1.25 is a quarter faster (Piper's length_scale = 1 / speed)
        speed: float = option(1.0, min=0.25, max=4.0, step=0.05, visitor=True)
        # generator noise and phoneme-length noise; None keeps the voice's trained values
        noise_scale: float | None = option(None, min=0, max=2, step=0.01, visitor=True)
        noise_w: float | None = option(None, min=0, max=2, step=0.01, visitor=True)
        # applied before loudness normalisation, so only useful to tame a clipping voice
        volume: float = option(1.0, min=0, max=2, step=0.05, visitor=True)

    def __init__(self, options: Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = options or self.Options()
        self.checkpoints = checkpoints or CheckpointManager()
        if not 0.25 <= self.options.speed <= 4.0:
            raise TalkerError(f"piper speed must be within 0.25..4.0, got {self.options.speed}")
        model, config = self._resolve(self.options.model or DEFAULT_VOICE, self.options.config)
        self.voice = load_voice(model, config)
        self._verify_speaker()

    def _resolve(self, model: str, config: str = "") -> tuple[Path, Path]:
        """(model, config) paths for a path or a catalog voice name, or ``MissingWeightsError``."""
        if model.endswith(".onnx") or "/" in model or "\\" in model:
            m = Path(model).expanduser()
            if not m.is_file():
                raise MissingWeightsError(f"Piper voice model not found: {m}")
        else:
            # the model manager's copy (hub cache or checkpoints/piper/), else a voice put in checkpoints/piper/
            entry = next((f for f in self.checkpoints.files("piper") if f.name == f"{model}.onnx"), None)
            m = (self.checkpoints.path(entry) if entry else None) or self.checkpoints.root / "piper" / f"{model}.onnx"
            if not m.is_file():
                catalog = {f.name for f in self.checkpoints.files("piper")}
                how = (f"fetch it with `{DOWNLOAD}`" + (" (include the optional files)"
                       if model == DEFAULT_ZH_VOICE else "")) if f"{model}.onnx" in catalog else (
                    "download it from https://huggingface.co/rhasspy/piper-voices into that folder")
                raise MissingWeightsError(f"missing Piper voice {model!r}: {m} -- {how}")
        c = Path(config).expanduser() if config else m.with_name(m.name + ".json")
        if not c.is_file():
            raise MissingWeightsError(f"the Piper voice config is missing: {c} (it comes with the .onnx; "
                                      f"`{DOWNLOAD}` fetches both)")
        return m, c

    def _verify_speaker(self) -> None:
        s, n = self.options.speaker, self.voice.config.num_speakers
        if s is not None and not 0 <= s < n:
            names = ", ".join(f"{k}={v}" for k, v in sorted(self.voice.config.speaker_id_map.items(),
                                                             key=lambda kv: kv[1])[:20])
            raise TalkerError(f"piper speaker {s} does not exist: this voice has {n} speaker(s)"
                              + (f"; speakers = {names}" if names else " (use 0 or leave it unset)"))

    def _voice_for(self, text: str) -> PiperVoice:
        if self.options.zh_model and is_chinese(text) and not self.voice.config.espeak_voice.startswith(("cmn", "zh")):
            return load_voice(*self._resolve(self.options.zh_model))
        return self.voice

    def synthesize(self, text: str) -> Speech:
        return by_sentence(normalize_text(text, numbers=False), self._sentence)

    def _sentence(self, sentence: str) -> Speech:
        # the voice is chosen per sentence, so a reply that switches language switches voice
        voice = self._voice_for(sentence)
        spoken = normalize_text(sentence, voice.config.espeak_voice)
        audio = self._speak(spoken, voice)
        return Speech(audio, align_words(spoken, audio))

    def _speak(self, sentence: str, voice: PiperVoice) -> Audio:
        o = self.options
        speaker = o.speaker if voice is self.voice else None  # ids belong to the main voice
        syn = SynthesisConfig(speaker_id=speaker, length_scale=1.0 / o.speed, noise_scale=o.noise_scale,
                              noise_w_scale=o.noise_w, volume=o.volume, normalize_audio=False)
        try:
            chunks = [c.audio_float_array for c in voice.synthesize(sentence, syn_config=syn)]
        except Exception as e:  # phonemizer and onnxruntime errors: report, do not crash the turn
            raise StageError("tts", f"Piper failed on {sentence[:40]!r}: {e}") from e
        if not chunks:
            raise StageError("tts", f"Piper produced no audio for {sentence[:40]!r} (nothing pronounceable)")
        samples = np.concatenate(chunks).astype(np.float32)
        return finish(Audio(samples, voice.config.sample_rate))
