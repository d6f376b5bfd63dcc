"""FunASR recognisers: Paraformer (Mandarin, with hotwords) and SenseVoice (zh, en, yue, ja, ko).

Install: ``pip install funasr modelscope kaldi-native-fbank`` (kaldi-native-fbank computes the filter
banks where torchaudio cannot load, as with the CPU torch here). Model names download once from
ModelScope (``hub: ms``, the default) or the Hugging Face hub (``hub: hf``); a local folder holding
``config.yaml`` and ``model.pt`` (what those downloads are) works offline.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from app_modules.errors import BackendUnavailableError, MissingWeightsError, StageError, TalkerError
from app_modules.options import Declared, option
from app_modules.types import Audio
from ASR.common import ChunkedASR, hub_offline, looks_like_path, one_line

try:
    import torch
    from funasr import AutoModel
    from funasr.download.name_maps_from_hub import name_maps_hf, name_maps_ms
except ImportError as e:  # pragma: no cover - depends on the install
    raise BackendUnavailableError(
        f"funasr is not installed ({e}): pip install funasr modelscope kaldi-native-fbank") from e

# Short names FunASR's own maps lack; the rest ("paraformer-zh", "paraformer-en" ...) come from them.
_EXTRA_NAMES = {
    "ms": {"SenseVoiceSmall": "iic/SenseVoiceSmall", "sensevoice": "iic/SenseVoiceSmall"},
    "hf": {"SenseVoiceSmall": "FunAudioLLM/SenseVoiceSmall", "sensevoice": "FunAudioLLM/SenseVoiceSmall"},
}
SENSEVOICE_LANGUAGES = {"zh", "en", "yue", "ja", "ko"}
_CJK_SPACE = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef]) +(?=[\u3000-\u9fff\uff00-\uffef])")


class FunASR(ChunkedASR):
    """FunASR speech recognition through ``funasr.AutoModel``; the model is built once, in ``__init__``."""

    name = "funasr"

    @dataclass(frozen=True)
    class Options(Declared, label="funasr"):
        # paraformer-zh, SenseVoiceSmall, a hub id (iic/...) or a local folder
        model: str = option("paraformer-zh", listed=True)
        hub: str = "ms"  # ms (ModelScope) or hf (Hugging Face) for model names
        # SenseVoice: "" detects, or zh, en, yue, ja, ko; Paraformer has one language
        language: str = option("", visitor=True, max_len=16)
        # Paraformer-zh (SeACo) favours these words, space separated
        hotwords: str = option("", visitor=True, max_len=500)
        use_itn: bool = option(True, visitor=True)  # SenseVoice: punctuation and numbers written as digits
        device: str = "auto"  # auto (CUDA when present), cpu or cuda
        threads: int = option(0, min=0, max=256)  # torch CPU threads; 0 keeps the process's (FunASR would force 4)
        vad: bool = option(True, visitor=True)  # cut silence and split long recordings with Silero VAD first
        download_root: str = ""  # "" is the hub's own cache

    def __init__(self, options: Options | None = None, checkpoints=None):
        self.options = options or self.Options()
        o = self.options
        if o.hub not in ("ms", "hf"):
            raise TalkerError(f"funasr hub must be ms (ModelScope) or hf (Hugging Face), got {o.hub!r}")
        if o.device not in ("auto", "cpu", "cuda"):
            raise TalkerError(f"funasr device must be auto, cpu or cuda, got {o.device!r}")
        device = ("cuda" if torch.cuda.is_available() else "cpu") if o.device == "auto" else o.device
        folder = resolve_model(o.model, o.hub, o.download_root)
        try:
            self.model = AutoModel(model=str(folder), device=device, ncpu=o.threads or torch.get_num_threads(),
                                   disable_update=True, disable_pbar=True, disable_log=True)
        except Exception as e:  # config or weight mismatches surface as many kinds
            raise StageError("asr", f"cannot load the FunASR model at {folder}: {one_line(e)}") from e
        self.kind = type(self.model.model).__name__
        self.sensevoice = "SenseVoice" in self.kind
        self.valid_languages = SENSEVOICE_LANGUAGES if self.sensevoice else None
        self._language(o.language)
        self._lock = threading.Lock()  # FunASR models keep per-call caches on themselves

    def _recognise(self, audio: Audio, language: str | None) -> str:
        o = self.options
        kwargs = {"language": language or "auto", "use_itn": o.use_itn} if self.sensevoice else {}
        if o.hotwords and not self.sensevoice:
            kwargs["hotword"] = o.hotwords
        with self._lock, torch.inference_mode():
            result = self.model.generate(input=audio.samples, cache={}, disable_pbar=True, **kwargs)
        text = " ".join(str(r.get("text", "")) for r in result or [])
        if self.sensevoice:  # strip the <|zh|><|NEUTRAL|><|Speech|> tags and map emoji events
            from funasr.utils.postprocess_utils import rich_transcription_postprocess

            text = rich_transcription_postprocess(text)
        # Paraformer writes Chinese characters with spaces between them
        return _CJK_SPACE.sub("", text).strip()


def hub_id(name: str, hub: str = "ms") -> str:
    """The hub repository for a short name (paraformer-zh, SenseVoiceSmall), or ``name`` itself."""
    maps = {**(name_maps_ms if hub == "ms" else name_maps_hf), **_EXTRA_NAMES[hub]}
    return maps.get(name, name)


def _check_folder(folder: Path) -> Path:
    if not (folder / "config.yaml").is_file() and not (folder / "configuration.json").is_file():
        raise MissingWeightsError(f"no FunASR model at {folder}: the folder needs config.yaml and model.pt "
                                  "(download one with `modelscope download --model iic/SenseVoiceSmall "
                                  "--local_dir DIR`)")
    if (folder / "config.yaml").is_file() and not (folder / "model.pt").is_file():
        raise MissingWeightsError(f"the FunASR model at {folder} has config.yaml but no model.pt")
    return folder


def resolve_model(name: str, hub: str = "ms", download_root: str = "") -> Path:
    """A local model folder for ``name``: the folder itself, the hub cache, or a fresh download.

    FunASR itself only prints a failed download and goes on to fail obscurely, so the download
    happens here, where a failure becomes a ``MissingWeightsError`` naming the model and the fix."""
    name = str(name).strip()
    if not name:
        raise TalkerError("funasr needs a model: paraformer-zh, SenseVoiceSmall, a hub id or a local folder")
    if hub_id(name, hub) == name and looks_like_path(name):  # a short name wins over a same-named folder
        return _check_folder(Path(name).expanduser())
    repo = hub_id(name, hub)
    if "/" not in repo:
        known = sorted(n for n in {*name_maps_ms, *_EXTRA_NAMES["ms"]}  # the maps also list VAD, punctuation...
                       if any(k in n.lower() for k in ("paraformer", "sensevoice", "whisper")))
        raise TalkerError(f"unknown FunASR model {name!r}; known names = {', '.join(known)} "
                          "(or a hub id such as iic/SenseVoiceSmall, or a local folder)")
    cli = "modelscope download --model" if hub == "ms" else "huggingface-cli download"
    how = (f"download it where there is network (`{cli} {repo} --local_dir DIR`) and set the model "
           "option to DIR")
    cache = download_root or None
    try:
        return _check_folder(Path(_snapshot(repo, hub, cache, local_only=True)))
    except Exception:  # noqa: BLE001, S110 - not cached: both hubs raise several kinds here
        pass
    if hub_offline():
        raise MissingWeightsError(f"FunASR model {name!r} ({repo}) is not in the local {hub} cache and offline "
                                  f"mode is set: {how}")
    try:
        return _check_folder(Path(_snapshot(repo, hub, cache, local_only=False)))
    except MissingWeightsError:
        raise
    except Exception as e:
        raise MissingWeightsError(f"could not download FunASR model {name!r} ({repo}) from "
                                  f"{'ModelScope' if hub == 'ms' else 'the Hugging Face hub'}: "
                                  f"{one_line(e)}. To fix: {how}") from e


def _snapshot(repo: str, hub: str, cache_dir: str | None, local_only: bool) -> str:
    if hub == "ms":
        from modelscope.hub.snapshot_download import snapshot_download

        return snapshot_download(repo, cache_dir=cache_dir, local_files_only=local_only)
    from huggingface_hub import snapshot_download

    return snapshot_download(repo, cache_dir=cache_dir, local_files_only=local_only)
