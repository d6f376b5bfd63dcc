"""LivePortrait's renderer networks as Ditto publishes them: appearance feature extractor, warping
network (with its dense motion network), SPADE decoder and the stitching MLP.

The blocks are those of SadTalker's face renderer (the same lineage, the same checkpoint names), so
they come from ``THG.sadtalker``. Differences from SadTalker's generator: 21 keypoints, the warp keeps
every mixing weight, and the decoder doubles the resolution with a pixel shuffle (64 -> 512 for a
256 input).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from THG.sadtalker.blocks import DownBlock2d, ResBlock3d, SameBlock2d
from THG.sadtalker.generator import DenseMotionNetwork
from THG.sadtalker.spade import SPADEResnetBlock

NUM_KP = 21


class AppearanceFeatureExtractor(nn.Module):
    """(B, 3, H, W) RGB in [0, 1] -> (B, 32, 16, H/4, W/4) feature volume of the source face."""

    def __init__(self, expansion: int = 64, max_features: int = 512, channels: int = 32, depth: int = 16,
                 num_resblocks: int = 6):
        super().__init__()
        self.channels, self.depth = channels, depth
        self.first = SameBlock2d(3, expansion)
        self.down_blocks = nn.ModuleList([DownBlock2d(expansion, 2 * expansion),
                                          DownBlock2d(2 * expansion, 4 * expansion)])
        self.second = nn.Conv2d(4 * expansion, max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.first(image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        return self.resblocks_3d(out.view(b, self.channels, self.depth, h, w))


class WarpingNetwork(nn.Module):
    """Warps the source feature volume from the source to the driving keypoints and flattens it:
    (B, 32, 16, h, w), (B, 21, 3), (B, 21, 3) -> (B, 256, h, w), multiplied by the occlusion map."""

    def __init__(self, num_kp: int = NUM_KP, channels: int = 32, depth: int = 16, max_features: int = 512,
                 out_features: int = 256):
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, feature_channel=channels,
                                                       reshape_depth=depth, min_weight=0.0)
        self.third = SameBlock2d(max_features, out_features, lrelu=True)
        self.fourth = nn.Conv2d(out_features, out_features, kernel_size=1)

    def forward(self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        deformation, occlusion = self.dense_motion_network(feature, kp_driving, kp_source)
        out = F.grid_sample(feature, deformation, align_corners=False)
        b, c, d, h, w = out.shape
        out = self.fourth(self.third(out.reshape(b, c * d, h, w)))
        return out * occlusion


class SPADEDecoder(nn.Module):
    """(B, 256, h, w) warped feature -> (B, 3, 8h, 8w) image in [0, 1]; the input is also the SPADE
    condition of every block."""

    def __init__(self, ic: int = 256, oc: int = 64):
        super().__init__()
        self.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
        for i in range(6):
            setattr(self, f"G_middle_{i}", SPADEResnetBlock(2 * ic, 2 * ic, ic))
        self.up_0 = SPADEResnetBlock(2 * ic, ic, ic)
        self.up_1 = SPADEResnetBlock(ic, oc, ic)
        self.conv_img = nn.Sequential(nn.Conv2d(oc, 3 * 4, kernel_size=3, padding=1), nn.PixelShuffle(2))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, feature)
        x = self.up_0(F.interpolate(x, scale_factor=2), feature)
        x = self.up_1(F.interpolate(x, scale_factor=2), feature)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class StitchingNetwork(nn.Module):
    """LivePortrait's stitching MLP (``retarget_shoulder``): from the source and driving keypoints, an
    offset of every driving keypoint plus a shared (x, y) shift, so the animated face lines up with the
    shoulders and background of the photo it is pasted into."""

    def __init__(self, num_kp: int = NUM_KP, hidden: tuple[int, ...] = (128, 128, 64)):
        super().__init__()
        sizes = (6 * num_kp, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(hidden[-1], 3 * num_kp + 2))
        self.mlp = nn.Sequential(*layers)

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        b, k, _ = kp_source.shape
        delta = self.mlp(torch.cat([kp_source.reshape(b, -1), kp_driving.reshape(b, -1)], dim=1))
        out = kp_driving + delta[:, :3 * k].reshape(b, k, 3)
        shift = torch.zeros_like(out)
        shift[..., :2] = delta[:, None, 3 * k:3 * k + 2]
        return out + shift
