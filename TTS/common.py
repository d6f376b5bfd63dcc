"""What every TTS backend does around its voice: one output format, sentence-by-sentence synthesis
of long text, and word timings where the voice gives none."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# media.resample imports scipy.signal on first use: a second or more, which would otherwise be
# added to the first sentence the user waits for instead of to loading the voice
import scipy.signal  # noqa: F401

from app_modules.errors import BadInputError
from app_modules.media import normalize
from app_modules.types import Audio, WordTiming
from TTS.align import align_words, shift, voiced_frames
from TTS.base import Speech
from TTS.text_norm import split_sentences

SAMPLE_RATE = 24000  # what the talking heads and the mp4 writer get from every voice
TARGET_DBFS = -20.0  # loudness of the voiced part, so switching voices does not jump in volume
PEAK = 0.95
SENTENCE_GAP_S = 0.15  # silence between sentences of one call


def finish(audio: Audio) -> Audio:
    """24 kHz mono float32 at a common loudness (never clipping): the one format the next stages get."""
    a = normalize(audio, SAMPLE_RATE)
    if not a.samples.size:
        return a
    v = voiced_frames(a)
    n = int(round(0.02 * a.sample_rate))
    x = a.samples[: len(v) * n].reshape(len(v), n)[v] if v.any() else a.samples
    level = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    peak = float(np.max(np.abs(a.samples)))
    if level <= 1e-6 or peak <= 1e-6:
        return a
    gain = min(10 ** (TARGET_DBFS / 20) / level, PEAK / peak)
    return Audio((a.samples * gain).astype(np.float32), a.sample_rate)


def by_sentence(text: str, speak: Callable[[str], Speech], gap_s: float = SENTENCE_GAP_S) -> Speech:
    """Speak ``text`` one sentence at a time with ``speak`` and join the results, timings shifted.

    ``speak`` returns finished audio (``finish``) with its words; sentences without words get
    aligned ones, so every backend gives word-timed subtitles."""
    sentences = split_sentences(text)
    if not sentences:
        raise BadInputError("nothing to say: the text is empty once markdown and emoji are removed")
    parts: list[np.ndarray] = []
    words: list[WordTiming] = []
    done = 0  # samples so far: offsets count samples, so long answers do not drift
    gap = np.zeros(int(round(gap_s * SAMPLE_RATE)), dtype=np.float32)
    for i, sentence in enumerate(sentences):
        speech = speak(sentence)
        audio = speech.audio
        if audio.sample_rate != SAMPLE_RATE:
            audio = finish(audio)
        if i:
            parts.append(gap)
            done += len(gap)
        parts.append(audio.samples)
        words.extend(shift(speech.words or align_words(sentence, audio), done / SAMPLE_RATE))
        done += len(audio.samples)
    return Speech(Audio(np.concatenate(parts).astype(np.float32), SAMPLE_RATE), tuple(words))
