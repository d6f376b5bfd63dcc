"""Streaming turn detection on recorded speech (espeak-ng, made in the test) fed as live 20 ms frames:
one turn per utterance, short pauses inside an utterance keep the turn, none on silence or noise."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("silero_vad", reason="pip install silero-vad")

from app_modules import media  # noqa: E402
from app_modules.realtime.turn_vad import (  # noqa: E402
    Paused,
    SpeechStarted,
    TurnDetector,
    TurnOptions,
    UtteranceEnded,
)

SR = 16000
FRAME = 320  # 20 ms, what a browser sends: not a multiple of the VAD's 512-sample window


def _say(text: str, tmp_path) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    out = tmp_path / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-w", str(out), text], check=True, capture_output=True)
    return media.load_audio(out, SR).samples


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def _run(detector: TurnDetector, samples: np.ndarray) -> list[tuple[float, object]]:
    """Feed ``samples`` frame by frame; (stream time when each event came out, event)."""
    events = []
    for i in range(0, len(samples), FRAME):
        for ev in detector.feed(samples[i:i + FRAME]):
            events.append(((i + FRAME) / SR, ev))
    return events


@pytest.fixture(scope="module")
def phrases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("turns")
    return [_say(t, tmp) for t in ("Hello there, how are you?", "What is the weather like today?", "Thank you.")]


def test_one_turn_per_utterance(phrases):
    parts, spans, t = [_silence(1.0)], [], 1.0
    for p in phrases:
        parts += [p, _silence(1.5)]
        spans.append((t, t + len(p) / SR))
        t += len(p) / SR + 1.5
    events = _run(TurnDetector(), np.concatenate(parts))
    starts = [e for _, e in events if isinstance(e, SpeechStarted)]
    ends = [(at, e) for at, e in events if isinstance(e, UtteranceEnded)]
    assert len(starts) == len(ends) == len(phrases), events
    for (lo, hi), (at, ev) in zip(spans, ends, strict=True):
        # the turn ends after the speech, within the end-of-turn silence plus a window or two
        assert hi - 0.4 <= ev.speech_end <= hi + 0.1
        assert ev.speech_end < at <= hi + TurnOptions().end_silence_ms / 1000 + 0.15
        # the utterance holds the whole phrase (with a little pre-roll), not the silence around it
        assert (hi - lo) - 0.3 <= ev.audio.duration <= (hi - lo) + 0.7
        assert ev.audio.sample_rate == SR
    for (lo, _), s in zip(spans, starts, strict=True):
        assert lo - 0.1 <= s.at <= lo + 0.6


def test_a_short_pause_does_not_end_the_turn(phrases):
    samples = np.concatenate([_silence(0.5), phrases[0], _silence(0.3), phrases[2], _silence(1.5)])
    ends = [e for _, e in _run(TurnDetector(), samples) if isinstance(e, UtteranceEnded)]
    assert len(ends) == 1
    assert ends[0].audio.duration > (len(phrases[0]) + len(phrases[2])) / SR


def test_silence_and_noise_start_no_turn():
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(4 * SR)).astype(np.float32)
    hum = (0.2 * np.sin(2 * np.pi * 50 * np.arange(3 * SR) / SR)).astype(np.float32)
    clicks = _silence(3.0)
    clicks[::SR // 2] = 0.9  # a click every half second
    for signal in (_silence(4.0), noise, hum, clicks):
        assert _run(TurnDetector(), signal) == []


def test_detectors_do_not_share_state(phrases):
    """Two sessions at once: each detector has its own model state."""
    a, b = TurnDetector(), TurnDetector()
    speech = np.concatenate([_silence(0.5), phrases[1], _silence(1.2)])
    quiet = _silence(len(speech) / SR)
    ev_a, ev_b = [], []
    for i in range(0, len(speech), FRAME):
        ev_a += a.feed(speech[i:i + FRAME])
        ev_b += b.feed(quiet[i:i + FRAME])
    assert sum(isinstance(e, UtteranceEnded) for e in ev_a) == 1
    assert ev_b == []


def test_reset_forgets_a_half_heard_utterance(phrases):
    d = TurnDetector()
    d.feed(phrases[0][: len(phrases[0]) // 2])
    assert d.speaking
    d.reset()
    assert not d.speaking and d.stream_time == 0.0
    assert [e for _, e in _run(d, _silence(2.0))] == []


def test_a_pause_is_announced_before_the_turn_ends_with_the_same_audio(phrases):
    samples = np.concatenate([_silence(0.5), phrases[0], _silence(1.5)])
    events = _run(TurnDetector(), samples)
    kinds = [type(e).__name__ for _, e in events]
    assert kinds == ["SpeechStarted", "Paused", "UtteranceEnded"]
    (t_pause, pause), (t_end, end) = events[1], events[2]
    assert t_pause < t_end - 0.3  # early enough for recognition to get a head start
    assert pause.voiced == end.voiced
    np.testing.assert_array_equal(pause.audio.samples, end.audio.samples)


def test_speech_after_a_pause_changes_the_count(phrases):
    samples = np.concatenate([_silence(0.5), phrases[0], _silence(0.3), phrases[2], _silence(1.5)])
    events = [e for _, e in _run(TurnDetector(), samples)]
    pauses = [e for e in events if isinstance(e, Paused)]
    (end,) = [e for e in events if isinstance(e, UtteranceEnded)]
    assert len(pauses) == 2 and pauses[0].voiced < end.voiced == pauses[1].voiced
    assert [e for _, e in _run(TurnDetector(TurnOptions(speculate_ms=0)), samples) if isinstance(e, Paused)] == []
