"""SadTalker's audio front end in numpy: the Wav2Lip mel spectrogram and the per-frame mel windows.

Settings (Wav2Lip hparams): 16 kHz, n_fft = win = 800, hop 200, 80 Slaney mels in 55..7600 Hz,
pre-emphasis 0.97, dB with ref 20 and floor -100, scaled symmetrically to [-4, 4]. The STFT is
centred with *zero* padding: SadTalker pins librosa 0.9.2, whose default pad mode is 'constant'.
"""

from __future__ import annotations

import numpy as np

SR = 16000
N_FFT = 800
HOP = 200
N_MELS = 80
FPS = 25
MEL_STEP = 16  # mel frames per video frame window
SAMPLES_PER_FRAME = SR // FPS  # 640


def _hz_to_mel(f):
    """Slaney's scale: linear below 1 kHz, logarithmic above."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels)


def _mel_to_hz(m):
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_basis(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=55.0, fmax=7600.0) -> np.ndarray:
    """(n_mels, 1 + n_fft/2) triangular filters with Slaney area normalisation, stored as float32
    like librosa's, so that the rounding of the filters matches too."""
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    # rounded to float32 before the normalisation, as librosa stores the filters
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights


_BASIS = None


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """(samples,) at 16 kHz -> (80, 1 + samples // 200) float64 in [-4, 4]."""
    global _BASIS
    from scipy.signal import lfilter

    if _BASIS is None:
        _BASIS = mel_basis()
    y = lfilter([1, -0.97], [1], np.asarray(wav, dtype=np.float64))
    y = np.pad(y, N_FFT // 2, mode="constant")
    n = 1 + (len(y) - N_FFT) // HOP
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    frames = np.lib.stride_tricks.as_strided(y, shape=(n, N_FFT), strides=(y.strides[0] * HOP, y.strides[0]))
    mag = np.abs(np.fft.rfft(frames * window, axis=1)).T
    mel = np.dot(_BASIS, mag)
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * ((db + 100) / 100) - 4, -4, 4)


def indiv_mels(wav: np.ndarray, frames: int | None = None) -> np.ndarray:
    """(T, 80, 16) float32: for video frame i, 16 mel frames starting 2 video frames earlier,
    indices clipped to the clip. The audio is zero-padded (or cut) to T * 640 samples first, where
    T = ``frames`` or, by default, ``int(len(wav) / 640)`` as upstream."""
    wav = np.asarray(wav, dtype=np.float32)
    t = int(len(wav) / SAMPLES_PER_FRAME) if frames is None else frames
    length = t * SAMPLES_PER_FRAME
    wav = np.pad(wav[:length], (0, max(0, length - len(wav))))
    mel = melspectrogram(wav).T  # (n, 80)
    # the same float expression as upstream, truncated toward zero like its int()
    starts = np.array([int(80.0 * ((i - 2) / float(FPS))) for i in range(t)], dtype=np.int64)
    idx = np.clip(starts[:, None] + np.arange(MEL_STEP)[None, :], 0, len(mel) - 1)
    return mel[idx].transpose(0, 2, 1).astype(np.float32)
