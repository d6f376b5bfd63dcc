"""OpenAI Whisper (PyTorch) through the ``openai-whisper`` package.

Install: ``pip install --no-deps openai-whisper && pip install numba tiktoken more-itertools`` (its
triton pin would pull about 1 GB of CUDA tooling; the tokenizer and mel assets ship in the wheel).
Model names (tiny .. large-v3, turbo) download once to ``~/.cache/whisper``; a checkpoint file saved as
``{"dims": ..., "model_state_dict": ...}`` (what those downloads are) loads from any path offline.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from app_modules.errors import BackendUnavailableError, MissingWeightsError, StageError, TalkerError
from app_modules.options import Declared, option
from app_modules.types import Audio
from ASR.common import ChunkedASR, hub_offline, looks_like_path, one_line

try:
    import torch
    import whisper
    from whisper.tokenizer import LANGUAGES
except ImportError as e:  # pragma: no cover - depends on the install
    raise BackendUnavailableError(
        f"openai-whisper is not installed ({e}): pip install --no-deps openai-whisper && "
        "pip install numba tiktoken more-itertools") from e


class WhisperASR(ChunkedASR):
    """OpenAI Whisper speech recognition; the checkpoint is loaded once, in ``__init__``."""

    name = "whisper"

    @dataclass(frozen=True)
    class Options(Declared, label="whisper"):
        # tiny, base.en, small, medium, large-v3, turbo ... or a checkpoint file path
        model: str = option("tiny", listed=True)
        # "" detects per recording; or en, zh, ... (an English-only model takes en only)
        language: str = option("", visitor=True, max_len=16)
        # text that sets spelling and style; openai-whisper has no hotwords
        initial_prompt: str = option("", visitor=True, max_len=500)
        device: str = "auto"  # auto (CUDA when present), cpu or cuda
        fp16: bool = True  # half precision on CUDA; always float32 on CPU, where fp16 is slower
        beam_size: int = option(5, min=1, max=10, visitor=True)  # 1 is greedy: faster, slightly less accurate
        threads: int = option(0, min=0, max=256)  # torch CPU threads (process-wide); 0 leaves torch's setting
        vad: bool = option(True, visitor=True)  # cut silence and split long recordings with Silero VAD first
        download_root: str = ""  # "" is ~/.cache/whisper (or $XDG_CACHE_HOME/whisper)

    def __init__(self, options: Options | None = None, checkpoints=None):
        self.options = options or self.Options()
        o = self.options
        if o.beam_size < 1:
            raise TalkerError(f"whisper beam_size must be at least 1, got {o.beam_size}")
        if o.device not in ("auto", "cpu", "cuda"):
            raise TalkerError(f"whisper device must be auto, cpu or cuda, got {o.device!r}")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if o.device == "auto" else o.device
        if o.threads > 0:
            torch.set_num_threads(o.threads)
        self.model = load_whisper(o.model, self.device, o.download_root)
        self.valid_languages = set(LANGUAGES) if self.model.is_multilingual else {"en"}
        self._language(o.language)
        # decoding keeps per-call state on the model (kv-cache hooks): one decode at a time
        self._lock = threading.Lock()

    def _recognise(self, audio: Audio, language: str | None) -> str:
        o = self.options
        with self._lock, torch.inference_mode():
            result = whisper.transcribe(
                self.model, audio.samples, language=language, initial_prompt=o.initial_prompt or None,
                fp16=o.fp16 and self.device == "cuda", beam_size=o.beam_size, verbose=None,
                # our VAD already cut the speech out; each chunk is one utterance, so no carried context
                condition_on_previous_text=False)
        return str(result.get("text", "")).strip()


def whisper_cache(download_root: str = "") -> Path:
    """Where openai-whisper keeps downloaded checkpoints (its own default, so earlier downloads count)."""
    if download_root:
        return Path(download_root).expanduser()
    default = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.getenv("XDG_CACHE_HOME", default)) / "whisper"


def checkpoint_file(name: str, download_root: str = "") -> Path:
    """The local checkpoint for ``name`` (a model name or a file path), downloading a named one if needed."""
    name = str(name).strip()
    if not name:
        raise TalkerError("whisper needs a model: a name such as tiny or small, or a checkpoint file")
    if name not in whisper._MODELS:
        if looks_like_path(name):
            path = Path(name).expanduser()
            if not path.is_file():
                raise MissingWeightsError(f"whisper checkpoint file not found: {path}")
            return path
        raise TalkerError(f"unknown whisper model {name!r}; available models = "
                          f"{', '.join(whisper.available_models())} (or a checkpoint file path)")
    url = whisper._MODELS[name]
    root = whisper_cache(download_root)
    target = root / os.path.basename(url)
    if target.is_file():
        if _sha256(target) == url.split("/")[-2]:  # the published url carries the file's sha256
            return target
        raise MissingWeightsError(f"the whisper checkpoint {target} is damaged (its checksum does not match): "
                                  "delete it and load the model again to re-download it")
    how = (f"download it where there is network (`python -c \"import whisper; whisper.load_model('{name}')\"`) "
           f"and copy {target.name} to {root}, or set the model option to a checkpoint file")
    if hub_offline():
        raise MissingWeightsError(f"whisper model {name!r} is not in {root} and offline mode is set: {how}")
    try:
        return Path(whisper._download(url, str(root), False))
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        raise MissingWeightsError(f"could not download whisper model {name!r} from {url}: "
                                  f"{one_line(e)}. To fix: {how}") from e


def load_whisper(name: str, device: str = "cpu", download_root: str = ""):
    """A ``whisper.model.Whisper``: a named model and a checkpoint file load through the same call."""
    name = str(name).strip()
    path = checkpoint_file(name, download_root)
    try:
        model = whisper.load_model(str(path), device=device)
    except (KeyError, TypeError) as e:
        raise StageError("asr", f"{path} is not a Whisper checkpoint (it needs 'dims' and "
                                f"'model_state_dict'): {one_line(e)}") from e
    except Exception as e:  # torch.load raises many kinds on a damaged file
        raise StageError("asr", f"cannot load the whisper checkpoint {path}: {one_line(e)}") from e
    if name in whisper._ALIGNMENT_HEADS:  # what load_model(name) adds; used for word timings
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS[name])
    return model


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
