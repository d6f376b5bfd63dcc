"""Audio -> expression: SimpleWrapperV2 (the Wav2Lip audio encoder plus one linear layer), and the
shared audio encoder that audio2pose uses too."""

from __future__ import annotations

import torch
from torch import nn


class ConvBN(nn.Module):
    """``conv_block`` = (conv, BN), optional residual, then ReLU (the Wav2Lip audio block)."""

    def __init__(self, cin, cout, kernel_size, stride, padding, residual=False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return torch.relu(out)


def audio_encoder() -> nn.Sequential:
    """(N, 1, 80, 16) mel window -> (N, 512, 1, 1)."""
    spec = [  # cin, cout, kernel, stride, padding, residual
        (1, 32, 3, 1, 1, False), (32, 32, 3, 1, 1, True), (32, 32, 3, 1, 1, True),
        (32, 64, 3, (3, 1), 1, False), (64, 64, 3, 1, 1, True), (64, 64, 3, 1, 1, True),
        (64, 128, 3, 3, 1, False), (128, 128, 3, 1, 1, True), (128, 128, 3, 1, 1, True),
        (128, 256, 3, (3, 2), 1, False), (256, 256, 3, 1, 1, True),
        (256, 512, 3, 1, 0, False), (512, 512, 1, 1, 0, False),
    ]
    return nn.Sequential(*(ConvBN(*s) for s in spec))


class SimpleWrapperV2(nn.Module):
    """Per frame: audio embedding (512) + reference expression (64) + blink ratio (1) -> 64 coefficients.

    Frames do not interact, so the original's 10-frame windows are only a memory bound; ``forward``
    takes any number of frames."""

    def __init__(self):
        super().__init__()
        self.audio_encoder = audio_encoder()
        self.mapping1 = nn.Linear(512 + 64 + 1, 64)

    def forward(self, mels: torch.Tensor, ref: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """mels (B, T, 1, 80, 16), ref (B, T, >=64), ratio (B, T, 1) -> (B, T, 64)."""
        b, t = mels.shape[:2]
        x = self.audio_encoder(mels.reshape(b * t, 1, 80, 16)).reshape(b * t, -1)
        y = self.mapping1(torch.cat([x, ref[..., :64].reshape(b * t, 64), ratio.reshape(b * t, 1)], dim=1))
        return y.reshape(b, t, 64)


def predict_expression(net: SimpleWrapperV2, mels, ref, ratio, chunk: int = 200) -> torch.Tensor:
    """``net`` over a long sequence in chunks of frames, to bound memory."""
    outs = [net(mels[:, i:i + chunk], ref[:, i:i + chunk], ratio[:, i:i + chunk])
            for i in range(0, mels.shape[1], chunk)]
    return torch.cat(outs, dim=1)
