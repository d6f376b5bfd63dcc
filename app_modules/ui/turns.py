"""A conversation turn as a stream of screen states, independent of Gradio (so tests can drive it).

Each ``View`` is what the chat panel shows at that moment: the conversation, the latest sentence's
video, the final video with subtitles, a status line. A failed stage ends the stream with the error
shown as the avatar's reply; the ``ChatHistory`` is untouched, so the next view drops that message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from app_modules import media
from app_modules.config import LimitSettings
from app_modules.errors import BadInputError, TalkerError
from app_modules.history import ChatHistory
from app_modules.pipeline import require_length
from app_modules.types import (
    Audio,
    Progress,
    SentenceVideo,
    StageFailed,
    TextDelta,
    Transcript,
    TurnResult,
)
from app_modules.ui.runtime import Runtime
from app_modules.ui.session import Session


@dataclass(frozen=True)
class View:
    chat: list[dict[str, str]]
    sentence_video: str | None = None
    final_video: tuple[str, str | None] | None = None
    status: str = ""
    done: bool = False
    failed: bool = False


def chat_messages(history: ChatHistory) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for user, assistant in history.as_pairs():
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return out


def error_text(stage: str, message: str) -> str:
    where = "your input" if stage == "input" else f"the {stage} stage"
    return f"⚠️ Problem with {where}: {message}"


def browser_audio(value: Any, limits: LimitSettings | None = None) -> Audio | None:
    """``gr.Audio(type="filepath")`` and the API give a file path (decoded no further than
    ``limits.audio_seconds``); ``type="numpy"`` gives ``(rate, samples)``."""
    limits = limits or LimitSettings()
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        return media.load_audio(value, 16000, limits.audio_seconds)
    rate, samples = value
    if samples is None or np.asarray(samples).size == 0:
        return None
    audio = media.from_array(np.asarray(samples), rate)
    media.require_duration(audio, limits.audio_seconds)
    return audio


def portrait(value: Any, limits: LimitSettings | None = None) -> np.ndarray:
    """An RGB uint8 array from an image component value (a path, or an array), within ``limits``."""
    limits = limits or LimitSettings()
    if value is None:
        raise BadInputError("no portrait: upload a photo or take one with the webcam first")
    if isinstance(value, (str, Path)):
        return media.limit_size(media.load_image(value, limits.image_pixels, limits.min_face_px))
    img = np.asarray(value)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise BadInputError("the portrait must be a colour photo")
    media.check_image_size(img.shape[1], img.shape[0], limits.image_pixels, limits.min_face_px)
    return media.limit_size(np.ascontiguousarray(img[..., :3].astype(np.uint8)))


def run_turn(runtime: Runtime, session: Session, key: str, *, text: str | None = None, audio: Any = None,
             image: Any = None, persona: str | None = None, tts: str | None = None,
             tts_options: dict[str, Any] | None = None, cancel: threading.Event | None = None) -> Iterator[View]:
    """Run one turn in ``session``'s conversation ``key`` and yield what the screen shows."""
    history = session.history(key, (persona or "")[:runtime.settings.limits.text_chars] if persona else persona)
    base = chat_messages(history)
    typed = (text or "").strip()
    shown_user = typed or "🎤 (voice message)"
    limits = runtime.settings.limits
    try:
        heard = browser_audio(audio, limits)
        if heard is None and not typed:
            raise BadInputError("nothing to answer: type a question or record one with the microphone")
        require_length(typed, limits.text_chars, "the question")
        require_length(persona or "", limits.text_chars, "the persona")
        face = portrait(image, limits)
        llm = runtime.choice("llm", session.settings)
        answering = llm.label or llm.name
        note = f"; {llm.loading}" if llm.loading and not runtime.loaded("llm") else ""
        yield View(base + [{"role": "user", "content": typed or "🎤 …"}],
                   status=f"Loading models ({answering}{note})…")
        # the session's own backends and options, shared with every session that chose the same
        pipe = runtime.pipeline(settings=session.settings, need_asr=heard is not None, need_video=True, tts=tts,
                                tts_options=tts_options)
    except TalkerError as e:
        stage = "input" if isinstance(e, BadInputError) else getattr(e, "stage", "setup")
        yield _failed(base, shown_user, stage, str(e))
        return

    user, reply = shown_user, ""
    view = View(base + [{"role": "user", "content": user}], status="Thinking…")
    yield view
    for ev in pipe.turn(history, session.workdir, text=None if heard else typed, audio=heard, image=face,
                        cancel=cancel):
        if isinstance(ev, Transcript):
            user = ev.text
            view = replace(view, chat=base + [{"role": "user", "content": user}], status="Answering…")
        elif isinstance(ev, TextDelta):
            reply += ev.text
            view = replace(view, chat=base + [{"role": "user", "content": user},
                                              {"role": "assistant", "content": reply}])
        elif isinstance(ev, SentenceVideo):
            view = replace(view, sentence_video=str(ev.path), status=f"Sentence {ev.index + 1} ready…")
        elif isinstance(ev, Progress):
            view = replace(view, status=ev.message)
        elif isinstance(ev, StageFailed):
            yield _failed(base, user, ev.stage, ev.message, view.sentence_video)
            return
        elif isinstance(ev, TurnResult):
            final = (str(ev.video), str(ev.subtitles) if ev.subtitles else None) if ev.video else None
            secs = ev.timings.get("total", 0.0)
            view = replace(view, chat=chat_messages(history), final_video=final, done=True,
                           status=f"Done in {secs:.1f} s. Answered by {answering}.")
        else:
            continue
        yield view


def _failed(base: list[dict[str, str]], user: str, stage: str, message: str,
            sentence_video: str | None = None) -> View:
    chat = base + [{"role": "user", "content": user}, {"role": "assistant", "content": error_text(stage, message)}]
    return View(chat, sentence_video=sentence_video, status=error_text(stage, message), done=True, failed=True)
