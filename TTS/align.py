"""Word timings for speech whose voice gives none (espeak-ng, Piper, GPT-SoVITS...).

No recogniser is run: the text is spread over the *voiced* part of the audio by character count.
Silent frames (pauses at commas, leading and trailing silence) get no text, so each word lands
within a few hundred milliseconds of where it is heard; enough for subtitles, which only need the
sentence right and the words roughly right.
"""

from __future__ import annotations

import re

import numpy as np

from app_modules.types import Audio, WordTiming

FRAME_S = 0.02
# a frame is voiced when its RMS is within this many dB of the loudest frame
VOICED_DB = 35.0

# a token: a run of CJK characters is split into single characters, Latin words stay whole;
# punctuation sticks to the token before it so subtitles keep it
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff][^\w\s]*|[^\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def tokens(text: str) -> list[str]:
    """Words of ``text``: whitespace-separated for Latin scripts, one character each for Chinese."""
    return [t for t, _ in _tokens_with_ends(text)]


def _tokens_with_ends(text: str) -> list[tuple[str, int]]:
    """Each token and where it ends in ``text``."""
    out: list[tuple[str, int]] = []
    for m in _TOKEN.finditer(text):
        if out and not re.search(r"\w", m.group()):  # stray punctuation ("word ." or "，")
            out[-1] = (out[-1][0] + m.group(), m.end())
        else:
            out.append((m.group(), m.end()))
    return out


def voiced_frames(audio: Audio, frame_s: float = FRAME_S, db: float = VOICED_DB) -> np.ndarray:
    """A boolean per frame of ``frame_s`` seconds: is there sound in it?"""
    n = max(1, int(round(frame_s * audio.sample_rate)))
    x = audio.samples.astype(np.float64)
    count = len(x) // n
    if count == 0:
        return np.zeros(0, dtype=bool)
    frames = x[: count * n].reshape(count, n)
    level = np.sqrt(np.mean(frames**2, axis=1))
    peak = float(level.max())
    if peak <= 1e-6:
        return np.zeros(count, dtype=bool)
    return level >= peak * 10 ** (-db / 20)


def voiced_span(audio: Audio) -> tuple[float, float]:
    """(start, end) of the sound in ``audio``, in seconds; the whole clip when it is silent."""
    v = voiced_frames(audio)
    if not v.any():
        return 0.0, audio.duration
    idx = np.flatnonzero(v)
    return float(idx[0] * FRAME_S), float(min(audio.duration, (idx[-1] + 1) * FRAME_S))


def _weight(token: str) -> float:
    letters = len(re.findall(r"\w", token))
    # CJK characters are each about a syllable; Latin letters far less
    cjk = len(re.findall(r"[\u3400-\u9fff\uf900-\ufaff]", token))
    return max(1.0, cjk * 3.0 + (letters - cjk))


def align_words(text: str, audio: Audio) -> tuple[WordTiming, ...]:
    """Each word of ``text`` with a start and end inside the voiced frames of ``audio``."""
    words = tokens(text)
    if not words:
        return ()
    v = voiced_frames(audio)
    if not v.any():
        v = np.ones(max(1, int(audio.duration / FRAME_S)), dtype=bool)
    # the text is laid along the voiced frames only, as if the pauses were cut out
    frames = np.flatnonzero(v)
    weights = np.array([_weight(w) for w in words])
    bounds = np.concatenate([[0.0], np.cumsum(weights) / weights.sum() * len(frames)])

    def at(pos: float, end: bool) -> float:
        # pos counts voiced frames; an end lands after its last frame, a start before its first
        k = min(max(int(np.ceil(pos) - 1 if end else np.floor(pos)), 0), len(frames) - 1)
        return float(min(audio.duration, (frames[k] + min(max(pos - k, 0.0), 1.0)) * FRAME_S))

    out = []
    for w, a, b in zip(words, bounds[:-1], bounds[1:], strict=True):
        start, end = at(a, False), at(b, True)
        out.append(WordTiming(w, round(start, 3), round(max(end, start), 3)))
    return tuple(out)


def sentence_timing(text: str, audio: Audio) -> WordTiming:
    """The whole sentence as one cue over the sound."""
    start, end = voiced_span(audio)
    return WordTiming(text.strip(), round(start, 3), round(end, 3))


def shift(words: tuple[WordTiming, ...] | list[WordTiming], offset: float) -> tuple[WordTiming, ...]:
    return tuple(WordTiming(w.text, round(w.start + offset, 3), round(w.end + offset, 3)) for w in words)


def attach_punctuation(words: list[WordTiming] | tuple[WordTiming, ...], text: str) -> list[WordTiming]:
    """Word timings from a voice (which drops punctuation) with the punctuation that follows each
    word in ``text`` put back, so subtitles read like the text. Words not found are kept as given."""
    out: list[WordTiming] = []
    pos = 0
    for w in words:
        i = text.find(w.text, pos)
        if i < 0:
            out.append(w)
            continue
        j = i + len(w.text)
        while j < len(text) and not text[j].isspace() and not text[j].isalnum() and text[j] not in "'\"(（[【":
            j += 1
        out.append(WordTiming(text[i:j], w.start, w.end))
        pos = j
    return out


def written_words(written: str, spoken: list[WordTiming] | tuple[WordTiming, ...],
                  language: str | None = None) -> tuple[WordTiming, ...]:
    """The words of ``written`` (as the chat shows them: "3", "Dr.", "10:30") timed by the words a
    voice actually said (``spoken``: "three", "doctor", "ten thirty").

    Each written word is spelled out the way the voices spell text (``normalize_text`` on the text
    up to and including it), which tells how many spoken words it became; it then spans exactly
    those. When the voice said a different number of words than that predicts (a service voice
    with its own reading), the written words are spread over the spoken ones in proportion."""
    from TTS.text_norm import language_of, normalize_text

    pieces = _tokens_with_ends(written)
    if not pieces or not spoken:
        return tuple(spoken) if not pieces else ()
    m = len(spoken)
    lang = language or language_of(written)
    counts = np.maximum.accumulate([len(tokens(normalize_text(written[:end], lang))) for _, end in pieces])
    n = int(counts[-1])
    if n != m and len(pieces) == m:  # the voice read the words as written (a service voice reading digits)
        return tuple(WordTiming(t, w.start, w.end) for (t, _), w in zip(pieces, spoken, strict=True))
    if n <= 0:
        return (WordTiming(" ".join(t for t, _ in pieces), spoken[0].start, spoken[-1].end),)
    bounds = np.concatenate([[0], counts]) * (m / n)  # in spoken words, fractional when they disagree

    def at(q: float, end: bool) -> float:
        """The time at ``q`` spoken words in; an end on a boundary belongs to the word before it."""
        k = int(np.floor(q))
        if end and q == k:
            return spoken[max(k - 1, 0)].end if k > 0 else spoken[0].start
        if k >= m:
            return spoken[-1].end
        w = spoken[k]
        return w.start + (q - k) * (w.end - w.start)

    out = []
    for (t, _), a, b in zip(pieces, bounds[:-1], bounds[1:], strict=True):
        start = at(a, False) if b > a else at(a, True)  # a word that was not spoken: a moment, in place
        out.append(WordTiming(t, round(float(start), 3), round(float(max(at(b, True), start)), 3)))
    return tuple(out)
