"""Layers shared by the face renderer networks (keypoint detector, dense motion, generator).

Attribute names (``conv``, ``norm``, ``pool`` ...) are the ones in the published checkpoints.
The BatchNorms were SyncBatchNorm upstream; in eval mode that is a plain BatchNorm with the same keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid(d: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """A (d, h, w, 3) grid of (x, y, z) in [-1, 1], the coordinates grid_sample expects."""
    def axis(n: int) -> torch.Tensor:
        a = torch.arange(n, dtype=like.dtype, device=like.device)
        return 2 * (a / (n - 1)) - 1

    z, y, x = torch.meshgrid(axis(d), axis(h), axis(w), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


class DownBlock2d(nn.Module):
    """conv -> BN -> ReLU -> 2x2 average pool."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(cout)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x):
        return self.pool(F.relu(self.norm(self.conv(x))))


class DownBlock3d(nn.Module):
    """3-D conv -> BN -> ReLU -> pool over height and width only (depth is kept)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(cout)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x):
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock3d(nn.Module):
    """Nearest x2 upsampling of height and width, then 3-D conv -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(cout)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=(1, 2, 2))
        return F.relu(self.norm(self.conv(x)))


class SameBlock2d(nn.Module):
    """conv -> BN -> ReLU (or LeakyReLU 0.01), resolution kept."""

    def __init__(self, cin: int, cout: int, lrelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(cout)
        self.ac = nn.LeakyReLU() if lrelu else nn.ReLU()

    def forward(self, x):
        return self.ac(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block (BN -> ReLU -> conv, twice)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def channels(expansion: int, level: int, cap: int) -> int:
    """The hourglass width rule: ``expansion * 2**level``, capped."""
    return min(cap, expansion * 2 ** level)


class Hourglass(nn.Module):
    """3-D U-Net of the dense motion network: ``encoder.down_blocks.*``, ``decoder.up_blocks.*``,
    ``decoder.conv``/``decoder.norm``. The output has ``expansion + in_features`` channels."""

    def __init__(self, expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.down_blocks = nn.ModuleList(
            DownBlock3d(in_features if i == 0 else channels(expansion, i, max_features),
                        channels(expansion, i + 1, max_features))
            for i in range(num_blocks))
        self.decoder = nn.Module()
        self.decoder.up_blocks = nn.ModuleList(
            UpBlock3d((1 if i == num_blocks - 1 else 2) * channels(expansion, i + 1, max_features),
                      channels(expansion, i, max_features))
            for i in reversed(range(num_blocks)))
        self.out_filters = expansion + in_features
        self.decoder.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.decoder.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, x):
        skips = [x]
        for block in self.encoder.down_blocks:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.decoder.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.decoder.norm(self.decoder.conv(out)))
