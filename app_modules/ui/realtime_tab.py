"""The "Real-time" tab: talk to the avatar over WebRTC, no buttons; speak again to interrupt it.

The browser streams its microphone to the server and receives the avatar's voice and face through
fastrtc's WebRTC component; ``app_modules.realtime`` does the listening, answering and interrupting.
Each browser connection gets its own engine, history and session folder (removed when it closes).

On a LAN or on one machine no ICE server is needed. Across the internet, set a TURN server for both
sides with ``TALKER_TURN_URL`` (``turn:host:3478``), ``TALKER_TURN_USERNAME`` and
``TALKER_TURN_CREDENTIAL`` (see ``app_modules/realtime/server.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from app_modules import media
from app_modules.errors import TalkerError
from app_modules.history import ChatHistory
from app_modules.ui.runtime import Runtime
from app_modules.ui.session import Session

PORTRAIT = Path(__file__).resolve().parent / "assets" / "grace_hopper.jpg"
PERSONA = "You are a friendly assistant in a spoken conversation. Answer in one to three short sentences."


def rtc_configuration(env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The browser's ICE servers: the TURN server from the environment, else None (direct only)."""
    env = os.environ if env is None else env
    url = env.get("TALKER_TURN_URL", "").strip()
    if not url:
        return None
    server = {"urls": [url]}
    if env.get("TALKER_TURN_USERNAME"):
        server |= {"username": env["TALKER_TURN_USERNAME"], "credential": env.get("TALKER_TURN_CREDENTIAL", "")}
    return {"iceServers": [server]}


def engine_factory(runtime: Runtime, portrait: Path = PORTRAIT, persona: str = PERSONA):
    """Makes one ``ConversationEngine`` per connection over the runtime's shared backends."""
    from app_modules.realtime.engine import ConversationEngine

    def make(on_event):
        pipeline = runtime.pipeline(need_asr=True, need_video=True)
        session = Session.create(runtime.settings)
        try:
            return ConversationEngine(pipeline, ChatHistory(persona), session.workdir,
                                      image=media.load_image(portrait), on_event=on_event, on_close=session.close)
        except BaseException:
            session.close()
            raise

    return make


def realtime_tab(runtime: Runtime) -> None:
    """Add the tab (call inside ``gr.Tabs``). Without fastrtc it says how to install it instead."""
    with gr.Tab("Real-time", id="realtime"):
        try:
            from fastrtc import WebRTC

            from app_modules.realtime.fastrtc_handler import EngineHandler
        except (ImportError, TalkerError) as e:
            gr.Markdown(f"Real-time conversation is not available here: {e}\n\n"
                        "Install it with `pip install aiortc librosa && pip install --no-deps fastrtc`.")
            return
        gr.Markdown("Press **Record**, allow the microphone, and just talk: the avatar answers when you "
                    "pause. Speak while it talks to interrupt it.")
        with gr.Row():
            with gr.Column(scale=1):
                rtc = WebRTC(label="Avatar", modality="audio-video", mode="send-receive",
                             rtc_configuration=rtc_configuration(),
                             # the server side of the connection: no public STUN server by default
                             server_rtc_configuration=rtc_configuration() or {"iceServers": []},
                             elem_id="realtime-webrtc")
            with gr.Column(scale=1):
                chat = gr.Chatbot(label="Conversation", elem_id="realtime-chat", height=420)
        rtc.stream(EngineHandler(engine_factory(runtime)), inputs=[rtc], outputs=[rtc], time_limit=None,
                   concurrency_limit=max(1, runtime.settings.server.concurrency))
        rtc.on_additional_outputs(lambda messages: messages, outputs=[chat], queue=False, show_progress="hidden")
