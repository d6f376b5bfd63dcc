"""The "Real-time" tab: talk to the avatar over WebRTC, no buttons; speak again to interrupt it.

The browser streams its microphone to the server and receives the avatar's voice and face over one
WebRTC connection; ``app_modules.realtime`` does the listening, answering and interrupting. Each
connection gets its own engine, history and session folder (removed when it closes).

The page side is a small ``gr.HTML`` component: its script opens the connection and hands the offer
to a Python server function on Gradio's own event loop, where aiortc answers it, so no second port
is opened. (fastrtc's WebRTC component was the first choice, but its front end is built for Gradio 5
and does not load in Gradio 6; ``app_modules.realtime.fastrtc_handler`` serves fastrtc's own
endpoints instead.)

On a LAN or on one machine no ICE server is needed. Across the internet, set a TURN server for both
sides in the settings file's ``realtime`` section (``turn_url: turn:host:3478``, ``turn_username``,
``turn_credential``) or with ``TALKER_TURN_URL``, ``TALKER_TURN_USERNAME`` and
``TALKER_TURN_CREDENTIAL``, which take precedence (see ``app_modules/realtime/server.py``). The same
section sets when a turn ends and how quickly speech interrupts the avatar (``end_silence_ms``,
``min_utterance_ms``, ``onset_ms``).
"""

from __future__ import annotations

import asyncio
import html
import json
import os
from pathlib import Path
from typing import Any

import gradio as gr

from app_modules.config import RealtimeSettings, Settings
from app_modules.errors import BadInputError, BusyError, TalkerError
from app_modules.history import ChatHistory
from app_modules.ui.runtime import Runtime
from app_modules.ui.session import Session
from app_modules.ui.turns import error_text
from app_modules.ui.turns import portrait as portrait_array

PORTRAIT = Path(__file__).resolve().parent / "assets" / "grace_hopper.jpg"
PERSONA = "You are a friendly assistant in a spoken conversation. Answer in one to three short sentences."

HTML = """
<div class="rt">
  <video class="rt-video" autoplay playsinline></video>
  <div class="rt-bar">
    <button class="rt-start">Start talking</button>
    <button class="rt-stop" disabled>Stop</button>
    <span class="rt-state">not connected</span>
  </div>
  <div class="rt-log"></div>
</div>
"""

CSS = """
.rt-video { width: 100%; max-height: 520px; background: #111; border-radius: 8px; }
.rt-bar { display: flex; gap: 8px; align-items: center; margin: 8px 0; }
.rt-bar button { padding: 6px 14px; border-radius: 6px; border: 1px solid #999; }
.rt-log { max-height: 260px; overflow-y: auto; font-size: 0.95em; }
.rt-log .user { font-weight: 600; }
.rt-log .cut { opacity: 0.7; }
"""

# The browser half: microphone in, avatar out, events into the log. Echo cancellation matters: without
# it the avatar hears its own voice through the speakers and interrupts itself.
JS = """
const video = element.querySelector('.rt-video');
const start = element.querySelector('.rt-start');
const stop = element.querySelector('.rt-stop');
const state = element.querySelector('.rt-state');
const log = element.querySelector('.rt-log');
let pc = null;
function line(cls, text) {
  const p = document.createElement('div'); p.className = cls; p.textContent = text;
  log.appendChild(p); log.scrollTop = log.scrollHeight;
}
async function connect() {
  start.disabled = true; state.textContent = 'connecting…';
  try {
    const mic = await navigator.mediaDevices.getUserMedia(
      {audio: {echoCancellation: true, noiseSuppression: true, autoGainControl: true}});
    pc = new RTCPeerConnection(JSON.parse(element.querySelector('.rt').dataset.rtc || '{}'));
    mic.getTracks().forEach(t => pc.addTrack(t, mic));
    pc.addTransceiver('video', {direction: 'recvonly'});
    const remote = new MediaStream();
    video.srcObject = remote;
    pc.ontrack = (ev) => { remote.addTrack(ev.track); video.play().catch(() => {}); };
    const events = pc.createDataChannel('events');
    events.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      if (ev.type === 'state') state.textContent = ev.state;
      else if (ev.type === 'queue') state.textContent = ev.message;
      else if (ev.type === 'transcript') line('user', 'You: ' + ev.text);
      else if (ev.type === 'reply') {
        line(ev.interrupted ? 'cut' : 'bot', 'Avatar: ' + ev.text + (ev.interrupted ? ' …' : ''));
      }
      else if (ev.type === 'error') line('err', '⚠ ' + ev.stage + ': ' + ev.message);
    };
    pc.onconnectionstatechange = () => {
      if (['failed', 'closed', 'disconnected'].includes(pc.connectionState)) hangup(pc.connectionState);
    };
    await pc.setLocalDescription(await pc.createOffer());
    // send the offer once every candidate is in it (one request, no trickle ICE)
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
      setTimeout(resolve, 3000);
    });
    const answer = await server.realtime_offer({sdp: pc.localDescription.sdp, type: pc.localDescription.type});
    if (answer.error) { line('err', answer.error); throw new Error(answer.error); }
    await pc.setRemoteDescription(answer);
    stop.disabled = false; state.textContent = 'listening';
  } catch (e) {
    hangup('error: ' + (e.message || e));
  }
}
function hangup(why) {
  if (pc) { pc.getSenders().forEach(s => s.track && s.track.stop()); pc.close(); pc = null; }
  start.disabled = false; stop.disabled = true; state.textContent = why || 'not connected';
}
start.addEventListener('click', connect);
stop.addEventListener('click', () => hangup('stopped'));
"""


def rtc_configuration(env: dict[str, str] | None = None,
                      settings: RealtimeSettings | None = None) -> dict[str, Any] | None:
    """The browser's ICE servers: the TURN server of the ``realtime`` settings, each field overridden
    by its environment variable where set; None when there is none (direct only)."""
    env = os.environ if env is None else env
    url, username, credential = (settings or RealtimeSettings()).turn_server(env)
    if not url:
        return None
    server = {"urls": [url]}
    if username:
        server |= {"username": username, "credential": credential}
    return {"iceServers": [server]}


def engine_settings(settings: RealtimeSettings):
    """A live session's ``EngineSettings``: turn-taking as the ``realtime`` settings say."""
    from app_modules.realtime.engine import EngineSettings
    from app_modules.realtime.turn_vad import TurnOptions

    return EngineSettings(turn=TurnOptions.from_settings(settings))


def engine_factory(runtime: Runtime, portrait: Any = PORTRAIT, persona: str = PERSONA,
                   settings: Settings | None = None, session_hash: str | None = None):
    """Makes one ``ConversationEngine`` per connection that animates ``portrait`` (a path or an image
    component's array) over the runtime's shared backends, as ``settings`` (a browser session's own;
    default: the process's) choose them, taking when a turn starts and ends from their ``realtime``
    section. Raises ``BadInputError`` at once for a value that is no picture."""
    from app_modules.realtime.engine import ConversationEngine

    s = settings or runtime.settings
    live = engine_settings(s.realtime)
    face = portrait_array(portrait, runtime.settings.limits)

    def make(on_event):
        # the same path as the chat tabs' turns: the session's backends, shared with every session choosing them
        pipeline = runtime.pipeline(settings=s, need_asr=True, need_video=True)
        session = Session.create(s, session_hash)
        try:
            return ConversationEngine(pipeline, ChatHistory(persona), session.workdir, image=face, settings=live,
                                      on_event=on_event, on_close=session.close)
        except BaseException:
            session.close()
            raise

    return make


def connect_error(e: TalkerError) -> str:
    """The message a connection that cannot start shows, worded as the chat tabs word it."""
    if isinstance(e, BusyError):
        return f"⚠️ {e}"
    stage = "input" if isinstance(e, BadInputError) else getattr(e, "stage", "setup")
    return error_text(stage, str(e).removeprefix(f"{getattr(e, 'stage', '')}: "))


def session_engine_factory(runtime: Runtime, session: Any, portrait: Any, session_hash: str | None = None):
    """The engine factory for one browser session's "Start talking": its own settings (or the defaults,
    before it has a ``Session``) and the photo it chose. The portrait is checked here, before any
    connection opens: a photo without a face raises ``BadInputError`` (see ``connect_error``)."""
    settings = session.settings if isinstance(session, Session) else runtime.settings
    make = engine_factory(runtime, portrait, settings=settings, session_hash=session_hash)
    # the face analysis is cached by the pipeline, so the engine does not repeat it
    runtime.pipeline(settings=settings, need_asr=True, need_video=True).avatar(
        portrait_array(portrait, runtime.settings.limits))
    return make


async def page_state(request: Any) -> tuple[str | None, Any]:
    """The page's session hash and Gradio's state of that page (``state[component._id]`` is a
    ``gr.State``'s value there), or None for a page Gradio does not know yet.

    A server function gets no event inputs, only its arguments and the request; the request's body
    names the page's session, whose state Gradio keeps in ``state_holder``."""
    session_hash = getattr(request, "session_hash", None)
    if not session_hash:
        try:
            session_hash = (await request.json()).get("session_hash")  # the body is cached, not read twice
        except Exception:  # noqa: BLE001 - not an HTTP request with a JSON body
            session_hash = None
    holder = getattr(getattr(request, "app", None), "state_holder", None)
    if not session_hash or holder is None or session_hash not in holder:
        return session_hash, None
    return session_hash, holder[session_hash]


def realtime_tab(runtime: Runtime, state: gr.State | None = None) -> None:
    """Add the tab (call inside ``gr.Tabs``). ``state`` is the page's ``Session`` state; without it the
    tab talks with the default settings. Without aiortc it says how to install it instead."""
    with gr.Tab("Real-time", id="realtime"):
        try:
            from aiortc import RTCSessionDescription

            from app_modules.realtime.server import RealtimeServer, ice_servers_from_env
        except (ImportError, TalkerError) as e:
            gr.Markdown(f"Real-time conversation is not available here: {e}\n\nInstall it with `pip install aiortc`.")
            return
        realtime = runtime.settings.realtime
        peers = RealtimeServer(engine_factory(runtime), ice_servers=ice_servers_from_env(settings=realtime),
                               max_sessions=runtime.settings.limits.realtime_sessions)

        gr.Markdown("Choose the portrait that talks (upload one or take one with the webcam), press **Start "
                    "talking**, allow the microphone, and just talk: the avatar answers when you pause. Speak "
                    "while it talks to interrupt it. Use headphones, or a browser with echo cancellation, so it "
                    "does not hear itself.")
        # a file, not an array: its size is read from the header before it is decoded (limits.image_pixels)
        photo = gr.Image(value=str(PORTRAIT), sources=["upload", "webcam"], type="filepath", image_mode="RGB",
                         label="Portrait", height=220, elem_id="realtime-image")
        # the photo "Start talking" uses: this page's own copy, kept current by the picker
        chosen = gr.State(str(PORTRAIT))
        photo.change(lambda img: img, photo, chosen, api_name=False, concurrency_limit=None, show_progress="hidden")

        async def realtime_offer(offer: dict[str, Any], request: gr.Request) -> dict[str, Any]:
            """Answer the browser's offer with an engine for this page's photo and session settings; the
            connection then lives on Gradio's event loop."""
            try:
                desc = RTCSessionDescription(sdp=offer["sdp"], type=offer["type"])
            except (KeyError, TypeError, ValueError) as e:
                return {"error": f"not a WebRTC offer: {e}"}
            session_hash, page = await page_state(request)
            # a page that never sent an event yet still shows the defaults: built-in portrait, default settings
            session = page[state._id] if page is not None and state is not None else None
            image = page[chosen._id] if page is not None else str(PORTRAIT)
            try:
                make = await asyncio.to_thread(session_engine_factory, runtime, session, image, session_hash)
                answer, _ = await peers.accept(desc, make)
            except TalkerError as e:
                return {"error": connect_error(e)}  # e.g. no face in the photo, or a backend that cannot load
            return {"sdp": answer.sdp, "type": answer.type}

        rtc = html.escape(json.dumps(rtc_configuration(settings=realtime) or {}), quote=True)
        gr.HTML(HTML.replace('class="rt"', f'class="rt" data-rtc="{rtc}"', 1), css_template=CSS, js_on_load=JS,
                server_functions=[realtime_offer], elem_id="realtime-panel", container=False)
