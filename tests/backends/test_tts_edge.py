"""Edge TTS without the network: its stream (mp3 chunks and WordBoundary events) is built here,
the SDK's ``Communicate`` is faked, and an unreachable service falls back to espeak-ng with a notice."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess

import pytest

pytest.importorskip("edge_tts", reason="pip install edge-tts")
import aiohttp  # noqa: E402
import edge_tts  # noqa: E402

from app_modules.errors import StageError, TalkerError  # noqa: E402
from app_modules.media import ffmpeg_exe  # noqa: E402
from app_modules.types import WordTiming  # noqa: E402
from TTS import edge_tts_tts  # noqa: E402
from TTS.edge_tts_tts import EdgeTTS, EdgeVoice, list_voices, parse_stream, voices_from_json  # noqa: E402

T = 10_000_000  # ticks per second in the service's messages


@pytest.fixture(scope="module")
def mp3() -> bytes:
    """1.2 s of tone in the service's format (24 kHz mono mp3, 48 kbit/s)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                           "sine=frequency=220:duration=1.2", "-ar", "24000", "-ac", "1", "-b:a", "48k",
                           "-f", "mp3", "-"], capture_output=True, check=True)
    return proc.stdout


def _messages(mp3: bytes) -> list[dict]:
    """What ``Communicate.stream()`` yields for "Hello, big world!": metadata between audio chunks."""
    chunks = [mp3[i:i + 1200] for i in range(0, len(mp3), 1200)]
    msgs: list[dict] = [{"type": "WordBoundary", "offset": int(0.10 * T), "duration": int(0.30 * T), "text": "Hello"}]
    msgs += [{"type": "audio", "data": c} for c in chunks[:2]]
    msgs += [{"type": "WordBoundary", "offset": int(0.50 * T), "duration": int(0.20 * T), "text": "big"},
             {"type": "WordBoundary", "offset": int(0.75 * T), "duration": int(0.35 * T), "text": "world"}]
    msgs += [{"type": "audio", "data": c} for c in chunks[2:]]
    return msgs


def test_parse_stream_joins_audio_and_times_words(mp3):
    audio, words = parse_stream(_messages(mp3))
    assert audio == mp3
    assert words == [WordTiming("Hello", 0.1, 0.4), WordTiming("big", 0.5, 0.7), WordTiming("world", 0.75, 1.1)]


def test_parse_stream_uses_sentence_events_only_without_word_events():
    msgs = [{"type": "SentenceBoundary", "offset": 0, "duration": 2 * T, "text": "Hi there."},
            {"type": "audio", "data": b"ab"}, {"type": "audio", "data": b"cd"}, {"type": "SessionEnd"}]
    assert parse_stream(msgs) == (b"abcd", [WordTiming("Hi there.", 0.0, 2.0)])
    msgs.append({"type": "WordBoundary", "offset": T, "duration": T, "text": "there"})
    assert parse_stream(msgs)[1] == [WordTiming("there", 1.0, 2.0)]


class FakeCommunicate:
    """Stands in for ``edge_tts.Communicate``: replays ``messages`` or raises ``error``."""

    messages: list[dict] = []
    error: BaseException | None = None
    calls: list[tuple[str, dict]] = []

    def __init__(self, text, voice, **kwargs):
        FakeCommunicate.calls.append((text, {"voice": voice, **kwargs}))

    async def stream(self):
        if FakeCommunicate.error is not None:
            raise FakeCommunicate.error
        for m in FakeCommunicate.messages:
            await asyncio.sleep(0)
            yield m


@pytest.fixture
def fake(monkeypatch, mp3):
    FakeCommunicate.messages, FakeCommunicate.error, FakeCommunicate.calls = _messages(mp3), None, []
    monkeypatch.setattr(edge_tts, "Communicate", FakeCommunicate)
    return FakeCommunicate


def test_synthesize_returns_decoded_audio_and_word_timings(fake):
    tts = EdgeTTS(EdgeTTS.Options(voice="en-US-AriaNeural", rate="+10%", pitch="-5Hz"))
    speech = tts.synthesize("**Hello**, big world! 😀")
    text, kwargs = fake.calls[0]
    assert text == "Hello, big world!"  # markdown and emoji never reach the service
    assert kwargs["voice"] == "en-US-AriaNeural" and kwargs["rate"] == "+10%" and kwargs["pitch"] == "-5Hz"
    assert kwargs["boundary"] == "WordBoundary"
    assert speech.audio.sample_rate == 24000 and 1.1 < speech.audio.duration < 1.4
    assert [w.text for w in speech.words] == ["Hello,", "big", "world!"]  # punctuation put back
    assert speech.words[0].start == pytest.approx(0.1) and speech.words[-1].end == pytest.approx(1.1)
    assert tts.last_notice is None


def test_synthesize_works_inside_a_running_event_loop(fake):
    tts = EdgeTTS(EdgeTTS.Options(voice="en-US-AriaNeural"))

    async def call():
        return tts.synthesize("Hello, big world!")

    assert asyncio.run(call()).audio.duration > 1.0


def test_unreachable_service_falls_back_to_espeak_with_a_notice(fake, caplog):
    if shutil.which("espeak-ng") is None:
        pytest.skip("apt-get install espeak-ng")
    fake.error = aiohttp.ClientConnectionError("Cannot connect to host speech.platform.bing.com:443")
    tts = EdgeTTS(EdgeTTS.Options(voice="en-US-AriaNeural"))
    with caplog.at_level(logging.WARNING, logger=edge_tts_tts.__name__):
        speech = tts.synthesize("Hello there. The network is down.")
    assert "unreachable" in tts.last_notice and "espeak" in tts.last_notice
    assert "Cannot connect" in tts.last_notice
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    assert speech.audio.sample_rate == 24000 and speech.audio.duration > 1.0
    assert [w.text for w in speech.words] == "Hello there. The network is down.".split()
    # the service is not asked again for every sentence while it is down
    assert len(fake.calls) == 1
    # the offline voice follows the text for Chinese and English, and the Edge voice's language otherwise
    zh = EdgeTTS(EdgeTTS.Options())
    assert zh.synthesize("你好。").audio.duration > 0.3
    assert zh._fallback.voice_for("你好。") == "cmn" and zh._fallback.voice_for("Hi.") == "en-us"
    de = EdgeTTS(EdgeTTS.Options(voice="de-DE-KatjaNeural"))
    de.synthesize("Guten Tag.")
    assert de._fallback.options.voice == "de"


def test_no_fallback_raises_a_stage_error(fake):
    fake.error = TimeoutError()
    with pytest.raises(StageError, match="unreachable"):
        EdgeTTS(EdgeTTS.Options(fallback="")).synthesize("你好")


@pytest.mark.parametrize("opts, match", [
    ({"rate": "fast"}, "rate"), ({"pitch": "+5%"}, "pitch"), ({"voice": "Xiaoxiao"}, "voice"),
    ({"fallback": "nope"}, "espeak"),
])
def test_bad_options_are_named(opts, match):
    with pytest.raises(TalkerError, match=match):
        EdgeTTS(EdgeTTS.Options(**opts))


def test_list_voices_filters_by_language_and_gender():
    voices = voices_from_json([
        {"ShortName": "zh-CN-YunxiNeural", "Locale": "zh-CN", "Gender": "Male", "FriendlyName": "Yunxi"},
        {"ShortName": "zh-CN-XiaoxiaoNeural", "Locale": "zh-CN", "Gender": "Female"},
        {"ShortName": "zh-TW-HsiaoChenNeural", "Locale": "zh-TW", "Gender": "Female"},
        {"ShortName": "en-US-AriaNeural", "Locale": "en-US", "Gender": "Female"},
        {"ShortName": "zh-CN-liaoning-XiaobeiNeural", "Locale": "zh-CN-liaoning", "Gender": "Female"},
    ])
    names = lambda vs: [v.name for v in vs]  # noqa: E731
    assert names(list_voices("zh", voices=voices)) == [
        "zh-CN-XiaoxiaoNeural", "zh-CN-YunxiNeural", "zh-CN-liaoning-XiaobeiNeural", "zh-TW-HsiaoChenNeural"]
    assert names(list_voices("zh_cn", "female", voices=voices)) == [
        "zh-CN-XiaoxiaoNeural", "zh-CN-liaoning-XiaobeiNeural"]
    assert names(list_voices(gender="Male", voices=voices)) == ["zh-CN-YunxiNeural"]
    assert list_voices("en", voices=voices)[0] == EdgeVoice("en-US-AriaNeural", "en-US", "Female", "")
    # the liaoning dialect voice is a valid option
    EdgeTTS(EdgeTTS.Options(voice="zh-CN-liaoning-XiaobeiNeural"))
