"""KPDetector: the 15 canonical 3-D keypoints of the source face (facerender.yaml settings)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from THG.sadtalker.blocks import DownBlock2d, UpBlock3d, channels, coordinate_grid


class KPHourglass(nn.Module):
    """2-D encoder, a 1x1 conv that is reshaped into a 3-D volume, then a 3-D decoder."""

    def __init__(self, expansion=32, in_features=3, reshape_features=16384, reshape_depth=16,
                 num_blocks=5, max_features=1024):
        super().__init__()
        self.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            cin = in_features if i == 0 else channels(expansion, i, max_features)
            self.down_blocks.add_module(f"down{i}", DownBlock2d(cin, channels(expansion, i + 1, max_features)))
        self.conv = nn.Conv2d(channels(expansion, num_blocks, max_features), reshape_features, kernel_size=1)
        self.up_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.up_blocks.add_module(f"up{i}", UpBlock3d(channels(expansion, num_blocks - i, max_features),
                                                          channels(expansion, num_blocks - i - 1, max_features)))
        self.reshape_depth = reshape_depth
        self.out_filters = channels(expansion, 0, max_features)

    def forward(self, x):
        out = self.conv(self.down_blocks(x))
        b, c, h, w = out.shape
        return self.up_blocks(out.view(b, c // self.reshape_depth, self.reshape_depth, h, w))


class KPDetector(nn.Module):
    """Keypoints as the soft-argmax of 15 heatmaps over a (16, 64, 64) volume.

    ``down.weight`` is the anti-aliasing Gaussian applied before the network (scale 1/4). It is a
    buffer in the checkpoint and is loaded from there rather than rebuilt."""

    def __init__(self, num_kp=15, image_channel=3, temperature=0.1, scale=0.25):
        super().__init__()
        self.predictor = KPHourglass()
        self.kp = nn.Conv3d(self.predictor.out_filters, num_kp, kernel_size=3, padding=1)
        self.temperature = temperature
        self.stride = int(1 / scale)
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.down = nn.Module()
        self.down.register_buffer("weight", torch.zeros(image_channel, 1, size, size))

    def antialias(self, x):
        w = self.down.weight
        half = w.shape[-1] // 2  # the kernel is odd-sized, so the padding is symmetric
        out = F.conv2d(F.pad(x, (half, half, half, half)), w, groups=x.shape[1])
        return out[:, :, ::self.stride, ::self.stride]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, num_kp, 3) keypoints (x, y, z) in [-1, 1]."""
        pred = self.kp(self.predictor(self.antialias(x)))
        b, k, d, h, w = pred.shape
        heat = F.softmax(pred.view(b, k, -1) / self.temperature, dim=2).view(b, k, d, h, w, 1)
        grid = coordinate_grid(d, h, w, pred)
        return (heat * grid).sum(dim=(2, 3, 4))
