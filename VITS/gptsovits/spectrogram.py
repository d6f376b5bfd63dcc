"""Linear-magnitude spectrogram of the reference clip, as GPT-SoVITS's ``spectrogram_torch`` computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_WINDOWS: dict[tuple, torch.Tensor] = {}


def spectrogram(y: torch.Tensor, n_fft: int = 2048, hop: int = 640, win: int = 2048) -> torch.Tensor:
    """(B, samples) at 32 kHz -> (B, n_fft // 2 + 1, frames).

    Reflect-pads (n_fft - hop) / 2 on each side and runs the STFT uncentred, so frames line up with the
    hop grid; the magnitude has a 1e-8 floor inside the root (1e-4 after it), as the original."""
    key = (win, y.dtype, y.device)
    if key not in _WINDOWS:
        _WINDOWS[key] = torch.hann_window(win, dtype=y.dtype, device=y.device)
    pad = (n_fft - hop) // 2
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(y, n_fft, hop_length=hop, win_length=win, window=_WINDOWS[key], center=False,
                      normalized=False, onesided=True, return_complex=True)
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-8)


def reference_spectrogram(wav_32k: torch.Tensor, n_fft: int = 2048, hop: int = 640, win: int = 2048) -> torch.Tensor:
    """The webui's ``get_spepc``: a clip peaking above 1 is scaled down by min(2, peak) first."""
    peak = wav_32k.abs().max()
    if peak > 1:
        wav_32k = wav_32k / min(2.0, float(peak))
    return spectrogram(wav_32k, n_fft, hop, win)
