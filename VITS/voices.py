"""The voice library: named reference clips that the voice-cloning backends (GPT-SoVITS, XTTS) imitate.

On disk, one folder per voice under the library root (``TALKER_VOICES``, default
``checkpoints/voices``, which git ignores)::

    <root>/<name>/reference.wav   the clip, 3-10 s of one speaker
    <root>/<name>/voice.json      {"transcript": ..., "language": "zh" | "en"}
    <root>/<name>/gpt.ckpt        optional: the GPT (s1) weights GPT-SoVITS fine-tuning wrote for this voice
    <root>/<name>/sovits.pth      optional: the SoVITS (s2) weights it wrote

Every clip is checked when it is added: GPT-SoVITS refuses clips outside 3-10 s, and a silent or
clipped clip gives a broken voice without any error, so we say so up front.
A built-in English voice, ``default``, is made with espeak-ng the first time it is asked for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app_modules.errors import BackendUnavailableError, BadInputError

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints" / "voices"
LANGUAGES = ("zh", "en")
MIN_SECONDS, MAX_SECONDS = 3.0, 10.0
SILENCE_RMS = 10 ** (-50 / 20)  # below -50 dBFS of RMS the clip is silence or room noise
CLIP_LEVEL, CLIP_FRACTION = 0.99, 0.001  # >0.1 % of samples at full scale: the recording was clipped
GPT_FILE, SOVITS_FILE = "gpt.ckpt", "sovits.pth"
BUILTIN = "default"
BUILTIN_TEXT = ("Hello, I am the built-in voice of Talker. "
                "Add a recording of your own voice to make me sound like you.")
_NAME = re.compile(r"^[\w][\w .-]{0,63}$")


@dataclass(frozen=True)
class Voice:
    """One library entry."""

    name: str
    wav: Path
    transcript: str
    language: str
    gpt_weights: Path | None = None  # fine-tuned GPT-SoVITS s1 .ckpt ({'weight', 'config'}); None = the shared one
    sovits_weights: Path | None = None  # fine-tuned s2 .pth ({'weight', 'config', 'info'}); None = the shared one

    def cache_key(self) -> tuple:
        """What a backend's per-voice cache is keyed by: the voice and its files' identities, so that a
        voice re-recorded (or re-trained) under the same name is prepared anew."""
        return (self, *(file_identity(p) for p in (self.wav, self.gpt_weights, self.sovits_weights)))


def file_identity(path: Path | None) -> tuple | None:
    """(path, mtime, size) of a file, or ``BadInputError`` when it has gone."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError as e:
        raise BadInputError(f"the voice file {path} is gone ({e.strerror}); add the voice again") from e
    return (str(path), st.st_mtime_ns, st.st_size)


def load_clip(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the sample rate, or ``BadInputError`` if the file cannot be read."""
    import soundfile as sf

    try:
        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as e:
        raise BadInputError(f"cannot read the reference clip {path}: {e}. Use a WAV, FLAC or OGG file") from e
    return samples.mean(axis=1), int(sr)


def check_clip(samples: np.ndarray, sample_rate: int) -> None:
    """Raise ``BadInputError`` when a clip is unusable as a voice reference."""
    seconds = len(samples) / float(sample_rate)
    if seconds < MIN_SECONDS:
        raise BadInputError(f"the reference clip is too short ({seconds:.1f} s); record {MIN_SECONDS:.0f} to "
                            f"{MAX_SECONDS:.0f} seconds of one person speaking")
    if seconds > MAX_SECONDS:
        raise BadInputError(f"the reference clip is too long ({seconds:.1f} s); trim it to at most "
                            f"{MAX_SECONDS:.0f} seconds (one or two sentences)")
    x = np.asarray(samples, dtype=np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    if rms < SILENCE_RMS:
        raise BadInputError(f"the reference clip is silent (level {20 * np.log10(max(rms, 1e-12)):.0f} dBFS); "
                            "check the microphone and record again")
    clipped = float(np.mean(np.abs(x) >= CLIP_LEVEL))
    if clipped > CLIP_FRACTION:
        raise BadInputError(f"the reference clip is clipped ({100 * clipped:.1f}% of samples at full scale); "
                            "record again with the input level turned down")


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name) or name in (".", ".."):
        raise BadInputError(f"invalid voice name {name!r}: use up to 64 letters, digits, spaces, '.', '-' or '_'")
    return name


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise BadInputError(f"unsupported voice language {language!r}; choose one of: {', '.join(LANGUAGES)}")
    return language


def _check_weights(path: str | Path | None, suffix: str) -> Path | None:
    if path is None or path == "":
        return None
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"fine-tuned weights not found: {p}")
    if p.suffix.lower() != suffix:
        what = "GPT (s1)" if suffix == ".ckpt" else "SoVITS (s2)"
        raise BadInputError(f"{p.name} is not a {what} weights file: GPT-SoVITS training writes the GPT as "
                            "a .ckpt (GPT_weights*/) and the SoVITS model as a .pth (SoVITS_weights*/)")
    return p


class VoiceLibrary:
    """Add, rename, delete and list voices in one folder."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root or os.environ.get("TALKER_VOICES", DEFAULT_ROOT))

    def _dir(self, name: str) -> Path:
        return self.root / name

    def _read(self, folder: Path) -> Voice | None:
        meta, wav = folder / "voice.json", folder / "reference.wav"
        if not (meta.is_file() and wav.is_file()):
            return None
        info = json.loads(meta.read_text(encoding="utf-8"))
        gpt, sovits = folder / GPT_FILE, folder / SOVITS_FILE
        return Voice(folder.name, wav, info["transcript"], info["language"],
                     gpt if gpt.is_file() else None, sovits if sovits.is_file() else None)

    def list(self) -> list[Voice]:
        """All voices, sorted by name (the built-in one only once it has been made)."""
        if not self.root.is_dir():
            return []
        voices = (self._read(d) for d in sorted(self.root.iterdir()) if d.is_dir())
        return [v for v in voices if v is not None]

    def names(self) -> list[str]:
        return [v.name for v in self.list()]

    def get(self, name: str) -> Voice:
        """The voice called ``name``; the built-in one is created on first use."""
        voice = self._read(self._dir(name)) if _NAME.match(name or "") else None
        if voice is not None:
            return voice
        if name == BUILTIN:
            return self._make_builtin()
        known = ", ".join(self.names()) or "none yet"
        raise BadInputError(f"no voice named {name!r}; available voices: {known} (or {BUILTIN!r}, built in)")

    def add(self, name: str, clip: str | Path | tuple[np.ndarray, int], transcript: str, language: str,
            gpt_weights: str | Path | None = None, sovits_weights: str | Path | None = None) -> Voice:
        """Check and store a clip (a path, or ``(samples, sample_rate)``) with what is said in it, and
        optionally the GPT (.ckpt) and SoVITS (.pth) weights GPT-SoVITS fine-tuning made for this voice
        (copied in; they are read, by the safe loader, when the voice is first used)."""
        name = _check_name(name)
        weights = {GPT_FILE: _check_weights(gpt_weights, ".ckpt"), SOVITS_FILE: _check_weights(sovits_weights, ".pth")}
        _check_language(language)
        transcript = (transcript or "").strip()
        if not transcript:
            raise BadInputError("the transcript is empty; type exactly what is said in the reference clip")
        if self._dir(name).exists():
            raise BadInputError(f"a voice named {name!r} already exists; choose another name or delete it first")
        samples, sr = load_clip(clip) if isinstance(clip, (str, Path)) else (np.asarray(clip[0], np.float32), clip[1])
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        check_clip(samples, sr)
        return self._write(name, samples, sr, transcript, language, weights)

    def _write(self, name, samples, sr, transcript, language, weights: dict[str, Path | None] | None = None) -> Voice:
        import soundfile as sf

        folder = self._dir(name)
        tmp = Path(tempfile.mkdtemp(prefix=".adding-", dir=self._ensure_root()))
        try:  # build in a scratch folder and rename, so a crash never leaves half a voice
            sf.write(str(tmp / "reference.wav"), samples, sr, subtype="PCM_16")
            (tmp / "voice.json").write_text(json.dumps({"transcript": transcript, "language": language},
                                                       ensure_ascii=False, indent=1), encoding="utf-8")
            for dest, src in (weights or {}).items():
                if src is not None:
                    shutil.copyfile(src, tmp / dest)
            tmp.rename(folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return self._read(folder)

    def _ensure_root(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def rename(self, old: str, new: str) -> Voice:
        new = _check_name(new)
        if not _NAME.match(old or "") or not self._dir(old).is_dir():
            raise BadInputError(f"no voice named {old!r}; available voices: {', '.join(self.names()) or 'none'}")
        if self._dir(new).exists():
            raise BadInputError(f"a voice named {new!r} already exists; choose another name")
        self._dir(old).rename(self._dir(new))
        return self._read(self._dir(new))

    def delete(self, name: str) -> None:
        if not _NAME.match(name or "") or not self._dir(name).is_dir():
            raise BadInputError(f"no voice named {name!r}; available voices: {', '.join(self.names()) or 'none'}")
        shutil.rmtree(self._dir(name))

    def _make_builtin(self) -> Voice:
        """Speak ``BUILTIN_TEXT`` with espeak-ng, so the app has a voice before the user records one."""
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise BackendUnavailableError(
                "the built-in voice is made with espeak-ng, which is not installed: `apt-get install espeak-ng`, "
                "or add a voice of your own")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "builtin.wav"
            subprocess.run([exe, "-v", "en-us", "-w", str(out), BUILTIN_TEXT], check=True,
                           capture_output=True, timeout=60)
            samples, sr = load_clip(out)
        peak = float(np.abs(samples).max()) if len(samples) else 0.0
        if peak > 0.9:  # espeak-ng may peak at full scale; keep headroom so the clip check passes
            samples = samples * (0.9 / peak)
        check_clip(samples, sr)
        return self._write(BUILTIN, samples, sr, BUILTIN_TEXT, "en")
