"""Whisper on CTranslate2 through faster-whisper: the default recogniser, fast on CPU and GPU.

Install: ``pip install faster-whisper``. The model manager's models (``whisper-tiny``, ``whisper-base``,
``whisper-small``: pinned, fetched with ``python -m app_modules.cli download``) load from where it put
them; other model names (tiny .. large-v3, turbo) download once from the Hugging Face hub into its
cache (``HF_ENDPOINT`` selects a mirror); a local CTranslate2 folder (model.bin, config.json,
tokenizer.json) works offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app_modules.checkpoints import CATALOG, CheckpointManager
from app_modules.errors import BackendUnavailableError, MissingWeightsError, StageError, TalkerError
from app_modules.options import Declared, option
from app_modules.types import Audio
from ASR.common import ChunkedASR, default_threads, hub_offline, looks_like_path, one_line

try:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import _LANGUAGE_CODES
    from faster_whisper.utils import _MODELS, download_model
except ImportError as e:  # pragma: no cover - depends on the install
    raise BackendUnavailableError(f"faster-whisper is not installed ({e}): pip install faster-whisper") from e


class FasterWhisperASR(ChunkedASR):
    """Whisper (CTranslate2) speech recognition; weights are loaded once, in ``__init__``."""

    name = "faster-whisper"

    @dataclass(frozen=True)
    class Options(Declared, label="faster-whisper"):
        # a model manager's model (whisper-base ...), a size (tiny, base.en, small, large-v3, turbo ...), a hub id
        # or a local folder
        model: str = option("whisper-base", listed=True)
        # "" detects per recording; or en, zh, ... (an English-only model takes en only)
        language: str = option("", visitor=True, max_len=16)
        # text that sets spelling and style ("Talker, Linly, SadTalker.")
        initial_prompt: str = option("", visitor=True, max_len=500)
        hotwords: str = option("", visitor=True, max_len=500)  # words to favour (names, jargon), space separated
        device: str = "auto"  # auto (CUDA when present), cpu or cuda
        compute_type: str = "auto"  # auto picks the fastest this device supports (int8 on most CPUs)
        beam_size: int = option(5, min=1, max=10, visitor=True)  # 1 is greedy: faster, slightly less accurate
        cpu_threads: int = option(0, min=0, max=256)  # 0: up to 4, so ASR leaves cores for TTS and the talking head
        vad: bool = option(True, visitor=True)  # cut silence and split long recordings with Silero VAD first
        download_root: str = ""  # "" is the Hugging Face cache

    def __init__(self, options: Options | None = None, checkpoints=None):
        self.options = options or self.Options()
        self._verify_options()
        path = resolve_model(self.options.model, self.options.download_root,
                             checkpoints if isinstance(checkpoints, CheckpointManager) else None)
        try:
            self.model = WhisperModel(path, device=self.options.device, compute_type=self.options.compute_type,
                                      cpu_threads=self.options.cpu_threads or default_threads())
        except (RuntimeError, ValueError, OSError) as e:
            raise StageError("asr", f"cannot load the faster-whisper model at {path}: {one_line(e)}") from e
        # An English-only model (tiny.en ...) transcribes English whatever it is told.
        self.valid_languages = set(_LANGUAGE_CODES) if self.model.model.is_multilingual else {"en"}
        self._language(self.options.language)

    def _verify_options(self) -> None:
        o = self.options
        if o.beam_size < 1:
            raise TalkerError(f"faster-whisper beam_size must be at least 1, got {o.beam_size}")
        if o.device not in ("auto", "cpu", "cuda"):
            raise TalkerError(f"faster-whisper device must be auto, cpu or cuda, got {o.device!r}")

    def _recognise(self, audio: Audio, language: str | None) -> str:
        o = self.options
        segments, _info = self.model.transcribe(
            audio.samples, language=language, beam_size=o.beam_size,
            initial_prompt=o.initial_prompt or None, hotwords=o.hotwords or None,
            # our VAD already cut the speech out; each chunk is one utterance, so no carried context
            vad_filter=False, condition_on_previous_text=False)
        return "".join(s.text for s in segments).strip()  # segments is lazy: this runs the decode


def resolve_model(name: str, download_root: str = "", checkpoints: CheckpointManager | None = None) -> str:
    """A local folder for ``name``: the model manager's copy, the folder itself, the hub cache, or a fresh download.

    Raises ``MissingWeightsError`` naming the model and how to get it when it is not here and
    cannot be fetched (offline)."""
    name = str(name).strip()
    if not name:
        raise TalkerError("faster-whisper needs a model: a size such as tiny or small, or a model folder")
    if name.startswith("whisper-") and name in CATALOG:
        ck = checkpoints or CheckpointManager()
        if not ck.complete(name) and not hub_offline():
            ck.download(name)  # first use; offline this says in one line which button or command fetches it
        return str(ck.folder(name))
    if name not in _MODELS and looks_like_path(name):  # a size wins over a same-named folder in cwd
        folder = Path(name).expanduser()
        if not (folder / "model.bin").is_file():
            raise MissingWeightsError(
                f"no faster-whisper model at {folder}: a CTranslate2 folder with model.bin, config.json "
                "and tokenizer.json is needed (convert one with ct2-transformers-converter, or give a size "
                "such as tiny)")
        return str(folder)
    if "/" not in name and name not in _MODELS:
        raise TalkerError(f"unknown faster-whisper model {name!r}; available models = {', '.join(_MODELS)} "
                          "(or a hub id such as Systran/faster-whisper-small, or a local folder)")
    repo = _MODELS.get(name, name)
    cache = download_root or None
    try:
        return download_model(name, local_files_only=True, cache_dir=cache)
    except Exception:  # noqa: BLE001, S110 - not cached: huggingface_hub raises several kinds here
        pass
    how = (f"download it where there is network (`huggingface-cli download {repo}`; HF_ENDPOINT selects a "
           "mirror) or set the model option to a local CTranslate2 folder")
    if hub_offline():
        raise MissingWeightsError(f"faster-whisper model {name!r} ({repo}) is not in the local cache and "
                                  f"HF_HUB_OFFLINE is set: {how}")
    try:
        return download_model(name, cache_dir=cache)
    except Exception as e:
        raise MissingWeightsError(f"could not download faster-whisper model {name!r} ({repo}): "
                                  f"{one_line(e)}. To fix: {how}") from e
