"""Voice activity detection with Silero VAD: find the speech, trim the silence, split long recordings.

The model ships inside the ``silero-vad`` wheel (``pip install silero-vad``), so nothing is downloaded;
its ONNX form runs on onnxruntime (a faster-whisper dependency) when present, else the JIT form on torch.
Only its model and ``get_speech_timestamps`` are used: its ``read_audio`` needs torchaudio, which does
not load against the CPU torch here, so audio arrives already decoded by ``app_modules.media``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from app_modules.errors import BackendUnavailableError, BadInputError
from app_modules.types import Audio

SAMPLE_RATE = 16000

_model = None
_lock = threading.Lock()


@dataclass(frozen=True)
class VADOptions:
    """How speech is told from silence and how it is cut up."""

    threshold: float = 0.5  # speech probability above which a 32 ms window counts as speech
    min_speech_ms: int = 250  # shorter bursts (clicks, coughs) are dropped
    min_silence_ms: int = 300  # a pause must last this long to end a segment
    pad_ms: int = 200  # kept around each segment so word onsets and tails are not clipped
    max_segment_s: float = 28.0  # under Whisper's 30 s window, so no chunk is cut inside the model
    gap_ms: int = 100  # silence put back between merged segments, so words do not run together


@dataclass(frozen=True)
class Segment:
    """One stretch of speech, in samples of the 16 kHz input."""

    start: int
    end: int

    def seconds(self) -> tuple[float, float]:
        return self.start / SAMPLE_RATE, self.end / SAMPLE_RATE


def new_silero_model(purpose: str = "voice activity detection"):
    """A fresh Silero VAD model: ONNX when onnxruntime is present (no JIT warm-up), else the JIT one.

    Importing ``silero_vad`` calls ``torch.set_num_threads(1)`` for the whole process, which would
    leave every later torch stage (Wav2Lip, SadTalker, a local LLM) on one core; the setting is put back."""
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    except ImportError as e:
        raise BackendUnavailableError(f"{purpose} needs silero-vad ({e}): pip install silero-vad") from e
    finally:
        torch.set_num_threads(threads)
    try:
        import onnxruntime  # noqa: F401

        return load_silero_vad(onnx=True)
    except ImportError:
        return load_silero_vad()


def load_vad():
    """The Silero VAD model, loaded once per process (it is small and stateless between calls)."""
    global _model
    with _lock:
        if _model is None:
            _model = new_silero_model()
        return _model


def _check_rate(audio: Audio) -> None:
    if audio.sample_rate != SAMPLE_RATE:
        # a programming error, not a user one: callers resample with ASR.common.to_16k_mono first
        raise ValueError(f"VAD expects {SAMPLE_RATE} Hz audio, got {audio.sample_rate} Hz")


def speech_segments(audio: Audio, options: VADOptions = VADOptions()) -> list[Segment]:
    """The stretches of ``audio`` (16 kHz mono) that hold speech, each at most ``max_segment_s`` long."""
    _check_rate(audio)
    if audio.samples.size < 512:  # shorter than one VAD window
        return []
    import torch
    from silero_vad import get_speech_timestamps

    model = load_vad()
    with _lock:  # the model keeps recurrent state; calls from two threads would mix it up
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio.samples, dtype=np.float32)), model,
            threshold=options.threshold, sampling_rate=SAMPLE_RATE,
            min_speech_duration_ms=options.min_speech_ms, min_silence_duration_ms=options.min_silence_ms,
            speech_pad_ms=options.pad_ms, max_speech_duration_s=options.max_segment_s)
        model.reset_states()
    return [Segment(int(s["start"]), int(s["end"])) for s in stamps]


def group_segments(segments: list[Segment], max_seconds: float, gap_ms: int) -> list[list[Segment]]:
    """Pack consecutive segments into groups whose joined length stays under ``max_seconds``.

    Fewer, longer chunks give the recogniser context across short pauses and cost fewer decodes."""
    limit = int(max_seconds * SAMPLE_RATE)
    gap = int(gap_ms * SAMPLE_RATE / 1000)
    groups: list[list[Segment]] = []
    length = 0
    for seg in segments:
        n = seg.end - seg.start
        if groups and length + gap + n <= limit:
            groups[-1].append(seg)
            length += gap + n
        else:
            groups.append([seg])
            length = n
    return groups


def join_segments(audio: Audio, segments: list[Segment], gap_ms: int = 100) -> Audio:
    """The speech of ``segments`` joined with ``gap_ms`` of silence between them."""
    gap = np.zeros(int(gap_ms * audio.sample_rate / 1000), dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, seg in enumerate(segments):
        if i:
            parts.append(gap)
        parts.append(audio.samples[seg.start:seg.end])
    samples = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    return Audio(samples, audio.sample_rate)


def trim(audio: Audio, options: VADOptions = VADOptions()) -> Audio:
    """``audio`` with leading, trailing and long inner silences removed (empty when there is no speech)."""
    return join_segments(audio, speech_segments(audio, options), options.gap_ms)


def split(audio: Audio, options: VADOptions = VADOptions()) -> list[Audio]:
    """The speech of ``audio`` as chunks of at most ``max_segment_s``, cut at pauses; [] when silent."""
    groups = group_segments(speech_segments(audio, options), options.max_segment_s, options.gap_ms)
    return [join_segments(audio, g, options.gap_ms) for g in groups]


def detect_speech(audio: Audio, options: VADOptions = VADOptions()) -> bool:
    """Whether ``audio`` holds any speech at all."""
    return bool(speech_segments(audio, options))


def require_speech(audio: Audio, what: str = "the recording", options: VADOptions = VADOptions()) -> list[Audio]:
    """The speech chunks of ``audio`` (as ``split``), or ``BadInputError`` when it holds none."""
    chunks = split(audio, options)
    if not chunks:
        raise BadInputError(
            f"no speech detected: {what} ({audio.duration:.1f} s) holds only silence or noise; "
            "speak closer to the microphone and try again")
    return chunks
