"""The GFPGAN v1.4 network, written to load ``GFPGANv1.4.pth`` unchanged.

GFPGAN ("clean" variant, no custom CUDA ops) is a U-Net whose decoder half produces two things:
one StyleGAN2 latent per decoder layer (from the bottleneck), and per-resolution scale/shift maps
that modulate half of the StyleGAN2 generator's channels (SFT, spatial feature transform). The
StyleGAN2 generator then paints the restored face. Module and parameter names follow the published
state dict (``conv_body_first``, ``stylegan_decoder.style_convs.N.modulated_conv.weight``, ...), so
the file loads with ``strict=True``; the test suite checks every key and shape against the original
class and the output against the original's on the same weights.

On the CPU the modulated convolution scales the *activations* by the style and the output by the
demodulation factor instead of building one weight tensor per sample; the two are the same sum in a
different order, and this form runs a batch as one ordinary convolution. On CUDA it builds the
per-sample kernels (a grouped convolution, as the original), whose outputs stay at unit scale in fp16.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.2  # LeakyReLU slope everywhere in GFPGAN
# Modulated convs: None picks per device (per-sample kernels on CUDA, scaled activations elsewhere);
# True/False forces one form (the tests check both against the original)
PER_SAMPLE_WEIGHTS: bool | None = None


def _resize2x(x: torch.Tensor, factor: float) -> torch.Tensor:
    # GFPGAN resamples by exactly 2 or 1/2 with bilinear filtering and half-pixel centres
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _channels(multiplier: float, narrow: float) -> dict[int, int]:
    """Feature channels per resolution (StyleGAN2's table, scaled by ``narrow``)."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * multiplier, 128: 128 * multiplier,
            256: 64 * multiplier, 512: 32 * multiplier, 1024: 16 * multiplier}
    return {res: int(c * narrow) for res, c in base.items()}


# ------------------------------------------------------------------------------ StyleGAN2 decoder

class ModulatedConv2d(nn.Module):
    """A bias-free conv whose input channels are scaled per sample by an affine map of the style
    vector; with ``demodulate`` each output channel is then renormalised to unit expected scale."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, eps: float = 1e-8):
        super().__init__()
        self.modulation = nn.Linear(style_dim, in_ch)
        # 5-D as in the checkpoint: a leading batch axis the original broadcasts over
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel, kernel) / math.sqrt(in_ch * kernel ** 2))
        self.demodulate, self.upsample, self.eps = demodulate, upsample, eps

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)  # (b, in)
        w = self.weight[0]  # (out, in, k, k)
        if self.upsample:
            x = _resize2x(x, 2.0)
        d = None
        if self.demodulate:
            # |W_o * s|^2 summed over inputs and taps = sum_i s_i^2 * |W_oi|^2; in fp32 even under
            # fp16 autocast, where the sum of squares could overflow
            energy = (s.float().square()[:, None, :] * w.float().square().sum((2, 3))[None]).sum(-1)
            d = torch.rsqrt(energy + self.eps)  # (b, out)
        pad = w.shape[-1] // 2
        if PER_SAMPLE_WEIGHTS if PER_SAMPLE_WEIGHTS is not None else x.is_cuda:
            # one demodulated kernel per sample, as the original: the conv output is already at unit
            # scale, which keeps fp16 on the GPU far from overflow
            b = x.shape[0]
            wb = w[None] * s[:, None, :, None, None]
            if d is not None:
                wb = wb * d[:, :, None, None, None].to(wb.dtype)
            out = F.conv2d(x.reshape(1, -1, *x.shape[2:]), wb.reshape(-1, *w.shape[1:]), padding=pad, groups=b)
            return out.view(b, -1, *out.shape[2:])
        out = F.conv2d(x * s[:, :, None, None], w, padding=pad)
        return out if d is None else out * d[:, :, None, None].to(out.dtype)


class StyleConv(nn.Module):
    """Modulated 3x3 conv, scaled noise, bias, LeakyReLU (StyleGAN2's synthesis layer)."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength, learned
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        # sqrt(2) keeps the LeakyReLU's output variance where the original StyleGAN2 weights expect it
        out = self.modulated_conv(x, style) * math.sqrt(2.0)
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, *out.shape[2:]).normal_()
        out = out + self.weight * noise + self.bias
        return F.leaky_relu(out, SLOPE)


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB, added to the upsampled RGB of the layer below."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + (_resize2x(skip, 2.0) if self.upsample else skip)
        return out


class ConstantInput(nn.Module):
    """The learned 4x4 starting canvas of StyleGAN2."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.expand(batch, -1, -1, -1)


class PixelNorm(nn.Module):
    """Scales each style vector to unit root-mean-square (first layer of the mapping MLP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class StyleGAN2SFTDecoder(nn.Module):
    """StyleGAN2 generator whose first conv at each resolution >= 8 is followed by an SFT step:
    ``x * scale + shift`` with maps from the GFPGAN U-Net (on the upper half of the channels when
    ``sft_half``)."""

    def __init__(self, out_size: int, style_dim: int = 512, num_mlp: int = 8, channel_multiplier: float = 2,
                 narrow: float = 1, sft_half: bool = True):
        super().__init__()
        self.sft_half = sft_half
        self.log_size = int(math.log2(out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1  # noise inputs: one per StyleConv
        self.num_latent = self.log_size * 2 - 2  # style vectors consumed: convs + RGB layers
        ch = _channels(channel_multiplier, narrow)

        # the mapping network; unused when the encoder already gives latents (v1.4), but in the file
        mlp: list[nn.Module] = [PixelNorm()]
        for _ in range(num_mlp):
            mlp += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(SLOPE)]
        self.style_mlp = nn.Sequential(*mlp)

        self.constant_input = ConstantInput(ch[4])
        self.style_conv1 = StyleConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):  # fixed noise maps, 4, 8, 8, 16, 16, ... pixels square
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))
        in_ch = ch[4]
        for level in range(3, self.log_size + 1):
            out_ch = ch[2 ** level]
            self.style_convs.append(StyleConv(in_ch, out_ch, style_dim, upsample=True))
            self.style_convs.append(StyleConv(out_ch, out_ch, style_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch

    def forward(self, latent: torch.Tensor, conditions: list[torch.Tensor], input_is_latent: bool = True,
                randomize_noise: bool = False) -> torch.Tensor:
        """``latent``: (b, style_dim) shared by all layers or (b, num_latent, style_dim), one per layer.
        ``conditions``: [scale_8, shift_8, scale_16, shift_16, ...]. ``randomize_noise`` draws fresh
        noise (the original's default); otherwise the stored maps are used, so a video does not shimmer."""
        if not input_is_latent:  # (the original normalises over dim 1 for 3-D input too; kept as is)
            latent = self.style_mlp(latent)
        if latent.ndim == 2:
            latent = latent[:, None].expand(-1, self.num_latent, -1)
        if randomize_noise:
            noise: list[torch.Tensor | None] = [None] * self.num_layers
        else:
            noise = [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

        out = self.style_conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise[0])
        rgb = self.to_rgb1(out, latent[:, 1])
        for j, to_rgb in enumerate(self.to_rgbs):
            i = 2 * j + 1  # latent index of this resolution's first conv
            out = self.style_convs[2 * j](out, latent[:, i], noise[i])
            if 2 * j + 1 < len(conditions):  # an encoder may condition fewer levels than it decodes
                scale, shift = conditions[2 * j], conditions[2 * j + 1]
                if self.sft_half:
                    keep, mod = out.split(out.shape[1] // 2, dim=1)
                    out = torch.cat([keep, mod * scale + shift], dim=1)
                else:
                    out = out * scale + shift
            out = self.style_convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1])
            rgb = to_rgb(out, latent[:, i + 2], rgb)
        return rgb


# ----------------------------------------------------------------------------------- U-Net encoder

class ResBlock(nn.Module):
    """conv-act, resample by 2 (down or up), conv-act, plus a resampled 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, up: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.factor = 2.0 if up else 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _resize2x(F.leaky_relu(self.conv1(x), SLOPE), self.factor)
        out = F.leaky_relu(self.conv2(out), SLOPE)
        return out + self.skip(_resize2x(x, self.factor))


def _sft_branch(ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(SLOPE), nn.Conv2d(ch, out_ch, 3, 1, 1))


class GFPGANv1Clean(nn.Module):
    """GFPGAN (clean architecture). Defaults are the published v1.3/v1.4 configuration; the input
    is an RGB face, FFHQ-aligned, ``out_size`` square, scaled to [-1, 1]; the output is the
    restored face in the same range (unclamped)."""

    def __init__(self, out_size: int = 512, num_style_feat: int = 512, channel_multiplier: float = 2,
                 num_mlp: int = 8, input_is_latent: bool = True, different_w: bool = True, narrow: float = 1,
                 sft_half: bool = True):
        super().__init__()
        if out_size < 8 or out_size & (out_size - 1):
            raise ValueError(f"out_size must be a power of two >= 8, got {out_size}")
        self.out_size = out_size
        self.input_is_latent, self.different_w, self.num_style_feat = input_is_latent, different_w, num_style_feat
        self.log_size = int(math.log2(out_size))
        ch = _channels(channel_multiplier, narrow * 0.5)  # the U-Net is half as wide as the decoder

        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        self.conv_body_down = nn.ModuleList()
        in_ch = ch[out_size]
        for level in range(self.log_size, 2, -1):  # out_size -> 4
            self.conv_body_down.append(ResBlock(in_ch, ch[2 ** (level - 1)], up=False))
            in_ch = ch[2 ** (level - 1)]
        self.final_conv = nn.Conv2d(in_ch, ch[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList()
        in_ch = ch[4]
        for level in range(3, self.log_size + 1):  # 4 -> out_size
            self.conv_body_up.append(ResBlock(in_ch, ch[2 ** level], up=True))
            in_ch = ch[2 ** level]
        # intermediate RGB heads: a training loss only, kept so the checkpoint loads strictly
        self.toRGB = nn.ModuleList(nn.Conv2d(ch[2 ** level], 3, 1) for level in range(3, self.log_size + 1))
        n_latent = (self.log_size * 2 - 2) if different_w else 1
        self.final_linear = nn.Linear(ch[4] * 16, n_latent * num_style_feat)

        self.stylegan_decoder = StyleGAN2SFTDecoder(out_size, num_style_feat, num_mlp, channel_multiplier, narrow,
                                                    sft_half)
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for level in range(3, self.log_size + 1):
            c = ch[2 ** level]
            # sft_half: the U-Net level and the decoder's modulated half have the same width
            self.condition_scale.append(_sft_branch(c, c if sft_half else 2 * c))
            self.condition_shift.append(_sft_branch(c, c if sft_half else 2 * c))

    def forward(self, x: torch.Tensor, randomize_noise: bool = False) -> torch.Tensor:
        """(b, 3, out_size, out_size) in [-1, 1] -> the restored faces, same shape."""
        feat = F.leaky_relu(self.conv_body_first(x), SLOPE)
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = F.leaky_relu(self.final_conv(feat), SLOPE)

        latent = self.final_linear(feat.flatten(1))
        if self.different_w:
            latent = latent.view(latent.shape[0], -1, self.num_style_feat)

        conditions = []
        for up, skip, scale, shift in zip(self.conv_body_up, reversed(skips), self.condition_scale,
                                          self.condition_shift, strict=True):
            feat = up(feat + skip)
            conditions += [scale(feat), shift(feat)]
        return self.stylegan_decoder(latent, conditions, self.input_is_latent, randomize_noise)
