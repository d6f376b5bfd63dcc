"""An environment with no way out: no hub, no online services, no API keys, no LLM server."""

from __future__ import annotations

import os

KEY_VARS = ("OPENAI_API_KEY", "DASHSCOPE_API_KEY", "DEEPSEEK_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
            "VLLM_API_KEY")
# the discard port: nothing listens, so a connection is refused at once
NOWHERE = "http://127.0.0.1:9"


def offline_env(**extra: str) -> dict[str, str]:
    """``os.environ`` without API keys, with the hub and online services out of reach."""
    # the keys are emptied rather than left out, so the result also works as additions to os.environ
    env = {**os.environ, **dict.fromkeys(KEY_VARS, "")}
    env.update(HF_HUB_OFFLINE="1", TALKER_OFFLINE="1", HF_ENDPOINT=NOWHERE, **extra)
    return env


def offline_overrides(smollm2_cache) -> list[str]:
    """``--set`` overrides for a fresh install's defaults (auto everywhere) with no LLM server answering."""
    return [f"openai.base_url={NOWHERE}/v1", f"transformers.convert_dir={smollm2_cache}"]
