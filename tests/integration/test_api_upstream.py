"""The HTTP API (a real uvicorn server on 127.0.0.1) in front of an LLM at a look-alike host: a local
server stands in for ``api.openai.com.attacker.example`` (it is the HTTP proxy every request goes
through) and records what it receives. The server's own key never reaches it; a stream that breaks
ends with an error event and nothing after it; an answer over ``limits.answer_chars`` is cut."""

from __future__ import annotations

import json
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from app_modules import config
from app_modules.api import create_app
from tests.fakes.openai_server import OpenAIServer, Reply
from tests.helpers.webui import free_port

KEY = "sk-env-SECRET-never-to-a-look-alike"
LOOK_ALIKE = "http://api.openai.com.attacker.example/v1"


@pytest.fixture(scope="module")
def upstream():
    with OpenAIServer() as s:
        yield s


@pytest.fixture(scope="module")
def api(upstream, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", KEY)
    mp.setenv("HTTP_PROXY", upstream.root_url)
    for var in ("NO_PROXY", "no_proxy", "http_proxy"):
        mp.delenv(var, raising=False)
    settings = config.load(None, ["llm=openai", f"openai.base_url={LOOK_ALIKE}", "openai.model=fake-model",
                                  "openai.retries=0", "tts=espeak", "thg=lite", "limits.answer_chars=300",
                                  f"pipeline.workdir={tmp_path_factory.mktemp('api')}"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        mp.undo()


def _post(url: str, **kw):
    # this process has HTTP_PROXY set too (for the server under test): its own calls go direct
    with httpx.Client(trust_env=False) as c:
        return c.post(url, **kw)


def _events(r) -> list[dict]:
    return [json.loads(x) for x in r.text.splitlines() if x.strip()]


def test_the_look_alike_host_never_receives_the_key(api, upstream):
    r = _post(f"{api}/api/chat", json={"text": "Hello?"}, timeout=60)
    assert r.status_code == 200 and _events(r)[-1] == {"type": "done", "reply": "Hello there."}
    request = upstream.chat_requests[-1]
    assert request.path == LOOK_ALIKE + "/chat/completions"  # it reached the other host
    assert KEY not in json.dumps(request.headers) and KEY not in json.dumps(request.body)


def test_nothing_follows_an_error_event(api, upstream, portrait_path):
    upstream.script(Reply.broken(["First sentence is here. ", "Second sentence is here. ", "Thi"]))
    r = _post(f"{api}/api/turn", data={"text": "Tell me."}, timeout=120,
                   files={"image": ("face.jpg", portrait_path.read_bytes(), "image/jpeg")})
    events = _events(r)
    kinds = [e["type"] for e in events]
    assert "error" in kinds and kinds.index("error") == len(kinds) - 1, kinds
    assert events[-1]["stage"] == "llm" and "broke off" in events[-1]["message"]


def test_a_long_answer_is_cut_at_the_limit(api, upstream, portrait_path):
    upstream.script(Reply.text("This answer goes on and on. " * 200))
    r = _post(f"{api}/api/turn", data={"text": "Talk a lot."}, timeout=300,
                   files={"image": ("face.jpg", portrait_path.read_bytes(), "image/jpeg")})
    events = _events(r)
    assert events[-1]["type"] == "result", events[-1]
    assert len(events[-1]["reply"]) <= 300
    assert any(e["type"] == "progress" and "limits.answer_chars" in e["message"] for e in events)
