"""GFPGAN v1.4 face enhancer: sharper, cleaner faces for the frames a talking head renders.

The network is ``THG.enhancer.gfpgan_arch`` (no gfpgan/basicsr/facexlib import: those need
torchvision). Faces come in either as aligned square crops (``enhance_faces``) or as frames plus a
face box (``enhance`` / ``enhance_many``), where the box is squared, resized to the network's size,
enhanced and pasted back with a feathered edge. ``weight`` blends the restored face with the input
(0: unchanged, 1: GFPGAN only); SadTalker's ``--enhancer gfpgan`` look is about 0.5.

A THG backend gets one with ``THG.enhancer.maybe_enhancer(name, checkpoints)``, which returns None
when no enhancer is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from app_modules.checkpoints import CheckpointManager
from app_modules.devices import torch_device
from app_modules.errors import BadInputError, MissingWeightsError, TalkerError
from app_modules.options import Declared, option
from app_modules.safe_pickle import load_checkpoint
from app_modules.state_dicts import key_mismatch
from THG.enhancer.gfpgan_arch import GFPGANv1Clean

FEATHER = 0.1  # fraction of the pasted square over which the enhanced face fades into the frame


def load_gfpgan(path: str | Path, **config) -> GFPGANv1Clean:
    """A ``GFPGANv1Clean`` in eval mode on the CPU from GFPGANv1.4.pth (v1.3 has the same layout).

    The file is read with ``app_modules.safe_pickle`` (no pickled code runs); its tensors are taken from
    ``params_ema`` (the averaged weights GFPGAN's own inference uses), else ``params``, else the
    dict itself, and must match the network exactly. ``config`` overrides the published
    architecture (tests use a smaller ``out_size``)."""
    p = Path(path)
    if not p.is_file():
        raise MissingWeightsError(f"GFPGAN checkpoint not found: {p} -- fetch it with "
                                  "`python -m app_modules.cli download gfpgan`")
    obj = load_checkpoint(p, what="GFPGAN checkpoint")
    state = obj
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params"):
            if isinstance(obj.get(key), Mapping):
                state = obj[key]
                break
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TalkerError(f"{p} is not a GFPGAN checkpoint: expected a dict of tensors under 'params_ema' "
                          "or 'params' (as in GFPGANv1.4.pth)")
    model = GFPGANv1Clean(**config)
    _check_keys(model, state, p)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _check_keys(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Strict loading, with a message that says what kind of file it is not."""
    mismatch = key_mismatch(model.state_dict(), state)
    if mismatch:
        raise TalkerError(f"{path} is not a GFPGAN v1.3/v1.4 (clean architecture) checkpoint: "
                          f"{mismatch} keys. GFPGANv1.pth (the original arch with CUDA ops) and "
                          "RestoreFormer/CodeFormer files are not supported")


class GFPGANEnhancer:
    """Restores faces with GFPGAN; load once per process, call from any backend's render loop."""

    @dataclass(frozen=True)
    class Options(Declared, label="gfpgan"):
        # path to GFPGANv1.4.pth; empty: checkpoints/gfpgan/GFPGANv1.4.pth
        checkpoint: str = ""
        # "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
        device: str = "auto"
        # half precision on the GPU (ignored on the CPU)
        fp16: bool = True
        # share of the restored face in the result: 0 returns the input, 1 GFPGAN's output only
        weight: float = option(0.5, min=0, max=1, step=0.05, visitor=True)
        # faces per network call (a 512 face needs a few hundred MB of activations in fp32)
        batch_size: int = option(4, min=1, max=64)
        # fresh noise on every call, as upstream GFPGAN; off, the stored noise maps keep video frames
        # from shimmering
        random_noise: bool = False

    def __init__(self, options: Options | None = None, checkpoints: CheckpointManager | None = None,
                 network: GFPGANv1Clean | None = None):
        """``network``: a ready network instead of the checkpoint (tests and benchmarks)."""
        self.options = opts = options or GFPGANEnhancer.Options()
        self.device = torch_device(opts.device)
        if network is None:
            path = (checkpoints or CheckpointManager()).require("gfpgan", "GFPGANv1.4.pth", opts.checkpoint or None)
            network = load_gfpgan(path)
        self.network = network.eval().to(self.device)
        self.face_size = network.out_size  # 512 for the published weights
        self._masks: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------------------- aligned crops

    def enhance_faces(self, faces: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) RGB uint8 face crops (S = ``face_size``, 512) -> enhanced, same shape and dtype."""
        faces = np.asarray(faces)
        s = self.face_size
        if faces.ndim != 4 or faces.shape[1:] != (s, s, 3) or faces.dtype != np.uint8:
            raise BadInputError(f"enhance_faces expects RGB uint8 face crops of shape (N, {s}, {s}, 3), got "
                                f"{faces.dtype} {faces.shape}")
        w = self.options.weight
        if w == 0.0 or len(faces) == 0:
            return faces.copy()  # nothing of GFPGAN's output would survive the blend
        out = np.empty_like(faces)
        bs = self.options.batch_size
        for i in range(0, len(faces), bs):
            out[i:i + bs] = self._run(faces[i:i + bs], w)
        return out

    @torch.no_grad()
    def _run(self, faces: np.ndarray, w: float) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(faces)).to(self.device).permute(0, 3, 1, 2).float()
        with self._autocast():
            y = self.network(x / 127.5 - 1.0, randomize_noise=self.options.random_noise)
        # GFPGAN's output convention: clamp to [-1, 1], then to 0..255
        restored = (y.float().clamp(-1.0, 1.0) + 1.0) * 127.5
        blended = restored * w + x * (1.0 - w)
        return blended.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def _autocast(self):
        if self.options.fp16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.autocast(self.device.type, enabled=False)

    # -------------------------------------------------------------------------------- frame + box

    def enhance(self, frame: np.ndarray, box: Sequence[int], expand: float = 1.0) -> np.ndarray:
        """A copy of ``frame`` (RGB uint8) with the face in ``box`` = (x1, y1, x2, y2) enhanced.

        The box is made square around its centre, ``expand`` times its longer side (GFPGAN was trained
        on FFHQ crops, where the face fills about the middle half: SadTalker's crop box needs 1.0, a
        tight detector box such as Wav2Lip's about 1.5). Parts of the square outside the frame are
        filled by edge replication for the network and not pasted back."""
        return self.enhance_many([frame], [box], expand)[0]

    def enhance_many(self, frames: Sequence[np.ndarray], boxes: Sequence[Sequence[int]],
                     expand: float = 1.0) -> list[np.ndarray]:
        """``enhance`` for many frames, with the faces batched through the network."""
        if len(frames) != len(boxes):
            raise BadInputError(f"{len(frames)} frames but {len(boxes)} face boxes")
        s = self.face_size
        squares, crops = [], []
        for frame, box in zip(frames, boxes, strict=True):
            if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise BadInputError("frames must be RGB uint8 images (H, W, 3); got "
                                    f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
            sq = _square(box, expand, frame.shape[1], frame.shape[0])
            squares.append(sq)
            crop = _crop_padded(frame, sq)
            interp = cv2.INTER_AREA if crop.shape[0] > s else cv2.INTER_LINEAR
            crops.append(cv2.resize(crop, (s, s), interpolation=interp))
        if self.options.weight == 0.0:  # the resize round trip alone would blur the face a little
            return [frame.copy() for frame in frames]
        restored = self.enhance_faces(np.stack(crops)) if crops else []
        return [self._paste(frame, face, sq) for frame, face, sq in zip(frames, restored, squares, strict=True)]

    def _paste(self, frame: np.ndarray, face: np.ndarray, sq: tuple[int, int, int]) -> np.ndarray:
        x0, y0, side = sq
        h, w = frame.shape[:2]
        interp = cv2.INTER_AREA if side < face.shape[0] else cv2.INTER_LINEAR
        face = cv2.resize(face, (side, side), interpolation=interp)
        if side not in self._masks:
            self._masks[side] = _feather(side)
        # the part of the square inside the frame
        fx1, fy1, fx2, fy2 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
        m = self._masks[side][fy1 - y0:fy2 - y0, fx1 - x0:fx2 - x0, None]
        out = frame.copy()
        region = out[fy1:fy2, fx1:fx2].astype(np.float32)
        new = face[fy1 - y0:fy2 - y0, fx1 - x0:fx2 - x0].astype(np.float32)
        out[fy1:fy2, fx1:fx2] = np.clip(region + (new - region) * m + 0.5, 0, 255).astype(np.uint8)
        return out


# ------------------------------------------------------------------------------------------ helpers

def _square(box: Sequence[int], expand: float, w: int, h: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the square around ``box``; it may reach past the frame."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"a face box is (x1, y1, x2, y2), got {box!r}") from e
    if x2 <= x1 or y2 <= y1 or x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise BadInputError(f"the face box {tuple(box)} is empty or outside the {w}x{h} frame")
    if expand <= 0:
        raise BadInputError(f"expand must be > 0, got {expand}")
    side = max(int(round(max(x2 - x1, y2 - y1) * expand)), 8)
    return int(round((x1 + x2 - side) / 2)), int(round((y1 + y2 - side) / 2)), side


def _crop_padded(frame: np.ndarray, sq: tuple[int, int, int]) -> np.ndarray:
    x0, y0, side = sq
    h, w = frame.shape[:2]
    fx1, fy1, fx2, fy2 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    crop = frame[fy1:fy2, fx1:fx2]
    # edge replication: no black borders for the network to "restore" (reflection could show a second chin)
    return cv2.copyMakeBorder(crop, fy1 - y0, y0 + side - fy2, fx1 - x0, x0 + side - fx2, cv2.BORDER_REPLICATE)


def _feather(side: int) -> np.ndarray:
    """(side, side) float32 weights: 1 inside, easing to 0 over ``FEATHER`` of the side at the edges."""
    n = max(FEATHER * side, 1.0)
    t = np.clip((np.arange(side) + 0.5) / n, 0.0, 1.0)
    ramp = t * t * (3 - 2 * t)
    edge = np.minimum(ramp, ramp[::-1])
    return np.outer(edge, edge).astype(np.float32)


