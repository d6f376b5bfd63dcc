"""What every recogniser shares: input normalisation, VAD chunking, language names, hub look-ups.

A backend subclasses ``ChunkedASR`` and implements ``_recognise`` for one chunk of speech; the
base class resamples any input to 16 kHz mono (with scipy, not torchaudio), rejects silence,
cuts the speech out with Silero VAD and joins the chunk texts.
"""

from __future__ import annotations

import os
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from app_modules import media
from app_modules.errors import BadInputError, StageError, TalkerError
from app_modules.types import Audio
from ASR.base import ASR, SAMPLE_RATE

# Whisper-style names people type for the languages Talker is used with most
_LANGUAGE_ALIASES = {
    "english": "en", "chinese": "zh", "mandarin": "zh", "cantonese": "yue", "japanese": "ja",
    "korean": "ko", "french": "fr", "german": "de", "spanish": "es", "russian": "ru",
    "zh-cn": "zh", "zh-tw": "zh", "zh-hans": "zh", "zh-hant": "zh", "en-us": "en", "en-gb": "en",
}


def to_16k_mono(audio: Audio | tuple[int, np.ndarray] | str | Path) -> Audio:
    """Any input as 16 kHz mono float32.

    Accepts an ``Audio`` at any rate, a browser recording as gradio hands it over (``(rate, array)``,
    int16 or float, mono or stereo) or a path to anything ffmpeg reads."""
    if isinstance(audio, (str, Path)):
        return media.load_audio(audio, SAMPLE_RATE)
    if isinstance(audio, tuple):
        rate, samples = audio
        audio = Audio(_float_mono(samples), int(rate))
    elif np.asarray(audio.samples).ndim != 1 or audio.samples.dtype != np.float32:
        audio = Audio(_float_mono(audio.samples), audio.sample_rate)
    peak = float(np.max(np.abs(audio.samples))) if audio.samples.size else 0.0
    if peak > 2.0:
        # float samples in int16 range: integer audio converted without scaling somewhere upstream
        # (media.from_array does this to stereo int16). No real float recording peaks above 2.
        audio = Audio(audio.samples / np.float32(32768.0 if peak <= 32768.0 else peak), audio.sample_rate)
    return media.resample(audio, SAMPLE_RATE)


def _float_mono(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1], channels averaged.

    Integer samples are scaled before the channels are averaged: averaging first turns int16 into
    float64 that still holds values up to 32767, as ``media.from_array`` does with stereo int16."""
    a = np.asarray(samples)
    if a.dtype.kind == "i":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    elif a.dtype.kind == "u":
        a = (a.astype(np.float32) - 128.0) / 128.0
    if a.ndim == 2:  # (n, channels) as gradio and soundfile give it, or (channels, n)
        a = a.mean(axis=1) if a.shape[1] <= 8 else a.mean(axis=0)
    return a.astype(np.float32).reshape(-1)


def normalise_language(language: str | None) -> str | None:
    """``None`` for detect ("", "auto", None), else a lower-case code ("English" -> "en")."""
    if language is None:
        return None
    lang = language.strip().lower().replace("_", "-")
    if lang in ("", "auto", "detect"):
        return None
    return _LANGUAGE_ALIASES.get(lang, lang)


def check_language(language: str | None, valid: set[str] | dict[str, Any], backend: str) -> str | None:
    """``language`` normalised, or a ``BadInputError`` listing the codes ``backend`` knows."""
    lang = normalise_language(language)
    if lang is not None and lang not in valid:
        raise BadInputError(f"{backend} does not know the language {language!r}; use \"\" (detect) or one of: "
                          f"{', '.join(sorted(valid))}")
    return lang


def join_texts(texts: list[str]) -> str:
    """Chunk texts joined with a space, except between CJK characters, which take none."""
    out = ""
    for t in (t.strip() for t in texts):
        if not t:
            continue
        if out and not (_is_cjk(out[-1]) and _is_cjk(t[0])):
            out += " "
        out += t
    return out


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uff00" <= ch <= "\uffef"


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception as one short line: library messages often span several (the CLI prints one)."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def hub_offline() -> bool:
    """Whether the user asked for no network (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TALKER_OFFLINE"))


def looks_like_path(name: str) -> bool:
    """A model option meant as a local file or folder rather than a model name or hub id.

    Hub ids ("Systran/faster-whisper-small") also hold a slash, so only an existing path, an
    absolute or relative-looking one, or a file name with a checkpoint suffix counts."""
    return (Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or "\\" in name
            or name.endswith((".pt", ".pth", ".bin")))


def default_threads() -> int:
    # The app shares the CPU with TTS and the talking head; all cores for ASR would starve them.
    return max(1, min(4, os.cpu_count() or 1))


class ChunkedASR(ASR):
    """Shared ``transcribe``: normalise, reject silence, VAD-split, recognise each chunk, join.

    Subclasses set ``self.options`` (with ``language`` and ``vad`` fields), ``self.name`` and
    ``self.valid_languages``, call ``self._language(self.options.language)`` once loaded so a bad
    setting fails at start-up, and implement ``_recognise``."""

    name = "asr"
    valid_languages: set[str] | dict[str, Any] | None = None  # None: the model has one language
    options: Any

    def transcribe(self, audio: Audio, language: str | None = None) -> str:
        lang = self._language(self.options.language if language is None else language)
        audio = to_16k_mono(audio)
        media.require_sound(audio)
        chunks = self._speech_chunks(audio)
        texts = []
        for chunk in chunks:
            try:
                texts.append(self._recognise(chunk, lang))
            except TalkerError:
                raise
            except Exception as e:  # a decoder failure is the stage's, not the user's, fault
                raise StageError("asr", f"{self.name} failed on a {chunk.duration:.1f} s chunk: "
                                        f"{one_line(e)}") from e
        text = join_texts(texts)
        if not text:
            raise BadInputError(f"no speech detected: {self.name} heard no words in the recording "
                                f"({audio.duration:.1f} s); speak clearly and try again")
        return text

    def transcribe_file(self, path: str | Path, language: str | None = None) -> str:
        """Decode ``path`` (any file ffmpeg reads) and transcribe it."""
        return self.transcribe(media.load_audio(path, SAMPLE_RATE), language)

    def timed_transcribe(self, audio: Audio, language: str | None = None) -> tuple[str, float]:
        """The text and the seconds it took (for benchmarks and the UI's timings)."""
        t0 = time.perf_counter()
        text = self.transcribe(audio, language)
        return text, time.perf_counter() - t0

    def _language(self, language: str | None) -> str | None:
        """``language`` checked against what the model knows; None (detect) stays None."""
        if self.valid_languages is None:  # a one-language model: nothing to choose
            return normalise_language(language)
        return check_language(language, self.valid_languages, self.name)

    def _speech_chunks(self, audio: Audio) -> list[Audio]:
        if getattr(self.options, "vad", True):
            from ASR import vad

            return vad.require_speech(audio)
        return [audio]

    @abstractmethod
    def _recognise(self, audio: Audio, language: str | None) -> str:
        """The text of one chunk (16 kHz mono, at most about 30 s); ``language`` None means detect."""
