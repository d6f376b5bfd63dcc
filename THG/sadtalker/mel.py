"""SadTalker's audio front end: the Wav2Lip mel spectrogram and the per-frame mel windows.

SadTalker's audio.py has Wav2Lip's maths (THG/wav2lip/audio.py) but pins librosa 0.9.2, whose STFT
pads the edges with zeros instead of reflecting.
"""

from __future__ import annotations

import numpy as np

from THG.wav2lip.audio import MelParams
from THG.wav2lip.audio import melspectrogram as wav2lip_mel

SR = 16000
FPS = 25
MEL_STEP = 16  # mel frames per video frame window
SAMPLES_PER_FRAME = SR // FPS  # 640


# Wav2Lip's front end with librosa >= 0.9's zero padding at the edges
SADTALKER_MEL = MelParams(pad_mode="constant")


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """(samples,) at 16 kHz -> (80, 1 + samples // 200) float64 in [-4, 4]."""
    return wav2lip_mel(wav, SADTALKER_MEL)


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
