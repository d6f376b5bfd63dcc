"""MappingNet (3DMM coefficient window -> head pose and keypoint offsets) and the keypoint
transformation that applies them to the canonical keypoints."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MappingNet(nn.Module):
    """A window of 27 frames of coefficients (B, coeff_nc, 27) -> yaw/pitch/roll bin logits (66 each),
    translation (3) and expression offsets (3 per keypoint).

    ``coeff_nc`` is 70 for mapping_00229 (64 expression + 6 pose) and 73 for mapping_00109, the
    ``full``-mode model, which also sees the crop's scale and offset."""

    def __init__(self, coeff_nc=70, descriptor_nc=1024, layer=3, num_kp=15, num_bins=66):
        super().__init__()
        self.layer = layer
        self.first = nn.Sequential(nn.Conv1d(coeff_nc, descriptor_nc, kernel_size=7))
        for i in range(layer):
            setattr(self, f"encoder{i}", nn.Sequential(
                nn.LeakyReLU(0.1), nn.Conv1d(descriptor_nc, descriptor_nc, kernel_size=3, dilation=3)))
        self.fc_roll = nn.Linear(descriptor_nc, num_bins)
        self.fc_pitch = nn.Linear(descriptor_nc, num_bins)
        self.fc_yaw = nn.Linear(descriptor_nc, num_bins)
        self.fc_t = nn.Linear(descriptor_nc, 3)
        self.fc_exp = nn.Linear(descriptor_nc, 3 * num_kp)

    def forward(self, coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.first(coeffs)
        for i in range(self.layer):
            # each dilated conv shortens the window by 6; the residual is cropped to match
            out = getattr(self, f"encoder{i}")(out) + out[:, :, 3:-3]
        out = out.mean(dim=2)
        return {"yaw": self.fc_yaw(out), "pitch": self.fc_pitch(out), "roll": self.fc_roll(out),
                "t": self.fc_t(out), "exp": self.fc_exp(out)}


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Expected angle of 66 bins of 3 degrees starting at -99."""
    idx = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (F.softmax(logits, dim=1) * idx).sum(dim=1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B,) degrees -> (B, 3, 3) = P @ Y @ R. Upstream converts with 3.14, not pi; the checkpoints
    were trained that way, so it is kept."""
    def rad(a):
        return (a / 180 * 3.14)[:, None]

    p, y, r = rad(pitch), rad(yaw), rad(roll)
    one, zero = torch.ones_like(p), torch.zeros_like(p)
    pitch_m = torch.cat([one, zero, zero, zero, p.cos(), -p.sin(), zero, p.sin(), p.cos()], 1).view(-1, 3, 3)
    yaw_m = torch.cat([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1).view(-1, 3, 3)
    roll_m = torch.cat([r.cos(), -r.sin(), zero, r.sin(), r.cos(), zero, zero, zero, one], 1).view(-1, 3, 3)
    return torch.einsum("bij,bjk,bkm->bim", pitch_m, yaw_m, roll_m)


def keypoint_transformation(kp_canonical: torch.Tensor, he: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rotate the canonical keypoints (B, K, 3) by the predicted pose, shift them by the vertical
    translation only (upstream zeroes x and z), then add the expression offsets."""
    rot = rotation_matrix(bins_to_degrees(he["yaw"]), bins_to_degrees(he["pitch"]), bins_to_degrees(he["roll"]))
    kp = torch.einsum("bmp,bkp->bkm", rot, kp_canonical)
    t = he["t"] * torch.tensor([0.0, 1.0, 0.0], dtype=he["t"].dtype, device=he["t"].device)
    return kp + t[:, None, :] + he["exp"].view(he["exp"].shape[0], -1, 3)
