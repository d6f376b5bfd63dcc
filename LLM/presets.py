"""Where the OpenAI-compatible services live, which model to ask by default, and whose key they take.

A preset fills ``base_url`` and ``model`` when those are left at their defaults, and names the
environment variable its API key is read from. Keys are only ever sent to the host they belong to:
``OPENAI_API_KEY`` never goes to a DeepSeek or a local URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class Preset:
    name: str
    base_url: str
    model: str
    key_env: str = ""  # environment variable holding the API key; "" for servers that need none
    host: str = ""  # the host that identifies this service in a base URL (for the key look-up)
    start_hint: str = ""  # what to do when nothing answers at base_url
    description: str = ""


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("openai", "https://api.openai.com/v1", "gpt-4o-mini", "OPENAI_API_KEY", "api.openai.com",
           description="ChatGPT models"),
    Preset("dashscope", "https://dashscope.aliyuncs.com/compatible-mode/v1", "qwen-plus", "DASHSCOPE_API_KEY",
           "dashscope", description="Qwen through Alibaba Cloud DashScope (international: dashscope-intl)"),
    Preset("deepseek", "https://api.deepseek.com/v1", "deepseek-chat", "DEEPSEEK_API_KEY", "api.deepseek.com",
           description="DeepSeek"),
    Preset("ollama", "http://127.0.0.1:11434/v1", "qwen2.5:1.5b", host=":11434",
           start_hint="start Ollama (`ollama serve`, then `ollama pull MODEL`)", description="local Ollama"),
    Preset("vllm", "http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-1.5B-Instruct", "VLLM_API_KEY", ":8000",
           start_hint="start vLLM (`vllm serve MODEL`)", description="local vLLM server"),
    Preset("llamacpp", "http://127.0.0.1:8080/v1", "default", host=":8080",
           start_hint="start llama.cpp (`llama-server -m MODEL.gguf`)", description="local llama.cpp server"),
)}


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available presets = {', '.join(PRESETS)}") from None


def detect(base_url: str) -> Preset | None:
    """The preset whose service ``base_url`` points at, if any (remote hosts first, then local ports)."""
    parsed = urlparse(base_url)
    netloc = parsed.netloc.lower()
    for p in PRESETS.values():
        if p.host and not p.host.startswith(":") and p.host in netloc:
            return p
    if parsed.hostname in ("127.0.0.1", "localhost", "0.0.0.0", "::1"):
        for p in PRESETS.values():
            if p.host.startswith(":") and netloc.endswith(p.host):
                return p
    return None


def api_key(preset: Preset | None) -> str:
    """The key from the preset's environment variable, or ""."""
    return os.environ.get(preset.key_env, "").strip() if preset and preset.key_env else ""


def is_local(base_url: str) -> bool:
    return urlparse(base_url).hostname in ("127.0.0.1", "localhost", "0.0.0.0", "::1")
