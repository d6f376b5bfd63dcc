"""OcclusionAwareSPADEGenerator: warps a 3-D feature volume of the source image from the source
keypoints to the driving keypoints, then decodes it with SPADE blocks (facerender.yaml settings).

``encode`` depends on the source image only, so a renderer computes it once per portrait and calls
``decode`` per frame; ``forward`` does both, like the original."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from THG.sadtalker.blocks import (
    DownBlock2d,
    Hourglass,
    ResBlock3d,
    SameBlock2d,
    coordinate_grid,
)
from THG.sadtalker.spade import SPADEDecoder


def keypoint_gaussians(kp: torch.Tensor, d: int, h: int, w: int, variance: float = 0.01) -> torch.Tensor:
    """(B, K, 3) keypoints -> (B, K, d, h, w) unnormalised Gaussians around them."""
    grid = coordinate_grid(d, h, w, kp)
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * (diff ** 2).sum(-1) / variance)


class DenseMotionNetwork(nn.Module):
    """Predicts, from keypoint motions, a dense 3-D deformation (a softmax mix of per-keypoint
    translations plus the identity) and a 2-D occlusion map.

    ``min_weight``: mixing weights below it are dropped, as SadTalker's network does; LivePortrait's
    (Ditto's warping network) keeps them all (0)."""

    def __init__(self, num_kp=15, feature_channel=32, expansion=32, num_blocks=5, max_features=1024,
                 reshape_depth=16, compress=4, min_weight: float = 1e-3):
        super().__init__()
        self.num_kp = num_kp
        self.min_weight = min_weight
        self.hourglass = Hourglass(expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)

    def forward(self, feature, kp_driving, kp_source):
        feature = F.relu(self.norm(self.compress(feature)))
        bs, c, d, h, w = feature.shape
        k = self.num_kp

        # where each driving-frame voxel comes from under each keypoint's translation (plus identity)
        identity = coordinate_grid(d, h, w, feature)[None, None]  # 1,1,d,h,w,3
        to_source = identity - kp_driving[:, :, None, None, None, :] + kp_source[:, :, None, None, None, :]
        motions = torch.cat([identity.expand(bs, 1, d, h, w, 3), to_source], dim=1)  # bs,k+1,d,h,w,3

        repeated = feature[:, None].expand(bs, k + 1, c, d, h, w).reshape(bs * (k + 1), c, d, h, w)
        deformed = F.grid_sample(repeated, motions.reshape(bs * (k + 1), d, h, w, 3), align_corners=False)
        deformed = deformed.view(bs, k + 1, c, d, h, w)

        heat = keypoint_gaussians(kp_driving, d, h, w) - keypoint_gaussians(kp_source, d, h, w)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)[:, :, None]  # bs,k+1,1,d,h,w

        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(bs, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)
        if self.min_weight > 0:
            mask = torch.where(mask < self.min_weight, torch.zeros_like(mask), mask)
        deformation = (motions * mask[..., None]).sum(dim=1)  # bs,d,h,w,3

        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(bs, -1, h, w)))
        return deformation, occlusion


class OcclusionAwareSPADEGenerator(nn.Module):
    def __init__(self, image_channel=3, feature_channel=32, num_kp=15, block_expansion=64, max_features=512,
                 num_down_blocks=2, reshape_channel=32, reshape_depth=16, num_resblocks=6):
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, feature_channel=feature_channel,
                                                       reshape_depth=reshape_depth)
        self.first = SameBlock2d(image_channel, block_expansion)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(max_features, block_expansion * 2 ** i), min(max_features, block_expansion * 2 ** (i + 1)))
            for i in range(num_down_blocks))
        down_out = min(max_features, block_expansion * 2 ** num_down_blocks)
        self.second = nn.Conv2d(down_out, max_features, kernel_size=1)
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))
        out_features = block_expansion * 2 ** num_down_blocks
        self.third = SameBlock2d(max_features, out_features, lrelu=True)
        self.fourth = nn.Conv2d(out_features, out_features, kernel_size=1)
        self.decoder = SPADEDecoder()

    def encode(self, source_image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 32, 16, H/4, W/4) feature volume."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        bs, _, h, w = out.shape
        return self.resblocks_3d(out.view(bs, self.reshape_channel, self.reshape_depth, h, w))

    def decode(self, feature_3d, kp_source, kp_driving) -> dict[str, torch.Tensor]:
        """Warp ``feature_3d`` (B, ...) from ``kp_source`` to ``kp_driving`` (B, K, 3) and render."""
        deformation, occlusion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        out = F.grid_sample(feature_3d, deformation, align_corners=False)
        bs, c, d, h, w = out.shape
        out = self.fourth(self.third(out.view(bs, c * d, h, w)))
        if out.shape[2:] != occlusion.shape[2:]:
            occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
        return {"prediction": self.decoder(out * occlusion), "occlusion_map": occlusion}

    def forward(self, source_image, kp_driving, kp_source):
        return self.decode(self.encode(source_image), kp_source, kp_driving)
