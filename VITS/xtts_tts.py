"""Coqui XTTS v2 voice cloning as a Talker TTS backend, run in a worker process (``VITS/xtts_worker.py``).

coqui-tts's import package is called ``TTS``, like Talker's TTS stage package, and it imports its
submodules lazily, so it cannot share a process with Talker. The worker is started once per backend
with ``python -I`` and without the project root on its path, loads the model, and then speaks one
sentence per request; speaker latents are cached per voice there. coqui-tts pins torch < 2.9 and
transformers < 4.56, so it usually lives in an environment of its own: ``TALKER_XTTS_PYTHON`` names
that environment's Python (the operator's setting; default: this interpreter).

If the worker dies, the sentence fails with its exit code and last lines of output, and the next
sentence starts a new worker.
"""

from __future__ import annotations

import collections
import importlib.metadata
import json
import logging
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BackendUnavailableError, BadInputError, StageError
from app_modules.options import Declared, option
from app_modules.types import Audio, WordTiming
from TTS.base import TTS, Speech
from VITS import xtts_worker
from VITS.voices import Voice, VoiceLibrary, file_identity

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PYTHON_ENV = "TALKER_XTTS_PYTHON"  # another Python with coqui-tts installed
INSTALL_HINT = ("XTTS needs coqui-tts and a torchaudio that loads with its torch (a CUDA machine): "
                f"`pip install coqui-tts` here, or in a separate environment named by {PYTHON_ENV}")
LICENCE_HINT = ("coqui asks you to accept the Coqui Public Model License before it downloads XTTS v2: "
                "read https://coqui.ai/cpml and, if you agree, set COQUI_TOS_AGREED=1 in the environment")
# XTTS language codes for the languages Talker's voice library knows
_LANGS = {"en": "en", "zh": "zh-cn"}
_CJK = re.compile(r"[\u4e00-\u9fff]")

VoiceRef = Voice | str | None


def worker_python() -> str:
    return os.environ.get(PYTHON_ENV) or sys.executable


def coqui_site() -> str | None:
    """The site folder holding coqui-tts for this interpreter, or None when the worker runs another one.

    Raises ``BackendUnavailableError`` when this interpreter is the worker's and coqui-tts is missing."""
    if os.environ.get(PYTHON_ENV):
        return None
    try:
        dist = importlib.metadata.distribution("coqui-tts")
    except importlib.metadata.PackageNotFoundError:
        raise BackendUnavailableError(INSTALL_HINT) from None
    return str(Path(dist.locate_file("")).resolve())


class WorkerDied(StageError):
    """The worker process ended; the message has its exit code and last output."""


class XTTSWorker:
    """One worker process and its two pipes. ``request`` is one sentence; callers hold their own lock."""

    def __init__(self, model: str, device: str, voice_cache: int, load_timeout_s: float):
        if Path(model).exists():  # a local model folder: the worker runs elsewhere
            model = str(Path(model).resolve())
        cmd = [worker_python(), "-I", str(Path(xtts_worker.__file__).resolve()), "--root", str(ROOT),
               "--model", model, "--device", device, "--voice-cache", str(voice_cache)]
        site = coqui_site()
        if site:
            cmd += ["--site", site]
        try:
            # started in the temporary folder: nothing of the working folder can be imported by accident
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, cwd=tempfile.gettempdir())
        except OSError as e:
            raise BackendUnavailableError(f"cannot start the XTTS worker with {cmd[0]}: {e}") from e
        self._replies: queue.Queue = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._read_replies, daemon=True, name="xtts-replies").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="xtts-stderr").start()
        self._next_id = 0
        self._finalizer = weakref.finalize(self, _stop, self.proc)
        ready, _ = self._wait(load_timeout_s, "loading the model")
        if not ready.get("ok"):
            self.close()
            error = ready.get("error", "")
            hint = LICENCE_HINT if "EOF" in error else INSTALL_HINT
            raise BackendUnavailableError(f"the XTTS worker could not load {model!r}: {error}. {hint}")
        self.sample_rate = int(ready["sample_rate"])

    def _read_replies(self) -> None:
        try:
            while (msg := xtts_worker.receive(self.proc.stdout)) is not None:
                self._replies.put(msg)
        except (OSError, ValueError) as e:
            log.warning("XTTS worker stream broken: %s", e)
        self._replies.put(None)  # end of stream: the worker is gone

    def _read_stderr(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr.append(line)
            log.debug("xtts worker: %s", line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _died(self, doing: str) -> WorkerDied:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        tail = " | ".join(line for line in self._stderr if line.strip())[-1500:]
        return WorkerDied("tts", f"the XTTS worker stopped while {doing} (exit code {code})"
                                 + (f": {tail}" if tail else ""))

    def _wait(self, timeout: float, doing: str) -> tuple[dict, bytes]:
        try:
            msg = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise StageError("tts", f"the XTTS worker gave no answer in {timeout:.0f} s while {doing}; "
                                    "it was stopped") from None
        if msg is None:
            raise self._died(doing)
        return msg

    def request(self, text: str, wav: Path, language: str, voice_key: str, timeout: float) -> np.ndarray:
        self._next_id += 1
        rid = self._next_id
        try:
            xtts_worker.send(self.proc.stdin, {"op": "say", "id": rid, "text": text, "wav": str(wav),
                                               "language": language, "voice_key": voice_key})
        except (BrokenPipeError, OSError):
            raise self._died("receiving a sentence") from None
        reply, blob = self._wait(timeout, f"speaking {text[:40]!r}")
        if reply.get("id") != rid:
            self.close()
            raise StageError("tts", f"the XTTS worker answered request {reply.get('id')} to request {rid}; "
                                    "it was stopped")
        if not reply.get("ok"):
            raise StageError("tts", f"XTTS failed on {text!r}: {reply.get('error')}")
        return np.frombuffer(blob, dtype="<f4").astype(np.float32)

    def close(self, timeout: float = 5.0) -> None:
        """Ask the worker to quit, and end it if it does not within ``timeout``."""
        if self.alive():
            try:
                xtts_worker.send(self.proc.stdin, {"op": "quit"})
                self.proc.stdin.close()
                self.proc.wait(timeout=timeout)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self._finalizer()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            stream.close()
        except (OSError, ValueError):
            pass


class XTTSTTS(TTS):
    """Speaks in a library voice with XTTS v2 (24 kHz). Best on a GPU: about 13 tokens/s on 2 CPU cores."""

    @dataclass(frozen=True)
    class Options(Declared, label="xtts"):
        """Settings; each field can be set in settings.yaml or on the command line."""

        model: str = "tts_models/multilingual/multi-dataset/xtts_v2"  # coqui model name or local folder
        voice: str = option("default", visitor=True, max_len=64)  # a name in the voice library (VITS.voices)
        language: str = option("auto", choices=("auto", "en", "zh"), visitor=True)
        device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda"
        voices_dir: str = ""  # voice library folder; empty = TALKER_VOICES or checkpoints/voices
        voice_cache: int = option(8, min=1, max=256)  # voices whose speaker latents the worker keeps
        load_timeout_s: float = option(3600.0, min=1, max=86400)  # the first load downloads about 1.8 GB
        sentence_timeout_s: float = option(300.0, min=1, max=3600)

    def __init__(self, options: XTTSTTS.Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = o = options or XTTSTTS.Options()
        if o.language not in ("auto", *_LANGS):
            raise BadInputError(f"unsupported language {o.language!r}; choose auto, {', '.join(_LANGS)}")
        if o.device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", o.device):
            raise BadInputError(f"unknown device {o.device!r}; valid devices = auto, cpu, cuda, cuda:N")
        if o.voice_cache < 1 or o.load_timeout_s <= 0 or o.sentence_timeout_s <= 0:
            raise BadInputError("voice_cache must be at least 1 and the timeouts positive")
        self.voices = VoiceLibrary(o.voices_dir or None)
        self._lock = threading.Lock()
        self._worker = self._start()

    def _start(self) -> XTTSWorker:
        o = self.options
        return XTTSWorker(o.model, o.device, o.voice_cache, o.load_timeout_s)

    @property
    def sample_rate(self) -> int:
        return self._worker.sample_rate

    def _language(self, text: str) -> str:
        lang = self.options.language
        if lang == "auto":
            lang = "zh" if _CJK.search(text) else "en"
        return _LANGS[lang]

    def resolve(self, voice: VoiceRef) -> Voice:
        """The ``Voice`` a call means: itself, the library voice of that name, or the default voice."""
        if isinstance(voice, Voice):
            return voice
        return self.voices.get(voice or self.options.voice)

    def synthesize(self, text: str, voice: VoiceRef = None) -> Speech:
        """Speak ``text`` in ``voice`` (a ``Voice``, a library name, or None for the ``voice`` option)."""
        text = (text or "").strip()
        if not text:
            raise BadInputError("no text to speak")
        v = self.resolve(voice)
        key = json.dumps(file_identity(v.wav))  # a re-recorded voice gets new latents
        with self._lock:
            if not self._worker.alive():
                log.warning("the XTTS worker had stopped; starting a new one")
                self._worker = self._start()
            samples = self._worker.request(text, v.wav.resolve(), self._language(text), key,
                                           self.options.sentence_timeout_s)
        samples = np.clip(samples, -1.0, 1.0)
        sr = self._worker.sample_rate
        return Speech(Audio(samples, sr), (WordTiming(text, 0.0, len(samples) / sr),))

    def close(self) -> None:
        """Stop the worker process (it is also stopped when this object is collected or Python exits)."""
        with self._lock:
            self._worker.close()
