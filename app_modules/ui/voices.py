"""Voices for the voice-cloning tab and the male/female roles, without hard-wiring one TTS backend.

``VITS/voices.py`` (the cloned voices) is optional: when it is missing or broken the tab says so and
falls back to the configured voice instead of failing to start.
"""

from __future__ import annotations

from typing import Any

from app_modules.config import Settings

CLONE_TTS = "gpt-sovits"  # the backend that speaks with a cloned voice
ROLES = ("Female", "Male")
# espeak-ng voice variants (`espeak-ng --voices=variant`) that make one language sound female or male
_ESPEAK_VARIANT = {"Female": "f3", "Male": "m3"}


def role_tts_options(settings: Settings, role: str, tts: str | None = None) -> dict[str, Any]:
    """Options that give the TTS (``tts``: the backend ``auto`` picked; default the settings') a female or
    male voice, where the backend has both."""
    if (tts or settings.tts) == "espeak" and role in _ESPEAK_VARIANT:
        base = str(settings.options_for("espeak").get("voice", "en-us")).split("+", 1)[0]
        return {"voice": f"{base}+{_ESPEAK_VARIANT[role]}"}
    return {}


def voice_library(settings: Settings):
    """The cloned-voice library the cloning backend reads (its ``voices_dir`` option, else the default)."""
    from VITS.voices import VoiceLibrary

    return VoiceLibrary(settings.options_for(CLONE_TTS).get("voices_dir") or None)


def cloned_voices(settings: Settings) -> tuple[list[str], str | None]:
    """(voice names, None) or ([], why there are none)."""
    try:
        from VITS import voices as library
    except ImportError as e:
        return [], f"voice cloning is not installed here ({e})"
    try:
        names = voice_library(settings).names()
    except Exception as e:  # noqa: BLE001 - a broken voice folder must not break the page
        return [], f"cannot list the cloned voices: {e}"
    builtin = getattr(library, "BUILTIN", None)
    if builtin and builtin not in names:
        names.insert(0, builtin)  # made with espeak-ng on first use
    return names, None
