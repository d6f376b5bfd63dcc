"""SynthesizerTrn (GPT-SoVITS v2), inference parts only: semantic codes + phonemes + reference
spectrogram -> 32 kHz waveform.

decode: ge = ref_enc(spec[:, :704]); codes -> codebook vectors, nearest x2 to 50 Hz; enc_p mixes them
with the phonemes (MRTE cross-attention) into a prior N(m_p, exp(logs_p)); a sample of it goes backwards
through the coupling flow and then the HiFi-GAN decoder. ``enc_q`` (training only) is not built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from VITS.gptsovits.layers import (
    Encoder,
    MultiHeadAttention,
    WNConv1d,
    WNConvTranspose1d,
    sequence_mask,
)

LRELU_SLOPE = 0.1


@dataclass(frozen=True)
class SoVITSConfig:
    """The ``model`` and ``data`` parts of s2.json that shape the inference network (v2 defaults)."""

    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    resblock_kernel_sizes: tuple = (3, 7, 11)
    resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple = (10, 8, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple = (16, 16, 8, 2, 2)
    gin_channels: int = 512
    n_symbols: int = 732
    ssl_dim: int = 768
    codebook_size: int = 1024
    ref_bins: int = 704  # v2 reads only the lowest 704 of the 1025 linear-spectrogram bins
    filter_length: int = 2048
    hop_length: int = 640
    win_length: int = 2048
    sampling_rate: int = 32000


# -- reference (timbre) encoder ----------------------------------------------------------------------
class _Linear(nn.Module):
    """``nn.Linear`` kept under ``.fc`` to match the checkpoint's ``LinearNorm`` keys."""

    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Linear(cin, cout)

    def forward(self, x):
        return self.fc(x)


class _Mish(nn.Module):
    def forward(self, x):
        return x * torch.tanh(F.softplus(x))


class _ConvGLU(nn.Module):
    """Residual gated conv; the conv sits at ``conv1.conv`` in the checkpoint."""

    def __init__(self, channels, kernel_size):
        super().__init__()
        self.conv1 = nn.Module()
        self.conv1.conv = nn.Conv1d(channels, 2 * channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.channels = channels

    def forward(self, x):
        a, b = self.conv1.conv(x).split(self.channels, dim=1)
        return x + a * torch.sigmoid(b)


class _StyleAttention(nn.Module):
    """Self-attention of the style encoder. Note: scores are divided by sqrt(d_model), not sqrt(d_head)."""

    def __init__(self, n_head: int, d_model: int):
        super().__init__()
        self.n_head, self.d_model = n_head, d_model
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)

    def forward(self, x, pad):  # x (B, T, D); pad (B, T) True at padding
        b, t, d = x.shape

        def heads(z):
            return z.view(b, t, self.n_head, -1).transpose(1, 2)

        q, k, v = heads(self.w_qs(x)), heads(self.w_ks(x)), heads(self.w_vs(x))
        scores = q @ k.transpose(-2, -1) / (self.d_model ** 0.5)
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        out = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.fc(out) + x


class MelStyleEncoder(nn.Module):
    """Spectrogram (B, bins, T) -> one global style vector ``ge`` (B, gin, 1)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, kernel_size: int = 5, n_head: int = 2):
        super().__init__()
        self.spectral = nn.Sequential(_Linear(in_dim, hidden), _Mish(), nn.Dropout(0.0),
                                      _Linear(hidden, hidden), _Mish(), nn.Dropout(0.0))
        self.temporal = nn.Sequential(_ConvGLU(hidden, kernel_size), _ConvGLU(hidden, kernel_size))
        self.slf_attn = _StyleAttention(n_head, hidden)
        self.fc = _Linear(hidden, out_dim)

    def forward(self, spec, mask):  # mask (B, 1, T) float
        pad = (mask.int() == 0).squeeze(1)
        x = self.spectral(spec.transpose(1, 2))
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        x = x.masked_fill(pad.unsqueeze(-1), 0)
        x = self.fc(self.slf_attn(x, pad))
        # masked mean over time, dividing before summing like the original
        n = (~pad).sum(dim=1)[:, None, None]
        return (x.masked_fill(pad.unsqueeze(-1), 0) / n).sum(dim=1).unsqueeze(-1)


# -- prior (text + semantic) encoder ------------------------------------------------------------------
class MRTE(nn.Module):
    """Multi-reference timbre encoder: semantic frames attend to phonemes; ``ge`` is added."""

    def __init__(self, content_channels=192, hidden=512, out_channels=192, n_heads=4):
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(content_channels, hidden, 1)
        self.text_pre = nn.Conv1d(content_channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, out_channels, 1)

    def forward(self, ssl, ssl_mask, text, text_mask, ge):
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)
        ssl = self.c_pre(ssl * ssl_mask)
        text = self.text_pre(text * text_mask)
        x = self.cross_attention(ssl * ssl_mask, text * text_mask, attn_mask) + ssl + ge
        return self.c_post(x * ssl_mask)


class TextEncoder(nn.Module):
    """``enc_p``: quantized semantic features + phoneme ids -> prior mean and log-std (B, 192, T)."""

    def __init__(self, c: SoVITSConfig):
        super().__init__()
        h = c.hidden_channels
        self.out_channels = c.inter_channels
        self.ssl_proj = nn.Conv1d(c.ssl_dim, h, 1)
        self.encoder_ssl = Encoder(h, c.filter_channels, c.n_heads, c.n_layers // 2, c.kernel_size)
        self.encoder_text = Encoder(h, c.filter_channels, c.n_heads, c.n_layers, c.kernel_size)
        self.text_embedding = nn.Embedding(c.n_symbols, h)
        self.mrte = MRTE(h, 512, h)
        self.encoder2 = Encoder(h, c.filter_channels, c.n_heads, c.n_layers // 2, c.kernel_size)
        self.proj = nn.Conv1d(h, c.inter_channels * 2, 1)

    def forward(self, y, y_lengths, text, text_lengths, ge, speed: float = 1.0):
        y_mask = sequence_mask(y_lengths, y.size(2)).to(y.dtype)
        y = self.ssl_proj(y * y_mask) * y_mask
        y = self.encoder_ssl(y * y_mask, y_mask)
        text_mask = sequence_mask(text_lengths, text.size(1)).to(y.dtype)
        t = self.text_embedding(text).transpose(1, 2)
        t = self.encoder_text(t * text_mask, text_mask)
        y = self.mrte(y, y_mask, t, text_mask, ge)
        y = self.encoder2(y * y_mask, y_mask)
        if speed != 1:
            y = F.interpolate(y, size=int(y.shape[-1] / speed) + 1, mode="linear")
            y_mask = F.interpolate(y_mask, size=y.shape[-1], mode="nearest")
        m, logs = torch.split(self.proj(y) * y_mask, self.out_channels, dim=1)
        return m, logs, y_mask


# -- flow ---------------------------------------------------------------------------------------------
class WN(nn.Module):
    """WaveNet-style gated residual stack conditioned on ``g`` (all convs weight-normed)."""

    def __init__(self, hidden: int, kernel_size: int, n_layers: int, gin: int):
        super().__init__()
        self.hidden, self.n_layers = hidden, n_layers
        self.cond_layer = WNConv1d(gin, 2 * hidden * n_layers, 1)
        self.in_layers = nn.ModuleList(
            WNConv1d(hidden, 2 * hidden, kernel_size, padding=(kernel_size - 1) // 2) for _ in range(n_layers))
        self.res_skip_layers = nn.ModuleList(
            WNConv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1) for i in range(n_layers))

    def forward(self, x, x_mask, g):
        out = torch.zeros_like(x)
        g = self.cond_layer(g)
        h = self.hidden
        for i in range(self.n_layers):
            z = self.in_layers[i](x) + g[:, 2 * h * i: 2 * h * (i + 1)]
            acts = torch.tanh(z[:, :h]) * torch.sigmoid(z[:, h:])
            rs = self.res_skip_layers[i](acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * x_mask
                out = out + rs[:, h:]
            else:
                out = out + rs
        return out * x_mask


class CouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half is shifted by a function of the first."""

    def __init__(self, channels, hidden, kernel_size, n_layers, gin):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, kernel_size, n_layers, gin)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def reverse(self, x, x_mask, g):
        x0, x1 = x.split(self.half, dim=1)
        m = self.post(self.enc(self.pre(x0) * x_mask, x_mask, g)) * x_mask
        return torch.cat([x0, (x1 - m) * x_mask], dim=1)


class Flip(nn.Module):
    """Reverses the channel order (no weights; keeps the coupling layers at even indices)."""

    def reverse(self, x, x_mask, g):
        return torch.flip(x, [1])


class ResidualCouplingBlock(nn.Module):
    def __init__(self, channels, hidden, kernel_size=5, n_layers=4, n_flows=4, gin=512):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(CouplingLayer(channels, hidden, kernel_size, n_layers, gin))
            self.flows.append(Flip())

    def reverse(self, x, x_mask, g):
        for f in reversed(self.flows):
            x = f.reverse(x, x_mask, g)
        return x


# -- HiFi-GAN decoder ---------------------------------------------------------------------------------
class ResBlock1(nn.Module):
    def __init__(self, channels, kernel_size, dilations):
        super().__init__()

        def pad(d):
            return (kernel_size * d - d) // 2

        self.convs1 = nn.ModuleList(WNConv1d(channels, channels, kernel_size, d, pad(d)) for d in dilations)
        self.convs2 = nn.ModuleList(WNConv1d(channels, channels, kernel_size, 1, pad(1)) for _ in dilations)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """Upsamples 50 Hz latents by 10*8*2*2*2 = 640 to 32 kHz samples in [-1, 1]."""

    def __init__(self, c: SoVITSConfig):
        super().__init__()
        ch0 = c.upsample_initial_channel
        self.n_kernels = len(c.resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(c.inter_channels, ch0, 7, padding=3)
        self.ups = nn.ModuleList(
            WNConvTranspose1d(ch0 // 2 ** i, ch0 // 2 ** (i + 1), k, u, (k - u) // 2)
            for i, (u, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes, strict=True)))
        self.resblocks = nn.ModuleList(
            ResBlock1(ch0 // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes, strict=True))
        self.conv_post = nn.Conv1d(ch0 // 2 ** len(self.ups), 1, 7, padding=3, bias=False)
        self.cond = nn.Conv1d(c.gin_channels, ch0, 1)

    def forward(self, x, g):
        x = self.conv_pre(x) + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.n_kernels:(i + 1) * self.n_kernels]
            x = sum(b(x) for b in blocks) / self.n_kernels
        # the last activation uses torch's default slope (0.01), not LRELU_SLOPE: as in the original
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


# -- semantic codebook --------------------------------------------------------------------------------
class _Codebook(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        # all four are saved buffers in the checkpoint; only ``embed`` is used for inference
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))


class ResidualVectorQuantizer(nn.Module):
    """One-layer RVQ (1024 x 768), keys ``quantizer.vq.layers.0._codebook.*``."""

    def __init__(self, dim: int = 768, bins: int = 1024, n_q: int = 1):
        super().__init__()
        self.vq = nn.Module()
        self.vq.layers = nn.ModuleList()
        for _ in range(n_q):
            layer = nn.Module()
            layer._codebook = _Codebook(bins, dim)
            self.vq.layers.append(layer)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, T) -> codes (n_q, B, T): nearest codeword by squared distance, residual per layer."""
        codes = []
        residual = x.transpose(1, 2)
        for layer in self.vq.layers:
            e = layer._codebook.embed
            flat = residual.reshape(-1, e.size(1))
            dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None, :])
            ind = dist.max(dim=-1).indices.view(residual.shape[:-1])
            codes.append(ind)
            residual = residual - F.embedding(ind, e)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_q, B, T) -> (B, D, T)."""
        out = 0.0
        for i, ind in enumerate(codes):
            out = out + F.embedding(ind, self.vq.layers[i]._codebook.embed)
        return out.transpose(1, 2)


class SynthesizerTrn(nn.Module):
    """GPT-SoVITS v2 synthesizer (25 Hz semantic tokens, 32 kHz output)."""

    def __init__(self, config: SoVITSConfig = SoVITSConfig()):
        super().__init__()
        c = self.config = config
        self.enc_p = TextEncoder(c)
        self.dec = Generator(c)
        self.flow = ResidualCouplingBlock(c.inter_channels, c.hidden_channels, 5, 4, 4, c.gin_channels)
        self.ref_enc = MelStyleEncoder(c.ref_bins, c.gin_channels)
        self.ssl_proj = nn.Conv1d(c.ssl_dim, c.ssl_dim, 2, stride=2)
        self.quantizer = ResidualVectorQuantizer(c.ssl_dim, c.codebook_size, 1)

    @property
    def samples_per_code(self) -> int:
        return 2 * self.config.hop_length  # 25 Hz codes, 50 Hz frames

    @torch.no_grad()
    def reference_embedding(self, refer: torch.Tensor) -> torch.Tensor:
        """``ge`` (B, 512, 1) from a linear spectrogram (B, 1025, T)."""
        mask = torch.ones(refer.size(0), 1, refer.size(2), dtype=refer.dtype, device=refer.device)
        return self.ref_enc(refer[:, :self.config.ref_bins] * mask, mask)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, text: torch.Tensor, refer, noise_scale: float = 0.5,
               speed: float = 1.0, noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
               trace: dict | None = None) -> torch.Tensor:
        """codes (1, 1, T25) int, text (1, N) phoneme ids, refer: spectrogram or list of them (their
        ``ge`` are averaged) -> waveform (1, 1, T25 * 1280). ``noise`` replaces the N(0,1) draw."""
        refers = refer if isinstance(refer, (list, tuple)) else [refer]
        ge = torch.stack([self.reference_embedding(r) for r in refers], 0).mean(0)
        y_lengths = torch.tensor([codes.size(2) * 2], device=codes.device)
        text_lengths = torch.tensor([text.size(-1)], device=text.device)
        quantized = self.quantizer.decode(codes)
        quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        m_p, logs_p, y_mask = self.enc_p(quantized, y_lengths, text, text_lengths, ge, speed)
        if noise is None:
            noise = torch.randn(m_p.shape, generator=generator, dtype=m_p.dtype, device=m_p.device)
        z_p = m_p + noise * torch.exp(logs_p) * noise_scale
        z = self.flow.reverse(z_p, y_mask, ge)
        if trace is not None:
            trace.update(ge=ge, m_p=m_p, logs_p=logs_p, z=z)
        return self.dec(z * y_mask, ge)

    @torch.no_grad()
    def extract_latent(self, ssl_content: torch.Tensor) -> torch.Tensor:
        """HuBERT features (B, 768, T50) -> semantic codes (B, 1, T50 // 2)."""
        return self.quantizer.encode(self.ssl_proj(ssl_content)).transpose(0, 1)
