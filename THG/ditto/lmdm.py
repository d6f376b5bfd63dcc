"""Ditto's LMDM: a transformer that denoises 80-frame windows of 265-dim LivePortrait motion, conditioned
on the last motion frame and on 1103 per-frame features (HuBERT 1024, emotion 8, eye openness 2, eye
ball 6, canonical keypoints 63), sampled with DDIM and classifier-free guidance.

``MotionDecoder`` holds the checkpoint's ``model_state_dict`` (8 FiLM decoder layers cross-attending
to the condition tokens, 2 condition-encoder layers, one rotary position embedding shared by all of
them, so its ``rotary.freqs`` appears 11 times in the state dict). ``DDIMSampler`` is the wrapper's
cosine schedule and sampling loop; the wrapper's buffers are recomputed, not loaded.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MOTION_DIM, COND_DIM, SEQ_FRAMES, LATENT = 265, 1103, 80, 512
TIMESTEPS = 1000
GUIDANCE = 2.0  # the wrapper's fixed guidance weight


class Rotary(nn.Module):
    """Rotary positions over the whole model width, applied to queries and keys before projection
    (pairs of neighbouring features rotated together)."""

    def __init__(self, dim: int = LATENT):
        super().__init__()
        self.register_buffer("freqs", 1.0 / 10000 ** (torch.arange(0, dim, 2).float() / dim))
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _cos_sin(self, n: int, like: torch.Tensor):
        key = (n, like.device, like.dtype, self.freqs.data_ptr(), self.freqs._version)  # reloaded: recompute
        if key not in self._cache:
            angles = torch.arange(n, device=like.device, dtype=self.freqs.dtype)[:, None] * self.freqs[None]
            angles = angles.repeat_interleave(2, dim=-1)
            self._cache = {key: (angles.cos().to(like.dtype), angles.sin().to(like.dtype))}
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cos, sin = self._cos_sin(x.shape[-2], x)
        pairs = x.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * cos + rotated * sin


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward (GELU) over the condition tokens."""

    def __init__(self, rotary: Rotary, d: int = LATENT, heads: int = 8, ff: int = 1024):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.rotary = rotary

    def forward(self, x):
        h = self.norm1(x)
        qk = self.rotary(h)
        x = x + self.self_attn(qk, qk, h, need_weights=False)[0]
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class FiLM(nn.Module):
    def __init__(self, d: int = LATENT):
        super().__init__()
        self.block = nn.Sequential(nn.Mish(), nn.Linear(d, 2 * d))

    def forward(self, t):
        return self.block(t)[:, None].chunk(2, dim=-1)  # scale, shift: (B, 1, d) each


class DecoderLayer(nn.Module):
    """Pre-norm self-attention, cross-attention to the condition tokens and feed-forward, each output
    modulated by the time embedding (FiLM) before its residual."""

    def __init__(self, rotary: Rotary, d: int = LATENT, heads: int = 8, ff: int = 1024):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.film1, self.film2, self.film3 = FiLM(d), FiLM(d), FiLM(d)
        self.rotary = rotary

    def forward(self, x, memory, memory_rotated, t):
        def film(y, f):
            scale, shift = f(t)
            return (scale + 1) * y + shift

        h = self.norm1(x)
        qk = self.rotary(h)
        x = x + film(self.self_attn(qk, qk, h, need_weights=False)[0], self.film1)
        h = self.norm2(x)
        x = x + film(self.multihead_attn(self.rotary(h), memory_rotated, memory, need_weights=False)[0], self.film2)
        return x + film(self.linear2(F.gelu(self.linear1(self.norm3(x)))), self.film3)


def timestep_embedding(t: torch.Tensor, dim: int = LATENT) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
    angles = t[:, None] * freqs[None]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class MotionDecoder(nn.Module):
    def __init__(self, nfeats: int = MOTION_DIM, seq_len: int = SEQ_FRAMES, d: int = LATENT, ff: int = 1024,
                 num_layers: int = 8, heads: int = 8, cond_dim: int = COND_DIM):
        super().__init__()
        self.rotary = Rotary(d)
        self.time_mlp = nn.Sequential(nn.Identity(), nn.Linear(d, 4 * d), nn.Mish())  # [0]: the sinusoid
        self.to_time_cond = nn.Sequential(nn.Linear(4 * d, d))
        self.to_time_tokens = nn.Sequential(nn.Linear(4 * d, 2 * d))
        self.null_cond_embed = nn.Parameter(torch.zeros(1, seq_len, d))
        self.null_cond_hidden = nn.Parameter(torch.zeros(1, d))
        self.norm_cond = nn.LayerNorm(d)
        self.input_projection = nn.Linear(2 * nfeats, d)
        self.cond_encoder = nn.Sequential(*(EncoderLayer(self.rotary, d, heads, ff) for _ in range(2)))
        self.cond_projection = nn.Linear(cond_dim, d)
        self.non_attn_cond_projection = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.seqTransDecoder = nn.Module()
        self.seqTransDecoder.stack = nn.ModuleList(DecoderLayer(self.rotary, d, heads, ff) for _ in range(num_layers))
        self.final_layer = nn.Linear(d, nfeats)

    def guided(self, x: torch.Tensor, cond_frame: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
               weight: float = GUIDANCE) -> torch.Tensor:
        """Classifier-free guided prediction of the clean motion: ``unc + (cond - unc) * weight``, where
        the unconditional pass sees the learned null condition instead of the audio. Both passes run
        as one batch of 2B."""
        b = x.shape[0]
        h = self.input_projection(torch.cat([x, cond_frame[:, None].expand(-1, x.shape[1], -1)], dim=-1))
        tokens = self.cond_encoder(self.cond_projection(cond))
        hidden = self.non_attn_cond_projection(tokens.mean(dim=-2))
        t_hidden = self.time_mlp(timestep_embedding(t.to(h.dtype)))
        t_cond = self.to_time_cond(t_hidden)
        t_tokens = self.to_time_tokens(t_hidden).unflatten(-1, (2, -1))
        null_tokens = self.null_cond_embed.to(tokens.dtype).expand(b, -1, -1)
        memory = self.norm_cond(torch.cat([torch.cat([null_tokens, t_tokens], 1), torch.cat([tokens, t_tokens], 1)]))
        film = torch.cat([t_cond + self.null_cond_hidden.to(t_cond.dtype), t_cond + hidden])
        out = torch.cat([h, h])
        memory_rotated = self.rotary(memory)
        for layer in self.seqTransDecoder.stack:
            out = layer(out, memory, memory_rotated, film)
        unc, conditioned = self.final_layer(out).split(b)
        return unc + (conditioned - unc) * weight


def cosine_alphas_cumprod(n: int = TIMESTEPS, s: float = 8e-3) -> torch.Tensor:
    """The wrapper's ``alphas_cumprod``: the cosine schedule's betas in float64, clipped at 0.999, then
    ``cumprod(1 - beta)`` in float32, as it registers them."""
    steps = np.arange(n + 1, dtype=np.float64) / n + s
    alphas = np.cos(steps / (1 + s) * np.pi / 2) ** 2
    alphas = alphas / alphas[0]
    betas = np.clip(1 - alphas[1:] / alphas[:-1], 0, 0.999)
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float32), dim=0)


class DDIMSampler:
    """DDIM (eta 1) over ``steps`` evenly spaced timesteps, as the wrapper samples.

    Randomness follows the wrapper: one noise tensor per step is drawn once, when the sampler is made,
    and reused for every window; each window then draws its starting noise. With a generator seeded as
    ``torch.manual_seed(seed)`` seeds the global one, the numbers are the original's."""

    def __init__(self, model: MotionDecoder, steps: int, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", seq_frames: int = SEQ_FRAMES, dim: int = MOTION_DIM):
        self.model = model
        self.device = torch.device(device)
        self.generator = generator
        self.shape = (1, seq_frames, dim)
        ac = cosine_alphas_cumprod()
        self.alphas_cumprod = ac
        self.sqrt_recipm1 = torch.sqrt(1.0 / ac - 1)
        self.sqrt_recip1m = torch.sqrt(1.0 / (1.0 - ac))
        times = list(reversed(torch.linspace(-1, TIMESTEPS - 1, steps=steps + 1).int().tolist()))
        self.pairs = list(zip(times[:-1], times[1:], strict=True))
        self.steps = []  # (time, sqrt(alpha_next), c, sigma, noise) per step; the last has no update
        for time, time_next in self.pairs:
            if time_next < 0:
                self.steps.append((time, None, None, None, None))
                continue
            a, a_next = ac[time], ac[time_next]
            sigma = ((1 - a / a_next) * (1 - a_next) / (1 - a)).sqrt()
            c = (1 - a_next - sigma ** 2).sqrt()
            self.steps.append((time, a_next.sqrt(), c, sigma, self._randn()))

    def _randn(self) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.generator).to(self.device)

    def predict(self, x, cond_frame, cond, time: int):
        """(pred_noise, x_start) at one timestep, as the wrapper's ``forward``."""
        t = torch.full((x.shape[0],), time, dtype=torch.long, device=x.device)
        x_start = self.model.guided(x, cond_frame, cond, t)
        a = self.sqrt_recip1m[time].to(x.device, x.dtype)
        b = self.sqrt_recipm1[time].to(x.device, x.dtype)
        return a * x - x_start / b, x_start

    @torch.no_grad()
    def sample(self, cond_frame: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(1, 265) last motion frame, (1, 80, 1103) conditions -> (1, 80, 265) motion."""
        x = self._randn()
        for time, a_next, c, sigma, noise in self.steps:
            pred_noise, x_start = self.predict(x, cond_frame, cond, time)
            if a_next is None:
                x = x_start
            else:
                x = x_start * a_next.to(x.device) + c.to(x.device) * pred_noise + sigma.to(x.device) * noise
        return x
