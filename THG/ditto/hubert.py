"""Ditto's audio features: the published streaming HuBERT (``hubert_streaming_fix_kv.onnx``) through
onnxruntime, 25 feature rows a second.

The model reads 6480 samples (0.405 s at 16 kHz) and gives 20 rows of 1024 at 50 a second; rows 6-15
averaged in pairs are 5 video frames' features. Windows advance by 3200 samples (5 frames), the
first starting 2000 samples before the audio, so frame ``i``'s features see the audio up to 80 ms after
frame ``i + 4`` ends: a chunk of 5 frames needs 4480 samples past its start (upstream
``Wav2FeatHubert.wav2feat``). ``Stream`` gives the same rows as ``features`` for audio that arrives
in pieces. (Upstream's online demo puts 1920 samples of silence in front instead of 2000, shifting its
online features by 80 samples from its offline ones; here both schedules use the offline geometry, so
online and offline runs see the same features.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from app_modules.errors import TalkerError

SAMPLE_RATE, FPS = 16000, 25
WINDOW, HOP, LEAD = 6480, 3200, 2000  # samples: model input, advance (5 frames), silence before the audio
FRAMES_PER_WINDOW, DIM = 5, 1024
HOP_FRAME = SAMPLE_RATE // FPS  # 640 samples a frame
_ROWS = slice(-14, -4)  # the model rows that belong to the 5 frames of a window


def frame_count(samples: int) -> int:
    """Video frames for ``samples`` of 16 kHz audio: ``ceil(seconds * 25)``."""
    return math.ceil(samples / HOP_FRAME)


class HubertFeatures:
    """One onnxruntime session of the streaming HuBERT; thread-safe (onnxruntime sessions are)."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise TalkerError("Ditto's audio features need onnxruntime: pip install onnxruntime "
                              "(onnxruntime-gpu on CUDA machines)") from e
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise TalkerError(f"cannot load the HuBERT model {path} ({e}); the download may be incomplete: "
                              "delete it and run `python -m app_modules.cli download ditto`") from e
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != "input_values" or inputs[0].shape[-1] not in (WINDOW, "N", None):
            found = [(i.name, i.shape) for i in inputs]
            raise TalkerError(f"{path} is not Ditto's streaming HuBERT: it takes {found}, expected "
                              f"input_values of {WINDOW} samples (hubert_streaming_fix_kv.onnx)")
        self.input_name = inputs[0].name

    def window(self, samples: np.ndarray) -> np.ndarray:
        """(6480,) samples -> (5, 1024) features of the window's 5 frames."""
        x = np.ascontiguousarray(samples, np.float32).reshape(1, WINDOW)
        rows = self.session.run(None, {self.input_name: x})[0]
        rows = np.asarray(rows, np.float32).reshape(-1, DIM)  # (20, 1024); a leading batch of 1 is dropped
        return rows[_ROWS].reshape(FRAMES_PER_WINDOW, 2, DIM).mean(axis=1)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Mono 16 kHz samples -> (frame_count, 1024) rows."""
        return self.stream().finish(audio)

    def silence(self, frames: int) -> np.ndarray:
        """Features of ``frames`` frames of silence (the context before the first online window)."""
        return self.features(np.zeros(frames * HOP_FRAME, np.float32))

    def stream(self) -> Stream:
        return Stream(self)


class Stream:
    """Features of audio that arrives in pieces: ``push`` returns the rows whose window is complete,
    ``finish`` the rest (the audio's end padded with silence), ``frame_count`` rows in all."""

    def __init__(self, model: HubertFeatures):
        self.model = model
        self.buf = np.zeros(LEAD, np.float32)  # padded audio from ``self.start`` on
        self.start = 0  # padded-audio index of ``self.buf[0]``
        self.windows = 0  # windows computed so far
        self.samples = 0  # audio samples received

    def push(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, np.float32).reshape(-1)
        self.samples += len(audio)
        self.buf = np.concatenate([self.buf, audio])
        return self._run(limit=None)

    def finish(self, audio: np.ndarray | None = None) -> np.ndarray:
        head = self.push(audio) if audio is not None and len(audio) else np.zeros((0, DIM), np.float32)
        total = frame_count(self.samples)
        self.buf = np.concatenate([self.buf, np.zeros(WINDOW, np.float32)])
        tail = self._run(limit=math.ceil(total / FRAMES_PER_WINDOW))
        done = (self.windows * FRAMES_PER_WINDOW) - total  # rows past the audio's last frame
        out = np.concatenate([head, tail])
        return out[:len(out) - done] if done > 0 else out

    def _run(self, limit: int | None) -> np.ndarray:
        rows = []
        while limit is None or self.windows < limit:
            at = self.windows * HOP - self.start
            if at + WINDOW > len(self.buf):
                break
            rows.append(self.model.window(self.buf[at:at + WINDOW]))
            self.windows += 1
        drop = self.windows * HOP - self.start
        if drop > 0:
            self.buf, self.start = self.buf[drop:], self.start + drop
        return np.concatenate(rows) if rows else np.zeros((0, DIM), np.float32)
