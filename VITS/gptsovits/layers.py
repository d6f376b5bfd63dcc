"""Building blocks of the SoVITS synthesizer: old-style weight-norm convs, channel LayerNorm and the
VITS relative-position attention encoder."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _weight_from_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # Old torch.nn.utils.weight_norm(dim=0): w = g * v / ||v||, the norm taken over every dim but 0.
    norm = v.pow(2).sum(dim=tuple(range(1, v.dim())), keepdim=True).sqrt()
    return v * (g / norm)


class WNConv1d(nn.Module):
    """Conv1d stored as ``weight_g`` (out,1,1) + ``weight_v`` (out,in,k), the layout of the checkpoints
    (they predate ``parametrizations.weight.original0/1``)."""

    def __init__(self, cin: int, cout: int, k: int, dilation: int = 1, padding: int = 0):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(cout, 1, 1))
        self.weight_v = nn.Parameter(torch.randn(cout, cin, k) * 0.01)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.dilation, self.padding = dilation, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = _weight_from_norm(self.weight_g, self.weight_v)
        return F.conv1d(x, w, self.bias, padding=self.padding, dilation=self.dilation)


class WNConvTranspose1d(nn.Module):
    """ConvTranspose1d with weight norm over dim 0, which for a transposed conv is the *input* channel:
    ``weight_v`` (in,out,k), ``weight_g`` (in,1,1)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, padding: int):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(cin, 1, 1))
        self.weight_v = nn.Parameter(torch.randn(cin, cout, k) * 0.01)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = _weight_from_norm(self.weight_g, self.weight_v)
        return F.conv_transpose1d(x, w, self.bias, stride=self.stride, padding=self.padding)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, T), with VITS's parameter names ``gamma``/``beta``."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (x.size(1),), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class MultiHeadAttention(nn.Module):
    """1x1-conv attention over (B, C, T). With ``window_size`` it adds Shaw-style relative position
    terms (shared across heads) for offsets within +-window; farther pairs get none."""

    def __init__(self, channels: int, out_channels: int, n_heads: int, window_size: int | None = None):
        super().__init__()
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        if window_size is not None:
            self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window_size + 1, self.k_channels))
            self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window_size + 1, self.k_channels))

    def _offsets(self, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """For each query i and bucket r: the key column j = i + r - w, clamped, and whether it exists."""
        w = self.window_size
        cols = torch.arange(length, device=device)[:, None] + torch.arange(-w, w + 1, device=device)[None, :]
        valid = (cols >= 0) & (cols < length)
        return cols.clamp(0, length - 1), valid

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, d, t_q = x.shape
        t_k = c.size(2)
        h, kc = self.n_heads, self.k_channels
        q = self.conv_q(x).view(b, h, kc, t_q).transpose(2, 3) / math.sqrt(kc)
        k = self.conv_k(c).view(b, h, kc, t_k).transpose(2, 3)
        v = self.conv_v(c).view(b, h, kc, t_k).transpose(2, 3)
        scores = q @ k.transpose(-2, -1)
        if self.window_size is not None:
            if t_q != t_k:
                raise ValueError("relative attention needs self-attention (equal lengths)")
            cols, valid = self._offsets(t_q, x.device)
            rel = q @ self.emb_rel_k[0].t()  # (b, h, t, 2w+1): query . embedding of each offset
            # scatter each offset's score to its key column; offsets falling off the sequence are dropped
            scores = scores + torch.zeros_like(scores).scatter_add(
                -1, cols.expand(b, h, -1, -1), rel * valid.to(rel.dtype))
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, -1e4)
        p = torch.softmax(scores, dim=-1)
        out = p @ v
        if self.window_size is not None:
            # weight of each offset bucket = attention on the key column it names
            bucket = torch.gather(p, -1, cols.expand(b, h, -1, -1)) * valid.to(p.dtype)
            out = out + bucket @ self.emb_rel_v[0]
        out = out.transpose(2, 3).reshape(b, d, t_q)
        return self.conv_o(out)


class FFN(nn.Module):
    """Two 'same'-padded convs with ReLU, masked before each conv."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def _pad(self, x):
        k = self.kernel_size
        return F.pad(x, ((k - 1) // 2, k // 2)) if k > 1 else x

    def forward(self, x, x_mask):
        x = torch.relu(self.conv_1(self._pad(x * x_mask)))
        return self.conv_2(self._pad(x * x_mask)) * x_mask


class Encoder(nn.Module):
    """Post-LN transformer encoder with relative attention (window 4), as in VITS."""

    def __init__(self, hidden: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 window_size: int = 4):
        super().__init__()
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden, hidden, n_heads, window_size) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(hidden) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FFN(hidden, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(hidden) for _ in range(n_layers))

    def forward(self, x, x_mask):
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        x = x * x_mask
        layers = zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True)
        for attn, n1, ffn, n2 in layers:
            x = n1(x + attn(x, x, attn_mask))
            x = n2(x + ffn(x, x_mask))
        return x * x_mask


def sequence_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, 1, T) float mask, 1 inside each sequence."""
    ar = torch.arange(max_len, device=lengths.device)
    return (ar[None, :] < lengths[:, None]).unsqueeze(1).float()
