"""A small WebRTC offer/answer server: one ``ConversationEngine`` per peer connection.

    POST /offer  {"sdp": ..., "type": "offer"}  ->  {"sdp": ..., "type": "answer", "session": id}

The peer sends its microphone as an audio track and receives the avatar's audio and video tracks.
If it opens a data channel, the session's events (state, transcript, reply, error) arrive on it as
JSON. The whole offer is answered at once (no trickle ICE), which keeps the client a single request.

TURN. On a LAN or on one machine the peers reach each other directly and no ICE server is needed
(and none is used: no request leaves the machine). Across the internet, behind NAT, give a TURN
server to both sides, in the settings file's ``realtime`` section (``turn_url``, ``turn_username``,
``turn_credential``) or through the environment, which takes precedence field by field (so the
credential can stay out of the file):

    TALKER_TURN_URL=turn:turn.example.org:3478?transport=udp
    TALKER_TURN_USERNAME=talker
    TALKER_TURN_CREDENTIAL=secret

and the same server in the browser's ``RTCPeerConnection({iceServers: [...]})``. coturn is a common
choice (``turnserver -a -u talker:secret -r talker``); open UDP 3478 and its relay port range.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from app_modules.config import TURN_URL_SCHEMES, RealtimeSettings
from app_modules.errors import BusyError
from app_modules.realtime.engine import ConversationEngine
from app_modules.realtime.webrtc import EngineAudioTrack, EngineVideoTrack, feed_microphone

log = logging.getLogger(__name__)

EngineFactory = Callable[[Callable[[dict[str, Any]], None]], ConversationEngine]


def ice_servers_from_env(env: dict[str, str] | None = None,
                         settings: RealtimeSettings | None = None) -> list[RTCIceServer]:
    """The TURN server of the settings' ``realtime`` section, each field overridden by its
    ``TALKER_TURN_URL`` / ``TALKER_TURN_USERNAME`` / ``TALKER_TURN_CREDENTIAL`` where set; or none."""
    env = os.environ if env is None else env
    url, username, credential = (settings or RealtimeSettings()).turn_server(env)
    if not url:
        return []
    if not url.startswith(TURN_URL_SCHEMES):
        raise ValueError(f"the TURN URL (TALKER_TURN_URL or realtime.turn_url) must start with turn:, turns: "
                         f"or stun:, got {url!r}")
    return [RTCIceServer(urls=[url], username=username or None, credential=credential or None)]


@dataclass
class PeerSession:
    """One connected browser (or test client)."""

    id: str
    pc: RTCPeerConnection
    engine: ConversationEngine
    tasks: list[asyncio.Task] = field(default_factory=list)


class RealtimeServer:
    """Serves ``/offer`` on ``host:port``; ``sessions`` holds the live peers by id."""

    def __init__(self, make_engine: EngineFactory, ice_servers: list[RTCIceServer] | None = None,
                 max_sessions: int | None = None):
        """``max_sessions``: live conversations at once (``limits.realtime_sessions``); None for no cap."""
        self.make_engine = make_engine
        # an explicit empty list: aiortc would otherwise ask a public STUN server
        self.ice_servers = ice_servers_from_env() if ice_servers is None else ice_servers
        self.max_sessions = max_sessions
        self.sessions: dict[str, PeerSession] = {}
        self._opening = 0  # offers being answered: they count against the cap before they are sessions
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/offer", self.offer)
        app.on_shutdown.append(lambda _app: self.close_all())
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen (port 0: any free port); returns the port."""
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port the OS picked
        return self.port

    async def stop(self) -> None:
        await self.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def offer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            offer = RTCSessionDescription(sdp=body["sdp"], type=body["type"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected JSON {sdp, type} with a WebRTC offer"}, status=400)
        try:
            answer, session_id = await self.accept(offer)
        except BusyError as e:
            return web.json_response({"error": str(e)}, status=503)
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "session": session_id})

    async def accept(self, offer: RTCSessionDescription,
                     make_engine: EngineFactory | None = None) -> tuple[RTCSessionDescription, str]:
        """Create the session for ``offer`` (its engine from ``make_engine``, default the server's);
        returns the answer and the session's id. When the engine cannot be made, nothing is opened;
        beyond ``max_sessions`` live conversations it raises ``BusyError``."""
        if self.max_sessions is not None and len(self.sessions) + self._opening >= self.max_sessions:
            raise BusyError(f"the server is busy: {self.max_sessions} live conversation(s) already, the most it "
                            "takes (limits.realtime_sessions); try again later or use the chat tabs")
        self._opening += 1
        try:
            return await self._accept(offer, make_engine)
        finally:
            self._opening -= 1

    async def _accept(self, offer: RTCSessionDescription,
                      make_engine: EngineFactory | None) -> tuple[RTCSessionDescription, str]:
        loop = asyncio.get_running_loop()
        channels: list[Any] = []

        def on_event(event: dict[str, Any]) -> None:
            # engine events come from worker threads; data channels belong to the loop
            text = json.dumps(event)
            for ch in channels:
                loop.call_soon_threadsafe(_send, ch, text)

        # loading the avatar (face analysis) can take a while: keep the loop serving other peers
        engine = await asyncio.to_thread(make_engine or self.make_engine, on_event)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))
        session = PeerSession(uuid.uuid4().hex[:12], pc, engine)
        self.sessions[session.id] = session

        @pc.on("datachannel")
        def on_datachannel(channel):
            channels.append(channel)

        @pc.on("track")
        def on_track(track):
            if track.kind == "audio":
                session.tasks.append(asyncio.ensure_future(feed_microphone(track, engine)))

        @pc.on("connectionstatechange")
        async def on_state():
            if pc.connectionState in ("failed", "closed"):
                await self.close(session.id)

        await pc.setRemoteDescription(offer)
        pc.addTrack(EngineAudioTrack(engine))
        if engine.has_video:
            pc.addTrack(EngineVideoTrack(engine))
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)  # waits for ICE gathering: the answer has every candidate
        return pc.localDescription, session.id

    async def close(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        session.engine.close()
        for t in session.tasks:
            t.cancel()
        await session.pc.close()

    async def close_all(self) -> None:
        for sid in list(self.sessions):
            await self.close(sid)


def _send(channel, text: str) -> None:
    if channel.readyState == "open":
        channel.send(text)
