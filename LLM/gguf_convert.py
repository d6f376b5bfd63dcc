"""A GGUF chat model turned, once, into a plain transformers folder that loads in seconds.

transformers reads GGUF files (``from_pretrained(folder, gguf_file=...)``, with the ``gguf`` package),
but de-quantising the tensors and building the tokenizer takes half a minute, and a model loaded that
way refuses ``save_pretrained``. So the weights are copied into a fresh model made from the same
config (every key must match) and saved with the tokenizer under ``cache_root/<file stem>-<size>/``.
Later starts load that folder. The folder is written next to its final place and renamed into it,
so a conversion cut short never leaves a half-written model behind, and two processes converting at
once both end with a complete folder.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from app_modules.errors import MissingWeightsError, TalkerError

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_NEEDED = ("config.json", "model.safetensors", "tokenizer.json")


def converted_folder(gguf: Path, cache_root: Path) -> Path:
    """Where the conversion of ``gguf`` lives (whether or not it has been made yet)."""
    return Path(cache_root) / f"{gguf.stem}-{gguf.stat().st_size}"


def is_converted(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _NEEDED)


def convert(gguf: str | Path, cache_root: str | Path) -> Path:
    """The converted folder for ``gguf``, made on the first call (about 20-30 s on a laptop CPU)."""
    gguf = Path(gguf).expanduser()
    if not gguf.is_file():
        raise MissingWeightsError(f"GGUF model file not found: {gguf}")
    target = converted_folder(gguf, Path(cache_root).expanduser())
    with _LOCK:
        if is_converted(target):
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.warning("converting %s into %s once (about half a minute); later starts take seconds", gguf.name, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            try:
                tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                                 dtype=torch.float32)
            except (OSError, ValueError, ImportError) as e:
                raise TalkerError(f"cannot read the GGUF model {gguf}: {e}. transformers needs the gguf "
                                  "package for it: pip install gguf accelerate") from e
            config = copy.deepcopy(quantized.config)
            if hasattr(config, "quantization_config"):
                del config.quantization_config  # the weights below are plain float tensors
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            plain.load_state_dict(quantized.state_dict(), strict=True)
            plain.save_pretrained(work)
            tokenizer.save_pretrained(work)
            try:
                os.rename(work, target)
            except OSError:  # another process finished first: keep its folder when complete
                if not is_converted(target):
                    shutil.rmtree(target, ignore_errors=True)
                    os.rename(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target
