"""Choosing the torch device for a backend's ``device`` option ("auto", "cpu", "cuda", "cuda:N")."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from app_modules.errors import BackendUnavailableError, TalkerError

if TYPE_CHECKING:
    import torch


def torch_device(name: str) -> torch.device:
    """The device ``name`` means; "auto" is CUDA when torch sees a GPU, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise TalkerError(f"unknown device {name!r}; valid devices = auto, cpu, cuda, cuda:N") from e
    if dev.type not in ("cpu", "cuda"):
        raise TalkerError(f"unsupported device {name!r}; valid devices = auto, cpu, cuda, cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {name!r} asked for, but torch sees no CUDA GPU here; "
                                      "use device=cpu or auto")
    return dev


def has_cuda() -> bool:
    """Whether torch sees a CUDA GPU; cheap on machines without ``nvidia-smi`` (torch is not imported)."""
    if shutil.which("nvidia-smi") is None:
        return False
    import torch

    return torch.cuda.is_available()
