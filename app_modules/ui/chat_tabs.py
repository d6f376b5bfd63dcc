"""The four conversation tabs. Each is the same chat panel with a different avatar or voice source.

Callbacks stay thin: they make sure the session exists, hand the inputs to ``turns.run_turn`` and
map each ``View`` onto the components. Unchanged videos are skipped (``gr.skip()``) so a playing
sentence is not restarted by every streamed word.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from app_modules.registry import spec, why_unavailable
from app_modules.ui import voices
from app_modules.ui.runtime import Runtime
from app_modules.ui.session import Session
from app_modules.ui.turns import chat_messages, run_turn

ASSETS = Path(__file__).resolve().parent / "assets"
# Portraits that ship with the app: public-domain photos only (assets/README.md names each one's
# source and licence). Each speaks with its role's voice (voices.ROLES), and choosing a role shows
# that role's portrait where there is one; any other face can be used in the "Your photo" tab.
BUILTIN_AVATARS = {"Grace Hopper": ASSETS / "grace_hopper.jpg"}
AVATAR_ROLES = {"Grace Hopper": "Female"}


def avatar_for_role(role: str) -> str | None:
    """The built-in avatar of ``role``, or None when none ships (the face stays, the voice changes)."""
    return next((name for name, r in AVATAR_ROLES.items() if r == role and name in BUILTIN_AVATARS), None)


@dataclass
class Panel:
    chat: gr.Chatbot
    text: gr.Textbox
    mic: gr.Audio
    send: gr.Button
    undo: gr.Button
    clear: gr.Button
    sentence_video: gr.Video
    final_video: gr.Video
    status: gr.Markdown


def ensure_session(runtime: Runtime, session: Session | None, request: gr.Request | None) -> Session:
    if isinstance(session, Session):
        return session
    return Session.create(runtime.settings, getattr(request, "session_hash", None))


def final_video(value: tuple[str, str | None] | None) -> gr.Video:
    """The answer video with its subtitles as a WebVTT track (the only format browsers play)."""
    if value is None:
        return gr.Video(value=None, subtitles=None)
    video, srt = value
    return gr.Video(value=video, subtitles=srt_to_vtt(Path(srt)) if srt else None)


def srt_to_vtt(srt: Path) -> str:
    vtt = srt.with_suffix(".vtt")
    text = srt.read_text(encoding="utf-8")
    # SRT and WebVTT differ only in the header and the decimal comma of the timestamps
    vtt.write_text("WEBVTT\n\n" + re.sub(r"(\d\d:\d\d:\d\d),(\d\d\d)", r"\1.\2", text), encoding="utf-8")
    return str(vtt)


def build_panel(key: str) -> Panel:
    with gr.Row():
        with gr.Column(scale=1):
            sentence_video = gr.Video(label="Speaking now (sentence by sentence)", autoplay=True,
                                      interactive=False, elem_id=f"{key}-sentence-video", height=300)
            final_video = gr.Video(label="Whole answer, with subtitles", interactive=False,
                                   elem_id=f"{key}-final-video", height=300)
        with gr.Column(scale=1):
            chat = gr.Chatbot(label="Conversation", elem_id=f"{key}-chat", height=320)
            text = gr.Textbox(label="Type a question", placeholder="Ask the avatar something…", lines=2,
                              elem_id=f"{key}-text")
            # a file, not an array: the duration limit is checked before it is decoded (media.load_audio)
            mic = gr.Audio(sources=["microphone", "upload"], type="filepath", label="…or ask by voice",
                           elem_id=f"{key}-mic")
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id=f"{key}-send")
                undo = gr.Button("Undo last turn", elem_id=f"{key}-undo")
                clear = gr.Button("Clear", elem_id=f"{key}-clear")
            status = gr.Markdown(elem_id=f"{key}-status")
    return Panel(chat, text, mic, send, undo, clear, sentence_video, final_video, status)


def wire(panel: Panel, runtime: Runtime, state: gr.State, key: str, extra: list[gr.components.Component],
         turn_args: Callable[..., dict[str, Any]], stored: gr.BrowserState | None = None) -> None:
    """Connect a panel: ``turn_args(session settings, *extra values)`` gives run_turn's image / persona / voice.
    ``stored``: the browser's copy of the conversations, written after every change (see ``app.restore``)."""
    keep = [stored] if stored is not None else []

    def kept(session: Session) -> list:
        return [session.snapshot()] if stored is not None else []

    def respond(request: gr.Request, session, text, audio, *values):  # gr.Request first: *values follows
        session = ensure_session(runtime, session, request)
        shown_sentence = shown_final = None
        first = True
        for v in run_turn(runtime, session, key, text=text, audio=audio, **turn_args(session.settings, *values)):
            sentence = v.sentence_video if v.sentence_video != shown_sentence else gr.skip()
            final = final_video(v.final_video) if v.final_video != shown_final else gr.skip()
            if first:  # a new question: take the previous answer's videos off the screen
                sentence, final, first = v.sentence_video, final_video(v.final_video), False
            shown_sentence, shown_final = v.sentence_video, v.final_video
            ok = v.done and not v.failed
            yield (session, v.chat, sentence, final, v.status,
                   "" if ok else gr.skip(), None if ok else gr.skip(),
                   *(kept(session) if ok else [gr.skip()] * len(keep)))

    def undo(session, request: gr.Request):
        session = ensure_session(runtime, session, request)
        history = session.history(key)
        turn = history.undo()
        note = "Removed the last turn." if turn else "Nothing to undo."
        return session, chat_messages(history), turn.user if turn else gr.skip(), note, *kept(session)

    def clear(session, request: gr.Request):
        session = ensure_session(runtime, session, request)
        session.history(key).clear()
        return session, [], None, final_video(None), "Conversation cleared.", *kept(session)

    outputs = [state, panel.chat, panel.sentence_video, panel.final_video, panel.status, panel.text, panel.mic, *keep]
    inputs = [state, panel.text, panel.mic, *extra]
    # turns of every tab share one Gradio limit (how many may wait at all); the render limit itself is
    # the runtime's, shared with the API and the real-time tab. Undo and clear are instant and must not
    # wait behind someone's rendering
    waiting = runtime.settings.server.concurrency + runtime.settings.limits.queue
    panel.send.click(respond, inputs, outputs, api_name=f"{key}_turn", concurrency_id="turns",
                     concurrency_limit=waiting)
    panel.text.submit(respond, inputs, outputs, api_name=False, concurrency_id="turns", concurrency_limit=waiting)
    panel.undo.click(undo, [state], [state, panel.chat, panel.text, panel.status, *keep],
                     api_name=f"{key}_undo", concurrency_limit=None)
    panel.clear.click(clear, [state],
                      [state, panel.chat, panel.sentence_video, panel.final_video, panel.status, *keep],
                      api_name=f"{key}_clear", concurrency_limit=None)


def builtin_tab(runtime: Runtime, state: gr.State, stored: gr.BrowserState | None = None) -> Panel:
    faces = all(avatar_for_role(r) for r in voices.ROLES)
    gr.Markdown("Talk to a built-in avatar. The role picks a female or male voice"
                + (", and the face to match." if faces else "."))
    first = next(iter(BUILTIN_AVATARS))
    with gr.Row():
        avatar = gr.Dropdown(list(BUILTIN_AVATARS), value=first, label="Avatar", elem_id="builtin-avatar")
        role = gr.Radio(list(voices.ROLES), value=AVATAR_ROLES.get(first, voices.ROLES[0]), label="Role",
                        elem_id="builtin-role")
    preview = gr.Image(value=str(BUILTIN_AVATARS[first]), label="Portrait", interactive=False,
                       height=220, elem_id="builtin-preview")
    avatar.change(lambda name: str(BUILTIN_AVATARS[name]), avatar, preview, api_name=False, concurrency_limit=None)
    # the role and the face follow each other (user choices only: no ping-pong of change events)
    role.input(lambda r: avatar_for_role(r) or gr.skip(), role, avatar, api_name=False, concurrency_limit=None)
    avatar.input(lambda name: AVATAR_ROLES.get(name, gr.skip()), avatar, role, api_name=False,
                 concurrency_limit=None)
    panel = build_panel("builtin")
    def turn_args(settings, name, r):
        # the role's voice for the TTS that will speak (auto's pick, where the settings say auto)
        role_voice = voices.role_tts_options(settings, r, runtime.choice("tts", settings).name)
        return {"image": BUILTIN_AVATARS.get(name, next(iter(BUILTIN_AVATARS.values()))),
                "tts_options": role_voice or None}

    wire(panel, runtime, state, "builtin", [avatar, role], turn_args, stored)
    return panel


def photo_tab(runtime: Runtime, state: gr.State, stored: gr.BrowserState | None = None) -> Panel:
    gr.Markdown("Use any photo of one face as the avatar: upload it or take one with the webcam.")
    # a file, not an array: its size is read from the header before it is decoded (limits.image_pixels)
    photo = gr.Image(sources=["upload", "webcam"], type="filepath", image_mode="RGB", label="Portrait",
                     height=260, elem_id="photo-image")
    panel = build_panel("photo")
    wire(panel, runtime, state, "photo", [photo], lambda _settings, img: {"image": img}, stored)
    return panel


def conversation_tab(runtime: Runtime, state: gr.State,
                     stored: gr.BrowserState | None = None) -> tuple[Panel, gr.Textbox]:
    gr.Markdown("A multi-turn conversation: the avatar remembers earlier turns. Set its persona, "
                "undo a turn or start over.")
    with gr.Row():
        persona = gr.Textbox(value=runtime.settings.pipeline.system_prompt, label="Persona (system prompt)",
                             lines=3, scale=2, elem_id="conversation-persona")
        photo = gr.Image(value=str(next(iter(BUILTIN_AVATARS.values()))), sources=["upload", "webcam"],
                         type="filepath", image_mode="RGB", label="Portrait", height=200, scale=1,
                         elem_id="conversation-image")
    panel = build_panel("conversation")
    wire(panel, runtime, state, "conversation", [photo, persona],
         lambda _settings, img, p: {"image": img, "persona": p or ""}, stored)
    return panel, persona


def clone_tab(runtime: Runtime, state: gr.State, stored: gr.BrowserState | None = None) -> Panel:
    names, why = voices.cloned_voices(runtime.settings)
    backend_why = why_unavailable(spec("tts", voices.CLONE_TTS), runtime.checkpoints)
    problem = why or backend_why
    if problem:
        gr.Markdown(f"**Voice cloning is unavailable here:** {problem}. "
                    "The avatar answers with the configured voice instead.", elem_id="clone-notice")
    else:
        gr.Markdown("Chat in a cloned voice. Add your own voice from a 3-10 second recording below.")
    with gr.Row():
        voice = gr.Dropdown(names, value=names[0] if names else None, label="Cloned voice",
                            interactive=bool(names), elem_id="clone-voice")
        photo = gr.Image(value=str(next(iter(BUILTIN_AVATARS.values()))), sources=["upload", "webcam"],
                         type="filepath", image_mode="RGB", label="Portrait", height=200, elem_id="clone-image")
    if why is None:
        _add_voice_form(runtime, voice)
    panel = build_panel("clone")

    def args(_settings, img, name):
        if problem or not name:
            return {"image": img}
        return {"image": img, "tts": voices.CLONE_TTS, "tts_options": {"voice": name}}

    wire(panel, runtime, state, "clone", [photo, voice], args, stored)
    return panel


def _add_voice_form(runtime: Runtime, voice: gr.Dropdown) -> None:
    """A new library voice from a short clip; the library checks length, silence and clipping."""
    with gr.Accordion("Add a voice", open=False):
        with gr.Row():
            clip = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Reference clip (3-10 s)")
            with gr.Column():
                name = gr.Textbox(label="Voice name")
                transcript = gr.Textbox(label="What the clip says, word for word")
                language = gr.Radio(["en", "zh"], value="en", label="Language of the clip")
                add = gr.Button("Add voice")
        note = gr.Markdown()

    def on_add(path, voice_name, said, lang):
        from app_modules.errors import TalkerError

        if not path:
            return gr.skip(), "Record or upload a clip first."
        try:
            added = voices.voice_library(runtime.settings).add(voice_name, path, said, lang)
        except TalkerError as e:
            return gr.skip(), f"⚠️ {e}"
        names, _ = voices.cloned_voices(runtime.settings)
        return gr.Dropdown(choices=names, value=added.name), f"Added the voice {added.name!r}."

    # the library is shared by the process: a voice added here is offered to every visitor
    add.click(on_add, [clip, name, transcript, language], [voice, note], api_name=False, concurrency_limit=None)
