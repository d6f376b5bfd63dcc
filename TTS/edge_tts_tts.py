"""Microsoft Edge's online voices (``edge-tts``): hundreds of natural voices with word timings.

Install: ``pip install edge-tts``. Needs Microsoft's service; when it cannot be reached the sentence
is spoken by an offline voice (``fallback``) and ``last_notice`` says so (also logged as a warning),
so the UI can tell the user why the voice changed.

The stream is a list of messages: mp3 ``audio`` chunks and ``WordBoundary`` events (offset and
duration in 100 ns ticks). ``parse_stream`` turns them into mp3 bytes and word timings; it is pure,
so it is tested on recorded messages without the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BackendUnavailableError, StageError, TalkerError
from app_modules.media import load_audio
from app_modules.options import Declared, option
from app_modules.types import WordTiming
from TTS.align import attach_punctuation
from TTS.base import TTS, Speech
from TTS.common import SAMPLE_RATE, by_sentence, finish
from TTS.text_norm import normalize_text

try:
    import aiohttp
    import edge_tts
except ImportError as e:  # pragma: no cover - depends on the install
    raise BackendUnavailableError("edge-tts is not installed: pip install edge-tts") from e

log = logging.getLogger(__name__)

TICKS_PER_SECOND = 10_000_000


# ------------------------------------------------------------------------------------------- stream

def parse_stream(messages: Iterable[Mapping[str, Any]]) -> tuple[bytes, list[WordTiming]]:
    """The mp3 bytes and the word timings (seconds) in a list of ``Communicate.stream()`` messages."""
    audio = bytearray()
    words: list[WordTiming] = []
    sentences: list[WordTiming] = []
    for msg in messages:
        kind = msg.get("type")
        if kind == "audio":
            audio += msg.get("data") or b""
        elif kind in ("WordBoundary", "SentenceBoundary"):
            start = float(msg["offset"]) / TICKS_PER_SECOND
            end = start + float(msg["duration"]) / TICKS_PER_SECOND
            (words if kind == "WordBoundary" else sentences).append(
                WordTiming(str(msg["text"]), round(start, 3), round(end, 3)))
    # word events are asked for; sentence events only come from older or differently set-up services
    return bytes(audio), words or sentences


# ------------------------------------------------------------------------------------------- voices

@dataclass(frozen=True)
class EdgeVoice:
    name: str  # the ShortName to put in Options.voice, e.g. "zh-CN-XiaoxiaoNeural"
    locale: str  # "zh-CN"
    gender: str  # "Female" | "Male"
    friendly_name: str = ""


@functools.cache
def fetch_voices() -> tuple[EdgeVoice, ...]:
    """Every voice the service offers (network; cached for the process)."""
    try:
        raw = _run_async(edge_tts.list_voices)
    except Exception as e:
        raise StageError("tts", f"cannot fetch the Edge TTS voice list ({e}); check the network") from e
    return tuple(voices_from_json(raw))


def voices_from_json(raw: Iterable[Mapping[str, Any]]) -> list[EdgeVoice]:
    return [EdgeVoice(v["ShortName"], v.get("Locale", ""), v.get("Gender", ""), v.get("FriendlyName", ""))
            for v in raw]


def list_voices(language: str = "", gender: str = "", voices: Iterable[EdgeVoice] | None = None) -> list[EdgeVoice]:
    """Voices filtered by language ("zh" or a locale "zh-CN", case-insensitive) and gender ("female"),
    sorted by name. ``voices`` defaults to the service's list."""
    lang, gender = language.strip().lower().replace("_", "-"), gender.strip().lower()
    out = []
    for v in fetch_voices() if voices is None else voices:
        loc = v.locale.lower()
        if lang and not (loc == lang or loc.startswith(lang + "-")):
            continue
        if gender and v.gender.lower() != gender:
            continue
        out.append(v)
    return sorted(out, key=lambda v: v.name)


# -------------------------------------------------------------------------------------------- voice

def _run_async(fn, *args):
    """Run ``fn(*args)`` (a coroutine function) to completion from synchronous code, even when the
    caller is itself inside an event loop (Gradio runs sync callbacks in threads, but not always)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn(*args))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fn(*args)).result()


def _fallback_options(name: str, edge_voice: str) -> dict[str, Any]:
    """Options for the offline voice that match the Edge voice's language where espeak-ng has it;
    for Chinese and English "auto" follows the text, so a Chinese voice reading English still works."""
    if name != "espeak":
        return {}
    from TTS.espeak_tts import available_voices

    lang = edge_voice.split("-", 1)[0].lower()
    return {"voice": lang if lang not in ("zh", "en") and lang in available_voices() else "auto"}


class EdgeTTS(TTS):
    """An Edge voice; sentences it cannot get from the service are spoken by ``fallback``."""

    @dataclass(frozen=True)
    class Options(Declared, label="edge"):
        # a ShortName from `list_voices()`, e.g. "en-US-AriaNeural", "zh-CN-YunxiNeural"
        voice: str = option("zh-CN-XiaoxiaoNeural", visitor=True, max_len=64)
        # speaking rate, volume and pitch as offsets: "+10%", "-20%", "+5Hz"
        rate: str = option("+0%", visitor=True, max_len=8)
        volume: str = option("+0%", visitor=True, max_len=8)
        pitch: str = option("+0Hz", visitor=True, max_len=8)
        # the offline TTS backend for when the service is unreachable ("espeak", "piper"); "" fails instead
        fallback: str = "espeak"
        # after a failure, the service is tried again only after this many seconds
        retry_after_s: float = option(60.0, min=0, max=86400)
        connect_timeout_s: int = option(10, min=1, max=600)
        receive_timeout_s: int = option(30, min=1, max=600)

    def __init__(self, options: Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = options or self.Options()
        self.checkpoints = checkpoints or CheckpointManager()
        self._verify_options()
        self._fallback: TTS | None = None
        self._down_until = 0.0  # the service is not retried before this (time.monotonic())
        self._reason = ""
        self.last_notice: str | None = None  # set when a sentence was spoken by the fallback voice

    def _verify_options(self) -> None:
        o = self.options
        if not re.fullmatch(r"[a-z]{2,3}-[A-Za-z]{2,}(-[A-Za-z]+)?-\w+Neural", o.voice):
            raise TalkerError(f"Edge voice {o.voice!r} is not a voice name like 'zh-CN-XiaoxiaoNeural' or "
                              "'en-US-AriaNeural' (list them with TTS.edge_tts_tts.list_voices('zh'))")
        for name, unit in (("rate", "%"), ("volume", "%"), ("pitch", "Hz")):
            value = getattr(o, name)
            if not re.fullmatch(r"[+-]\d+" + unit, value):
                raise TalkerError(f"Edge option {name}={value!r} must look like '+10{unit}' or '-5{unit}'")
        if o.fallback:
            from app_modules import registry

            names = [n for n in registry.names("tts") if n != "edge"]
            if o.fallback not in names:
                raise TalkerError(f"Edge fallback {o.fallback!r} is not a TTS backend; choose one of "
                                  f"{', '.join(names)}, or '' for none")

    def synthesize(self, text: str) -> Speech:
        self.last_notice = None
        # Edge reads digits and dates itself, and its word timings then keep the digits subtitles show
        return by_sentence(normalize_text(text, numbers=False), self._speak)

    def _speak(self, sentence: str) -> Speech:
        if time.monotonic() < self._down_until:
            return self._speak_offline(sentence, self._reason)
        try:
            messages = _run_async(self._collect, sentence)
        except (OSError, TimeoutError, edge_tts.exceptions.EdgeTTSException,
                aiohttp.ClientError) as e:
            self._down_until = time.monotonic() + self.options.retry_after_s
            # aiohttp puts the SSL context's repr in its message: noise to a user
            self._reason = re.sub(r"\s*ssl:<[^>]*>", "", f"{type(e).__name__}: {e}").strip(": ")
            return self._speak_offline(sentence, self._reason)
        mp3, words = parse_stream(messages)
        if not mp3:
            raise StageError("tts", f"Edge TTS sent no audio for {sentence[:40]!r}")
        return Speech(finish(_decode_mp3(mp3)), tuple(attach_punctuation(words, sentence)))

    async def _collect(self, sentence: str) -> list[dict]:
        o = self.options
        com = edge_tts.Communicate(sentence, o.voice, rate=o.rate, volume=o.volume, pitch=o.pitch,
                                   boundary="WordBoundary", connect_timeout=o.connect_timeout_s,
                                   receive_timeout=o.receive_timeout_s)
        return [dict(m) async for m in com.stream()]

    def _speak_offline(self, sentence: str, reason: str) -> Speech:
        if not self.options.fallback:
            raise StageError("tts", f"Edge TTS is unreachable ({reason}); check the network, "
                                    "or set the edge option fallback=espeak")
        if self._fallback is None:
            from app_modules import registry

            name = self.options.fallback
            self._fallback = registry.create("tts", name, _fallback_options(name, self.options.voice),
                                             self.checkpoints)
        notice = (f"Edge TTS is unreachable ({reason}); speaking with the offline {self.options.fallback} "
                  "voice instead")
        if notice != self.last_notice:
            log.warning(notice)
        self.last_notice = notice
        return self._fallback.synthesize(sentence)


def _decode_mp3(mp3: bytes):
    with tempfile.TemporaryDirectory(prefix="talker-edge-") as d:
        p = Path(d) / "speech.mp3"
        p.write_bytes(mp3)
        return load_audio(p, SAMPLE_RATE)
