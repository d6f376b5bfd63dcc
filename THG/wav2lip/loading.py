"""Reading the published checkpoint files safely and strictly.

``app_modules.safe_pickle`` never runs pickled code, so a downloaded file cannot execute anything;
the training extras in wav2lip*.pth (optimizer state, step counters) are plain containers, and
files from before torch 1.6 (the legacy, non-zip format) load the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from app_modules.errors import TalkerError
from app_modules.safe_pickle import load_checkpoint
from app_modules.state_dicts import key_mismatch


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a ``{"state_dict": ...}`` container or a bare state dict,
    with the ``module.`` prefixes of DataParallel training removed."""
    p = Path(path)
    obj = load_checkpoint(p)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TalkerError(f"{p} holds no state dict (expected a dict of tensors, or one under 'state_dict')")
    # The original inference removes every "module." (k.replace), not only a leading one.
    return {k.replace("module.", ""): v for k, v in obj.items()}


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str) -> nn.Module:
    """``load_state_dict(strict=True)`` with a message that says which file is wrong and how."""
    mismatch = key_mismatch(model.state_dict(), state)
    if mismatch:
        raise TalkerError(f"{path} is not a {what} checkpoint: {mismatch} keys")
    model.load_state_dict(state, strict=True)
    return model


def load_wav2lip(path: str | Path):
    """A ``Wav2Lip`` in eval mode on the CPU, from wav2lip.pth / wav2lip_gan.pth (or a copy)."""
    from THG.wav2lip.model import Wav2Lip

    return load_strict(Wav2Lip(), read_state_dict(path), path, "Wav2Lip (wav2lip.pth / wav2lip_gan.pth)").eval()


def load_s3fd(path: str | Path):
    """An ``S3FD`` in eval mode on the CPU, from s3fd-619a316812.pth."""
    from THG.wav2lip.s3fd import S3FD

    return load_strict(S3FD(), read_state_dict(path), path, "S3FD face detector (s3fd-619a316812.pth)").eval()
