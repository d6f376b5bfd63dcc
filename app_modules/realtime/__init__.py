"""Real-time conversation with the avatar: streaming turn detection, barge-in, WebRTC transport.

    engine.py      the session state machine (listening / thinking / speaking), transport-independent
    turn_vad.py    Silero VAD over live audio: speech onset and end of utterance
    playout.py     sentence segments played against an audio clock; which words were heard
    idle.py        sway and blinks over any backend's frames
    webrtc.py      aiortc tracks around an engine
    server.py      aiortc peers, one engine each; an offer/answer HTTP endpoint (aiohttp); TURN settings
    fastrtc_handler.py  the engine as a fastrtc handler (fastrtc's Stream endpoints and UI)
    client.py      a scripted aiortc peer for tests and benchmarks

Nothing here is imported by the rest of the app until the realtime tab or server is used, so aiortc
stays an optional install: ``pip install aiortc``.
"""
