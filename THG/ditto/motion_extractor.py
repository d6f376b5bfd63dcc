"""LivePortrait's motion extractor: a ConvNeXt-V2 tiny backbone with seven linear heads giving the
canonical keypoints, head pose (66-bin logits per angle), translation, expression offsets and scale of
a face. Checkpoint keys live under ``detector.``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEPTHS, DIMS = (3, 3, 9, 3), (96, 192, 384, 768)
HEADS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")  # the order the network returns them in


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW map (ConvNeXt's stem and downsampling layers)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt V2), on NHWC input."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x):
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    def __init__(self, num_kp: int = 21, num_bins: int = 66):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, DIMS[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(DIMS[0]))]
            + [nn.Sequential(ChannelsFirstLayerNorm(DIMS[i]), nn.Conv2d(DIMS[i], DIMS[i + 1], kernel_size=2, stride=2))
               for i in range(3)])
        self.stages = nn.ModuleList(nn.Sequential(*(Block(DIMS[i]) for _ in range(DEPTHS[i]))) for i in range(4))
        self.norm = nn.LayerNorm(DIMS[-1], eps=1e-6)
        self.fc_kp = nn.Linear(DIMS[-1], 3 * num_kp)
        self.fc_scale = nn.Linear(DIMS[-1], 1)
        self.fc_pitch = nn.Linear(DIMS[-1], num_bins)
        self.fc_yaw = nn.Linear(DIMS[-1], num_bins)
        self.fc_roll = nn.Linear(DIMS[-1], num_bins)
        self.fc_t = nn.Linear(DIMS[-1], 3)
        self.fc_exp = nn.Linear(DIMS[-1], 3 * num_kp)

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))
        x = self.norm(x.mean((-2, -1)))
        return (self.fc_pitch(x), self.fc_yaw(x), self.fc_roll(x), self.fc_t(x), self.fc_exp(x),
                self.fc_scale(x), self.fc_kp(x))


class MotionExtractor(nn.Module):
    """(B, 3, 256, 256) RGB in [0, 1] -> dict of ``HEADS``: pitch/yaw/roll (B, 66) bin logits, t (B, 3),
    exp (B, 63), scale (B, 1), kp (B, 63)."""

    def __init__(self, num_kp: int = 21):
        super().__init__()
        self.detector = ConvNeXtV2(num_kp=num_kp)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(HEADS, self.detector(x), strict=True))
