"""Voices for the voice-cloning tab and the male/female roles, without hard-wiring one TTS backend.

``VITS/voices.py`` (the cloned voices) is optional: when it is missing or broken the tab says so and
falls back to the configured voice instead of failing to start.
"""

from __future__ import annotations

import importlib
from typing import Any

from app_modules.config import Settings

CLONE_TTS = "gpt-sovits"  # the backend that speaks with a cloned voice
ROLES = ("Female", "Male")
# espeak-ng voice variants (`espeak-ng --voices=variant`) that make one language sound female or male
_ESPEAK_VARIANT = {"Female": "f3", "Male": "m3"}


def role_tts_options(settings: Settings, role: str) -> dict[str, Any]:
    """Options that give the configured TTS a female or male voice, where the backend has both."""
    if settings.tts == "espeak" and role in _ESPEAK_VARIANT:
        base = str(settings.options_for("espeak").get("voice", "en-us")).split("+", 1)[0]
        return {"voice": f"{base}+{_ESPEAK_VARIANT[role]}"}
    return {}


def cloned_voices() -> tuple[list[str], str | None]:
    """(voice names, None) or ([], why there are none)."""
    try:
        mod = importlib.import_module("VITS.voices")
    except ImportError as e:
        return [], f"voice cloning is not installed here ({e})"
    for attr in ("list_voices", "available_voices", "voices"):
        fn = getattr(mod, attr, None)
        if callable(fn):
            try:
                found = fn()
            except Exception as e:  # noqa: BLE001 - a broken voice list must not break the page
                return [], f"cannot list the cloned voices: {e}"
            return _names(found), None
    table = getattr(mod, "VOICES", None)
    if table is not None:
        return _names(table), None
    return [], "VITS.voices lists no voices"


def _names(found: Any) -> list[str]:
    if isinstance(found, dict):
        return sorted(str(k) for k in found)
    return [str(getattr(v, "name", v)) for v in found]
