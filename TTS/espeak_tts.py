"""espeak-ng: the voice that is always there (offline, about a hundred languages, no weights).

Install: ``apt-get install espeak-ng``. It sounds robotic but starts in milliseconds, so it is also
the fallback of the online voices. Word timings come from ``TTS.align``.
"""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess
from dataclasses import dataclass

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BackendUnavailableError, StageError, TalkerError
from app_modules.media import from_array
from app_modules.options import Declared, option
from app_modules.types import Audio
from TTS.align import align_words
from TTS.base import TTS, Speech
from TTS.common import by_sentence, finish
from TTS.text_norm import is_chinese, normalize_text


@functools.cache
def available_voices(exe: str = "espeak-ng") -> frozenset[str]:
    """Every voice and language name ``espeak-ng -v`` accepts here (en-us, cmn, zh, yue, ...)."""
    proc = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=30)
    names: set[str] = set()
    for line in proc.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            names.add(cols[1].lower())  # language
            names.add(cols[4].lower())  # file, e.g. gmw/en-us
            names.add(cols[4].rsplit("/", 1)[-1].lower())
            # "(zh-cmn 5)(zh 5)": other languages the voice answers to
            names.update(n.lower() for n in re.findall(r"\(([\w-]+) \d+\)", line))
    return frozenset(names)


class EspeakTTS(TTS):
    """espeak-ng through its command line; one process per sentence (a few milliseconds each)."""

    @dataclass(frozen=True)
    class Options(Declared, label="espeak"):
        # an espeak-ng voice (`espeak-ng --voices`), optionally with a variant: "en-us", "cmn", "en-gb+f3";
        # "auto" picks "cmn" for Chinese text and "en-us" otherwise
        voice: str = option("en-us", visitor=True, max_len=64)
        # words per minute
        speed: int = option(160, min=80, max=450, step=10, visitor=True)
        pitch: int = option(50, min=0, max=99, visitor=True)
        amplitude: int = option(100, min=0, max=200, visitor=True)

    def __init__(self, options: Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = options or self.Options()
        self.exe = shutil.which("espeak-ng")
        if self.exe is None:
            raise BackendUnavailableError("espeak-ng is not installed: apt-get install espeak-ng")
        self._verify_options()

    def _verify_options(self) -> None:
        o = self.options
        base = o.voice.split("+", 1)[0].lower()
        if base != "auto" and base not in available_voices(self.exe):
            near = sorted(v for v in available_voices(self.exe) if "/" not in v and v[:2] == base[:2])
            raise TalkerError(f"unknown espeak-ng voice {o.voice!r}; similar voices = {', '.join(near[:20]) or 'none'}"
                              " (all: `espeak-ng --voices`)")
        for name, lo, hi in (("speed", 80, 450), ("pitch", 0, 99), ("amplitude", 0, 200)):
            value = getattr(o, name)
            if not lo <= value <= hi:
                raise TalkerError(f"espeak option {name}={value} is out of range {lo}..{hi}")

    def voice_for(self, text: str) -> str:
        voice = self.options.voice
        if voice.split("+", 1)[0].lower() == "auto":
            variant = voice[len("auto"):]
            return ("cmn" if is_chinese(text) else "en-us") + variant
        return voice

    def synthesize(self, text: str) -> Speech:
        return by_sentence(normalize_text(text, numbers=False), self._sentence)

    def _sentence(self, sentence: str) -> Speech:
        # the voice is chosen per sentence, so "auto" follows a reply that switches language
        voice = self.voice_for(sentence)
        spoken = normalize_text(sentence, voice.split("+", 1)[0])
        audio = self._speak(spoken, voice)
        return Speech(audio, align_words(spoken, audio))

    def _speak(self, sentence: str, voice: str) -> Audio:
        import soundfile as sf

        o = self.options
        # the text goes in on stdin, never as an argument: a reply starting with "-" is not an option
        args = [self.exe, "-v", voice, "-s", str(o.speed), "-p", str(o.pitch), "-a", str(o.amplitude),
                "-b", "1", "--stdout"]
        try:
            proc = subprocess.run(args, input=sentence.encode("utf-8"), capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise StageError("tts", f"espeak-ng could not run: {e}") from e
        if proc.returncode != 0 or len(proc.stdout) <= 44:
            err = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}, no audio"
            raise StageError("tts", f"espeak-ng failed for voice {voice!r}: {err}")
        samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        return finish(from_array(samples, rate))
