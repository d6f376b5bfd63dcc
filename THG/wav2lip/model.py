"""The Wav2Lip generator, with the parameter names of the published checkpoints.

A face encoder (96x96, 6 channels: the masked target frame and a reference frame) and an audio
encoder (one 80x16 mel window) each reduce to 512x1x1; a decoder upsamples the audio embedding
with U-Net skips from the face encoder and a sigmoid gives a BGR face in [0, 1].

Beyond the original forward, ``encode_face`` and ``decode`` are exposed separately: for a
still portrait every frame has the same face input, so the face encoder runs once per avatar
instead of once per frame.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

IMG_SIZE = 96


class ConvBlock(nn.Module):
    """conv -> BatchNorm (-> + input) -> ReLU; ``conv_block.{0,1}`` as in the checkpoints."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int,
                 residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return torch.relu(out)

    def fuse(self) -> None:
        """Fold the (eval-mode) BatchNorm into the conv: one op fewer per block at inference."""
        conv, bn = self.conv_block[0], self.conv_block[1]
        self.conv_block = nn.Sequential(fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d)))


class UpBlock(ConvBlock):
    """Transposed conv -> BatchNorm -> ReLU (never residual in Wav2Lip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, output_padding: int = 0):
        nn.Module.__init__(self)
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding), nn.BatchNorm2d(cout))
        self.residual = False


def _res(c: int) -> ConvBlock:
    return ConvBlock(c, c, 3, 1, 1, residual=True)


class Wav2Lip(nn.Module):
    """``forward(audio (B,1,80,16) or (B,T,1,80,16), face (B,6,96,96) or (B,6,T,96,96)) -> (B,3,96,96)``."""

    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(ConvBlock(6, 16, 7, 1, 3)),  # 96
            nn.Sequential(ConvBlock(16, 32, 3, 2, 1), _res(32), _res(32)),  # 48
            nn.Sequential(ConvBlock(32, 64, 3, 2, 1), _res(64), _res(64), _res(64)),  # 24
            nn.Sequential(ConvBlock(64, 128, 3, 2, 1), _res(128), _res(128)),  # 12
            nn.Sequential(ConvBlock(128, 256, 3, 2, 1), _res(256), _res(256)),  # 6
            nn.Sequential(ConvBlock(256, 512, 3, 2, 1), _res(512)),  # 3
            nn.Sequential(ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)),  # 1
        ])
        self.audio_encoder = nn.Sequential(
            ConvBlock(1, 32, 3, 1, 1), _res(32), _res(32),  # 80x16
            ConvBlock(32, 64, 3, (3, 1), 1), _res(64), _res(64),  # 27x16
            ConvBlock(64, 128, 3, 3, 1), _res(128), _res(128),  # 9x6
            ConvBlock(128, 256, 3, (3, 2), 1), _res(256),  # 3x3
            ConvBlock(256, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0),  # 1x1
        )
        # Input channels of each decoder stage = previous stage's output + the matching skip.
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(ConvBlock(512, 512, 1, 1, 0)),  # 1
            nn.Sequential(UpBlock(1024, 512, 3, 1, 0), _res(512)),  # 3
            nn.Sequential(UpBlock(1024, 512, 3, 2, 1, 1), _res(512), _res(512)),  # 6
            nn.Sequential(UpBlock(768, 384, 3, 2, 1, 1), _res(384), _res(384)),  # 12
            nn.Sequential(UpBlock(512, 256, 3, 2, 1, 1), _res(256), _res(256)),  # 24
            nn.Sequential(UpBlock(320, 128, 3, 2, 1, 1), _res(128), _res(128)),  # 48
            nn.Sequential(UpBlock(160, 64, 3, 2, 1, 1), _res(64), _res(64)),  # 96
        ])
        self.output_block = nn.Sequential(ConvBlock(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def encode_face(self, face: torch.Tensor) -> list[torch.Tensor]:
        """Skip features of every encoder stage, shallowest first."""
        feats = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        return feats

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        return self.audio_encoder(mel)

    def decode(self, audio_embedding: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        """Decoder + output head. ``feats`` may have batch 1 (one still face for every window)."""
        x = audio_embedding
        n = x.shape[0]
        for block, skip in zip(self.face_decoder_blocks, reversed(feats), strict=True):
            x = block(x)
            if skip.shape[0] != n:
                skip = skip.expand(n, -1, -1, -1)
            x = torch.cat((x, skip), dim=1)
        return self.output_block(x)

    def forward(self, audio_sequences: torch.Tensor, face_sequences: torch.Tensor) -> torch.Tensor:
        batch = audio_sequences.shape[0]
        seq = audio_sequences.dim() > 4
        if seq:  # training layout: fold time into the batch, as the original does
            audio_sequences = torch.cat([audio_sequences[:, i] for i in range(audio_sequences.size(1))], dim=0)
            face_sequences = torch.cat([face_sequences[:, :, i] for i in range(face_sequences.size(2))], dim=0)
        out = self.decode(self.encode_audio(audio_sequences), self.encode_face(face_sequences))
        if seq:
            out = torch.stack(torch.split(out, batch, dim=0), dim=2)
        return out

    @torch.no_grad()
    def fuse(self) -> Wav2Lip:
        """Fold every BatchNorm into its conv (eval only; the state dict no longer matches the file)."""
        self.eval()
        for m in self.modules():
            if isinstance(m, ConvBlock) and len(m.conv_block) == 2:
                m.fuse()
        return self
