"""Reading the published ``ditto_pytorch/models/*.pth`` files into the networks, strictly.

* appearance_extractor.pth, motion_extractor.pth, warp_network.pth, decoder.pth: plain state dicts.
* stitch_network.pth: LivePortrait's stitching-and-retargeting file; only its ``retarget_shoulder``
  entry is the stitching network, its keys prefixed ``module.`` (saved from DataParallel).
* lmdm_v0.4_hubert.pth: the motion diffusion model's weights under ``model_state_dict``.

Every file is read with ``app_modules.safe_pickle`` (an allow-list: no pickled code runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from app_modules.errors import TalkerError
from app_modules.safe_pickle import load_checkpoint
from app_modules.state_dicts import key_mismatch
from THG.ditto.lmdm import MotionDecoder
from THG.ditto.motion_extractor import MotionExtractor
from THG.ditto.networks import AppearanceFeatureExtractor, SPADEDecoder, StitchingNetwork, WarpingNetwork

FILES: dict[str, tuple[str, Callable[[], nn.Module]]] = {  # network -> (published file, class)
    "appearance": ("appearance_extractor.pth", AppearanceFeatureExtractor),
    "motion": ("motion_extractor.pth", MotionExtractor),
    "warp": ("warp_network.pth", WarpingNetwork),
    "decoder": ("decoder.pth", SPADEDecoder),
    "stitch": ("stitch_network.pth", StitchingNetwork),
    "lmdm": ("lmdm_v0.4_hubert.pth", MotionDecoder),
}
_DOWNLOAD = "python -m app_modules.cli download ditto"


def _state(name: str, ckpt, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(ckpt, dict):
        raise TalkerError(f"{path} holds a {type(ckpt).__name__}, not a state dict: it is not Ditto's {FILES[name][0]}")
    if name == "stitch":
        if "retarget_shoulder" not in ckpt:
            raise TalkerError(f"{path} has no 'retarget_shoulder' entry (found {sorted(ckpt)[:5]}): "
                              "it is not Ditto's stitch_network.pth")
        return {k.replace("module.", ""): v for k, v in ckpt["retarget_shoulder"].items()}
    if name == "lmdm":
        if "model_state_dict" not in ckpt:
            raise TalkerError(f"{path} has no 'model_state_dict' entry (found {sorted(ckpt)[:5]}): "
                              "it is not Ditto's lmdm_v0.4_hubert.pth")
        return ckpt["model_state_dict"]
    return ckpt


def load_network(name: str, path: str | Path) -> nn.Module:
    """One network from its published file, in eval mode, on the CPU."""
    path = Path(path)
    ckpt = load_checkpoint(path, what=f"Ditto {name} file")
    state = _state(name, ckpt, path)
    net = FILES[name][1]()
    mismatch = key_mismatch(net.state_dict(), state)
    if mismatch:
        raise TalkerError(f"{path} does not match Ditto's {name} network: {mismatch}. "
                          f"Use the published files ({_DOWNLOAD})")
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


def load_all(folder: str | Path, names=tuple(FILES)) -> dict[str, nn.Module]:
    """The named networks from the published file names in ``folder``."""
    return {name: load_network(name, Path(folder) / FILES[name][0]) for name in names}
