"""Audio -> head pose: a conditional VAE whose decoder turns noise z, a pose-style bias (46 styles)
and 32 frames of audio embeddings into 32 frames of pose motion (auido2pose.yaml settings).

The module tree is the whole upstream ``Audio2Pose`` so the checkpoint loads strictly; the CVAE
``encoder`` and the motion discriminator ``netD_motion`` are training-only and never run here."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from THG.sadtalker.audio2exp import audio_encoder

SEQ_LEN = 32
LATENT = 64
NUM_CLASSES = 46


class ResidualConv(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
            nn.BatchNorm2d(cout), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.conv_skip = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.conv_block(x) + self.conv_skip(x)


class Upsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(cin, cout, kernel_size=(2, 1), stride=(2, 1))

    def forward(self, x):
        return self.upsample(x)


class ResUnet(nn.Module):
    """U-Net over a (B, 1, frames, 6) pose map that halves and restores the frame axis only."""

    def __init__(self, f=(32, 64, 128, 256)):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(1, f[0], 3, padding=1), nn.BatchNorm2d(f[0]), nn.ReLU(),
                                         nn.Conv2d(f[0], f[0], 3, padding=1))
        self.input_skip = nn.Sequential(nn.Conv2d(1, f[0], 3, padding=1))
        self.residual_conv_1 = ResidualConv(f[0], f[1], (2, 1))
        self.residual_conv_2 = ResidualConv(f[1], f[2], (2, 1))
        self.bridge = ResidualConv(f[2], f[3], (2, 1))
        self.upsample_1 = Upsample(f[3], f[3])
        self.up_residual_conv1 = ResidualConv(f[3] + f[2], f[2], 1)
        self.upsample_2 = Upsample(f[2], f[2])
        self.up_residual_conv2 = ResidualConv(f[2] + f[1], f[1], 1)
        self.upsample_3 = Upsample(f[1], f[1])
        self.up_residual_conv3 = ResidualConv(f[1] + f[0], f[0], 1)
        self.output_layer = nn.Sequential(nn.Conv2d(f[0], 1, 1, 1), nn.Sigmoid())

    def forward(self, x):
        x1 = self.input_layer(x) + self.input_skip(x)
        x2 = self.residual_conv_1(x1)
        x3 = self.residual_conv_2(x2)
        x4 = self.bridge(x3)
        x6 = self.up_residual_conv1(torch.cat([self.upsample_1(x4), x3], dim=1))
        x8 = self.up_residual_conv2(torch.cat([self.upsample_2(x6), x2], dim=1))
        x10 = self.up_residual_conv3(torch.cat([self.upsample_3(x8), x1], dim=1))
        return self.output_layer(x10)


class CVAEDecoder(nn.Module):
    """z + class bias, the reference pose and 32 audio embeddings -> (B, 32, 6) pose motion."""

    def __init__(self, emb_out=6):
        super().__init__()
        self.resunet = ResUnet()
        self.MLP = nn.Sequential(OrderedDict(
            L0=nn.Linear(LATENT + SEQ_LEN * emb_out + 6, 128), A0=nn.ReLU(),
            L1=nn.Linear(128, SEQ_LEN * 6), sigmoid=nn.Sigmoid()))
        self.pose_linear = nn.Linear(6, 6)
        self.linear_audio = nn.Linear(512, emb_out)
        self.classbias = nn.Parameter(torch.zeros(NUM_CLASSES, LATENT))

    def forward(self, z, class_id, ref, audio_emb):
        bs = z.shape[0]
        audio = self.linear_audio(audio_emb).reshape(bs, -1)
        x = self.MLP(torch.cat([ref, z + self.classbias[class_id], audio], dim=-1)).reshape(bs, SEQ_LEN, -1)
        return self.pose_linear(self.resunet(x.unsqueeze(1)).squeeze(1))


class CVAEEncoder(nn.Module):
    """Training-only; present so that the published weights load strictly."""

    def __init__(self, emb_out=6):
        super().__init__()
        self.resunet = ResUnet()
        self.MLP = nn.Sequential(OrderedDict(L0=nn.Linear(192 + LATENT + SEQ_LEN * emb_out + 6, 128), A0=nn.ReLU()))
        self.linear_means = nn.Linear(128, LATENT)
        self.linear_logvar = nn.Linear(128, LATENT)
        self.linear_audio = nn.Linear(512, emb_out)
        self.classbias = nn.Parameter(torch.zeros(NUM_CLASSES, LATENT))


class ConvNormRelu1d(nn.Module):
    def __init__(self, cin, cout, kernel_size, stride, padding):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel_size, stride, padding, bias=False)
        self.norm = nn.BatchNorm1d(cout)


class PoseSequenceDiscriminator(nn.Module):
    """Training-only; present so that the published weights load strictly."""

    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(ConvNormRelu1d(6, 256, 4, 2, 1), ConvNormRelu1d(256, 512, 4, 2, 1),
                                 ConvNormRelu1d(512, 1024, 3, 1, 1), nn.Conv1d(1024, 1, 3, 1, 1))


class Audio2Pose(nn.Module):
    def __init__(self):
        super().__init__()
        self.audio_encoder = nn.Module()
        self.audio_encoder.audio_encoder = audio_encoder()
        self.netG = nn.Module()
        self.netG.encoder = CVAEEncoder()
        self.netG.decoder = CVAEDecoder()
        self.netD_motion = PoseSequenceDiscriminator()

    def embed(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, 80, 16) -> (B, T, 512)."""
        b, t = mels.shape[:2]
        return self.audio_encoder.audio_encoder(mels.reshape(b * t, 1, 80, 16)).reshape(b, t, -1)

    def forward(self, mels, ref, class_id, zs) -> torch.Tensor:
        """Pose motion for every frame, relative to frame 0 (whose motion is zero).

        mels (B, T, 1, 80, 16); ref (B, >=1, 70) (the pose is its last 6 values); class_id (B,) int64;
        zs: a sequence of (B, 64) noise, one per 32-frame window (``num_windows(T)`` of them), drawn by
        the caller so that a seed fixes the motion. Returns (B, T, 6)."""
        ref_pose = ref[:, 0, -6:]
        n = mels.shape[1] - 1  # frame 0 is the reference
        if len(zs) != num_windows(n + 1):
            raise ValueError(f"need {num_windows(n + 1)} noise vectors for {n + 1} frames, got {len(zs)}")
        out = [torch.zeros_like(ref_pose)[:, None]]
        if n <= 0:
            return out[0]
        emb = self.embed(mels[:, 1:])
        full, rest = divmod(n, SEQ_LEN)
        decoder = self.netG.decoder
        for i in range(full):
            out.append(decoder(zs[i], class_id, ref_pose, emb[:, i * SEQ_LEN:(i + 1) * SEQ_LEN]))
        if rest:
            tail = emb[:, -SEQ_LEN:]
            if tail.shape[1] < SEQ_LEN:  # shorter than one window: repeat the first embedding in front
                tail = torch.cat([tail[:, :1].expand(-1, SEQ_LEN - tail.shape[1], -1), tail], dim=1)
            out.append(decoder(zs[full], class_id, ref_pose, tail)[:, -rest:])
        return torch.cat(out, dim=1)


def num_windows(num_frames: int) -> int:
    """How many noise vectors ``Audio2Pose.forward`` needs for ``num_frames`` frames."""
    full, rest = divmod(max(num_frames - 1, 0), SEQ_LEN)
    return full + (1 if rest else 0)


def smooth_pose(pose: np.ndarray) -> np.ndarray:
    """Savitzky-Golay (order 2) along the frame axis of (B, T, 6): window 13, or the largest odd
    window that fits a shorter clip. Clips under 3 frames are returned as they are."""
    from scipy.signal import savgol_filter

    t = pose.shape[1]
    window = 13 if t >= 13 else (t - 1) // 2 * 2 + 1
    if window <= 2:
        return pose
    return savgol_filter(pose, window, 2, axis=1)
