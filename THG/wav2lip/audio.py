"""Wav2Lip's mel front end, in numpy/scipy only, and the 16-frame windows the network reads.

The maths follows the original ``audio.py`` + ``hparams.py`` (librosa 0.7 era): pre-emphasis,
a centred Hann STFT with reflect padding, a Slaney mel basis, dB relative to ``ref_level_db``
and a symmetric clip to +-4. The network was trained on exactly this scale, so any drift here
shows up as worse lip sync, not as an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter


@dataclass(frozen=True)
class MelParams:
    """The original hparams (``use_lws`` False, ``signal_normalization`` True)."""

    sample_rate: int = 16000
    n_fft: int = 800
    hop_size: int = 200  # 12.5 ms: 80 mel frames a second
    win_size: int = 800
    num_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0
    # STFT edge padding: Wav2Lip's pinned librosa 0.7 reflects; librosa >= 0.9 (SadTalker) pads zeros
    pad_mode: str = "reflect"


HPARAMS = MelParams()
MEL_STEP = 16  # mel frames per network window (0.2 s)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's auditory scale: linear below 1 kHz, logarithmic above (librosa htk=False)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(p: MelParams = HPARAMS) -> np.ndarray:
    """(num_mels, n_fft//2+1) triangular filters, area-normalised ('slaney' norm).

    Returned as float32 because librosa's basis is float32 and the reference values were made
    with it."""
    fft_freqs = np.linspace(0.0, p.sample_rate / 2.0, 1 + p.n_fft // 2)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(p.fmin), _hz_to_mel(p.fmax), p.num_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    # librosa stores the triangles in float32 and then scales them in place: two roundings,
    # which we repeat so that float64 results agree with the original to ~1e-14.
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_pts[2:] - mel_pts[:-2]))[:, None]
    return weights


_BASIS_CACHE: dict[MelParams, np.ndarray] = {}


def _window(p: MelParams) -> np.ndarray:
    n = np.arange(p.win_size)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / p.win_size)  # periodic ("fftbins") Hann
    if p.win_size < p.n_fft:
        left = (p.n_fft - p.win_size) // 2
        window = np.pad(window, (left, p.n_fft - p.win_size - left))
    return window


def _magnitude(padded: np.ndarray, first: int, stop: int, p: MelParams) -> np.ndarray:
    """|STFT| of frames ``first..stop-1`` of a signal already padded by n_fft//2 on the left."""
    n = stop - first
    frames = np.lib.stride_tricks.as_strided(
        padded[first * p.hop_size:], shape=(n, p.n_fft),
        strides=(padded.strides[0] * p.hop_size, padded.strides[0]), writeable=False)
    return np.abs(np.fft.rfft(frames * _window(p), axis=1)).T


def _normalized_mel(magnitude: np.ndarray, p: MelParams) -> np.ndarray:
    basis = _BASIS_CACHE.get(p)
    if basis is None:
        basis = _BASIS_CACHE[p] = mel_filterbank(p)
    mel = np.dot(basis, magnitude)
    min_level = np.exp(p.min_level_db / 20.0 * np.log(10.0))
    s = 20.0 * np.log10(np.maximum(min_level, mel)) - p.ref_level_db
    m = p.max_abs_value
    return np.clip(2.0 * m * ((s - p.min_level_db) / -p.min_level_db) - m, -m, m)


def _preemphasis(wav: np.ndarray, p: MelParams) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.size == 0:  # lfilter rejects empty input; an empty sentence still gets its one frame
        return np.zeros(0)
    return lfilter([1.0, -p.preemphasis], [1.0], wav)


def melspectrogram(wav: np.ndarray, p: MelParams = HPARAMS) -> np.ndarray:
    """(num_mels, frames) float64 in [-max_abs_value, max_abs_value]; frames = 1 + len(wav)//hop.

    STFT frames are centred, padded at both ends with ``p.pad_mode``, as librosa's stft."""
    y = _preemphasis(wav, p)
    pad = p.n_fft // 2
    if len(y) <= pad and p.pad_mode == "reflect":  # reflecting needs more samples than the pad
        y = np.pad(y, (0, pad + 1 - len(y)))
    y = np.pad(y, pad, mode=p.pad_mode)
    return _normalized_mel(_magnitude(y, 0, 1 + (len(y) - p.n_fft) // p.hop_size, p), p)


class StreamingMel:
    """Mel frames of audio that arrives in pieces (16 kHz samples), for streaming TTS.

    ``push`` returns every frame whose analysis window lies inside the audio received so far;
    those frames equal ``melspectrogram`` of the whole audio. ``finish`` then gives the whole
    spectrogram, including the last frames, which depend on the end padding."""

    def __init__(self, p: MelParams = HPARAMS):
        self.p = p
        self._wav = np.zeros(0, dtype=np.float32)
        self._cols: list[np.ndarray] = []
        self._n = 0

    def push(self, wav: np.ndarray) -> np.ndarray:
        p, pad = self.p, self.p.n_fft // 2
        self._wav = np.concatenate((self._wav, np.asarray(wav, dtype=np.float32)))
        final = (len(self._wav) - pad) // p.hop_size + 1 if len(self._wav) > pad else 0  # windows complete
        if final > self._n:
            # Frame f reads samples [f*hop - pad, f*hop + pad): pre-emphasis (causal) and the left
            # reflect padding only ever need the samples from one before that window.
            lo = max(0, self._n * p.hop_size - pad - 1)
            hi = max((final - 1) * p.hop_size + pad, pad + 1)  # reflecting frame 0 reads sample `pad`
            y = _preemphasis(self._wav[lo:hi], p)
            if lo == 0:
                y = np.pad(y, (pad, 0), mode="reflect")
                first = self._n
            else:
                y = y[1:]  # the extra sample only fed the filter
                first = 0
            self._cols.append(_normalized_mel(_magnitude(y, first, first + final - self._n, p), p))
            self._n = final
        return self.frames()

    def frames(self) -> np.ndarray:
        if len(self._cols) > 1:
            self._cols = [np.concatenate(self._cols, axis=1)]
        return self._cols[0] if self._cols else np.zeros((self.p.num_mels, 0))

    def finish(self) -> np.ndarray:
        return melspectrogram(self._wav, self.p)

    @property
    def samples(self) -> int:
        return len(self._wav)


def chunk_starts(n_mel_frames: int, n_video_frames: int, fps: float = 25.0) -> np.ndarray:
    """First mel frame of each video frame's window.

    Frame i starts at ``int(i * 80 / fps)`` as in the original inference loop; where that runs
    past the end, the window is the last 16 frames (the original stops there and so drops the
    tail of the audio; we keep one frame per 1/fps of audio)."""
    step = HPARAMS.sample_rate / HPARAMS.hop_size / fps  # 3.2 mel frames per video frame at 25 fps
    last = max(n_mel_frames - MEL_STEP, 0)
    return np.array([min(int(i * step), last) for i in range(n_video_frames)], dtype=np.int64)


def mel_windows(mel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(len(starts), num_mels, 16) windows; a mel shorter than 16 frames is padded with silence."""
    if mel.shape[1] < MEL_STEP:
        mel = np.pad(mel, ((0, 0), (0, MEL_STEP - mel.shape[1])), constant_values=-HPARAMS.max_abs_value)
    idx = starts[:, None] + np.arange(MEL_STEP)[None, :]
    return np.ascontiguousarray(mel[:, idx].transpose(1, 0, 2))
