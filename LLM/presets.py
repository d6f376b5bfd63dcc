"""Where the OpenAI-compatible services live, which model to ask by default, and whose key they take.

A preset fills ``base_url`` and ``model`` when those are left at their defaults, and names the
environment variable its API key is read from. A key from the environment goes only to its own
service: a remote service's host must match exactly (``api.openai.com``, not
``api.openai.com.attacker.example``) and be reached over https; a local server's key only to this
machine (loopback) on that server's port. ``OPENAI_API_KEY`` never goes to DeepSeek, a local URL or a
look-alike host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

LOOPBACK = ("127.0.0.1", "localhost", "0.0.0.0", "::1")


@dataclass(frozen=True)
class Preset:
    name: str
    base_url: str
    model: str
    key_env: str = ""  # environment variable holding the API key; "" for servers that need none
    hosts: tuple[str, ...] = ()  # the exact host names of a remote service (its key goes only there)
    port: int | None = None  # a local server's port on this machine
    start_hint: str = ""  # what to do when nothing answers at base_url
    description: str = ""


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("openai", "https://api.openai.com/v1", "gpt-4o-mini", "OPENAI_API_KEY", ("api.openai.com",),
           description="ChatGPT models"),
    Preset("dashscope", "https://dashscope.aliyuncs.com/compatible-mode/v1", "qwen-plus", "DASHSCOPE_API_KEY",
           ("dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com"),
           description="Qwen through Alibaba Cloud DashScope (international: dashscope-intl)"),
    Preset("deepseek", "https://api.deepseek.com/v1", "deepseek-chat", "DEEPSEEK_API_KEY", ("api.deepseek.com",),
           description="DeepSeek"),
    Preset("ollama", "http://127.0.0.1:11434/v1", "qwen2.5:1.5b", port=11434,
           start_hint="start Ollama (`ollama serve`, then `ollama pull MODEL`)", description="local Ollama"),
    Preset("vllm", "http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-1.5B-Instruct", "VLLM_API_KEY", port=8000,
           start_hint="start vLLM (`vllm serve MODEL`)", description="local vLLM server"),
    Preset("llamacpp", "http://127.0.0.1:8080/v1", "default", port=8080,
           start_hint="start llama.cpp (`llama-server -m MODEL.gguf`)", description="local llama.cpp server"),
)}


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available presets = {', '.join(PRESETS)}") from None


def detect(base_url: str) -> Preset | None:
    """The preset whose service ``base_url`` is: a remote one by its exact host over https, a local one
    by its port on this machine; None for anything else (including look-alike hosts)."""
    try:
        parsed = urlparse(base_url)
        host, port = (parsed.hostname or "").lower().rstrip("."), parsed.port
    except ValueError:  # a port that is not a number
        return None
    for p in PRESETS.values():
        if p.hosts and host in p.hosts and parsed.scheme == "https" and port in (None, 443):
            return p
    if host in LOOPBACK:
        for p in PRESETS.values():
            if p.port is not None and port == p.port:
                return p
    return None


def api_key(preset: Preset | None) -> str:
    """The key from the preset's environment variable, or ""."""
    return os.environ.get(preset.key_env, "").strip() if preset and preset.key_env else ""


def key_for(base_url: str) -> str:
    """The environment's key for the service at ``base_url``; "" unless it is exactly that service."""
    return api_key(detect(base_url))


def is_local(base_url: str) -> bool:
    try:
        return urlparse(base_url).hostname in LOOPBACK
    except ValueError:
        return False
