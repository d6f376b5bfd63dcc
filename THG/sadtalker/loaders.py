"""Reading the published SadTalker files into the networks, strictly.

* ``SadTalker_V0.0.2_{256,512}.safetensors``: one flat file; every key starts with the sub-network's
  name (``kp_extractor.``, ``generator.``, ``audio2exp.``, ``audio2pose.``, ``face_3drecon.``).
  Upstream keeps keys that *contain* the name; no key contains another network's name, so a prefix
  test selects the same keys.
* ``mapping_00229-model.pth.tar`` / ``mapping_00109-model.pth.tar``: a torch pickle whose
  ``'mapping'`` entry is the MappingNet state_dict (next to the discriminator, optimizer states and
  ``epoch`` of the training checkpoint), read with ``app_modules.safe_pickle``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from app_modules.errors import TalkerError
from app_modules.safe_pickle import load_checkpoint
from app_modules.state_dicts import key_mismatch
from THG.sadtalker.audio2exp import SimpleWrapperV2
from THG.sadtalker.audio2pose import Audio2Pose
from THG.sadtalker.face_recon import ReconNetWrapper
from THG.sadtalker.generator import OcclusionAwareSPADEGenerator
from THG.sadtalker.keypoint_detector import KPDetector
from THG.sadtalker.mapping import MappingNet

NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "kp_extractor": KPDetector,
    "generator": OcclusionAwareSPADEGenerator,
    "audio2exp": SimpleWrapperV2,
    "audio2pose": Audio2Pose,
    "face_3drecon": ReconNetWrapper,
}


def load_strict(net: nn.Module, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """``load_state_dict(strict=True)`` with a message that names the file and the first differences."""
    mismatch = key_mismatch(net.state_dict(), state)
    if mismatch:
        raise TalkerError(f"{what} does not match the SadTalker network: {mismatch}. "
                          "Use the published files (python -m app_modules.cli download sadtalker)")
    net.load_state_dict(state, strict=True)
    return net.eval()


def load_safetensors(path: str | Path, names=tuple(NETWORKS)) -> dict[str, nn.Module]:
    """The named sub-networks of a SadTalker safetensors file, in eval mode, on the CPU."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            nets = {}
            for name in names:
                prefix = name + "."
                state = {k[len(prefix):]: f.get_tensor(k) for k in keys if k.startswith(prefix)}
                if not state:
                    raise TalkerError(f"{path} has no '{prefix}*' weights: it is not a SadTalker V0.0.2 "
                                      f"safetensors file (its keys start with {_prefixes(keys)})")
                nets[name] = load_strict(NETWORKS[name](), state, f"{path} [{name}]")
    except (SafetensorError, OSError) as e:
        raise TalkerError(f"cannot read {path} as safetensors ({e}); the download may be incomplete: "
                          "delete it and run `python -m app_modules.cli download sadtalker`") from e
    return nets


def load_mapping(path: str | Path) -> MappingNet:
    """MappingNet from a ``{'mapping': state_dict, ...}`` checkpoint. The number of input coefficients
    (70, or 73 for the ``full``-mode model) is read from the weights."""
    path = Path(path)
    ckpt = load_checkpoint(path, what="SadTalker mapping checkpoint")
    if not isinstance(ckpt, dict) or "mapping" not in ckpt:
        found = sorted(ckpt)[:5] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise TalkerError(f"{path} has no 'mapping' entry (found {found}); expected mapping_00229-model.pth.tar")
    state = ckpt["mapping"]
    first = state.get("first.0.weight")
    coeff_nc = int(first.shape[1]) if first is not None and first.ndim == 3 else 70
    return load_strict(MappingNet(coeff_nc=coeff_nc), state, str(path))


def _prefixes(keys: list[str]) -> str:
    return ", ".join(sorted({k.split(".", 1)[0] for k in keys})[:6]) or "nothing"
