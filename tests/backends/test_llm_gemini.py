"""The Gemini backend on the google-genai SDK: what the SDK puts on the wire, and streaming against a
local stand-in of the REST API."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from app_modules.errors import StageError
from app_modules.history import ChatHistory
from LLM.gemini_llm import GeminiLLM
from tests.fakes.gemini_server import GeminiServer, Reply

HI = [{"role": "user", "content": "hi"}]
KEY = "AIza-test-SECRET"


@pytest.fixture
def server():
    with GeminiServer() as s:
        yield s


def make(server, **kw) -> GeminiLLM:
    kw.setdefault("retries", 0)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("api_key", KEY)
    return GeminiLLM(GeminiLLM.Options(base_url=server.base_url, **kw))


def test_request_maps_persona_history_and_options(server):
    h = ChatHistory(system_prompt="You are Ann.")
    h.commit("I am Bo.", "Hi Bo!")
    server.script(Reply.text("Ann."))
    llm = make(server, temperature=0.3, max_tokens=99)
    assert "".join(llm.stream(h.messages("Who am I?"))) == "Ann."
    assert server.chat_requests[-1].body == {  # what the SDK put on the wire
        "contents": [{"role": "user", "parts": [{"text": "I am Bo."}]},
                     {"role": "model", "parts": [{"text": "Hi Bo!"}]},
                     {"role": "user", "parts": [{"text": "Who am I?"}]}],
        "systemInstruction": {"parts": [{"text": "You are Ann."}]},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 99},
    }


def test_consecutive_messages_of_one_role_are_merged(server):
    server.script(Reply.text("Hi."))
    assert "".join(make(server).stream(HI + [{"role": "user", "content": "there"}])) == "Hi."
    body = server.chat_requests[-1].body
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}, {"text": "there"}]}]
    assert "systemInstruction" not in body


def test_streams_and_sends_the_key_in_a_header_only(server):
    server.script(Reply.text(["Hello", " Bo."]))
    llm = make(server, speakable=True)
    assert list(llm.stream([{"role": "system", "content": "p"}] + HI)) == ["Hello", " Bo."]
    req = server.chat_requests[-1]
    assert req.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert req.headers["x-goog-api-key"] == KEY and KEY not in req.path
    assert "markdown" in req.body["systemInstruction"]["parts"][0]["text"]
    assert KEY not in repr(llm) and KEY not in repr(llm.options)


def test_base_url_without_a_version_is_used_as_is(server):
    server.script(Reply.text("Hi."))
    llm = GeminiLLM(GeminiLLM.Options(base_url=server.root_url + "/proxy/", api_key=KEY, retries=0, timeout=5.0))
    assert "".join(llm.stream(HI)) == "Hi."
    assert server.chat_requests[-1].path == "/proxy/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_importing_the_module_does_not_import_the_sdk():
    code = "import sys, LLM.gemini_llm; print('google.genai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_503_is_retried(server):
    server.script(Reply.error(503), Reply.text("Back."))
    assert "".join(make(server, retries=1).stream(HI)) == "Back."
    assert len(server.chat_requests) == 2


def test_error_after_retries_and_bad_key_give_messages_without_the_key(server):
    server.script(Reply.error(500, "boom"), Reply.error(500, "boom"))
    with pytest.raises(StageError, match=r"HTTP 500 \(2 tries\): boom"):
        list(make(server, retries=1).stream(HI))
    server.script(Reply.error(400, f"API key not valid: {KEY}"))
    with pytest.raises(StageError, match="refused the API key") as e:
        list(make(server).stream(HI))
    assert KEY not in str(e.value)


def test_broken_stream_and_garbage(server):
    server.script(Reply.broken(["Half"]), Reply.garbage())
    got = []
    with pytest.raises(StageError, match="broke off"):
        for piece in make(server).stream(HI):
            got.append(piece)
    assert got == ["Half"]
    with pytest.raises(StageError, match="not a Gemini stream"):
        list(make(server).stream(HI))


def test_slow_server_times_out(server):
    server.script(Reply.slow(delay=3.0))
    t0 = time.perf_counter()
    with pytest.raises(StageError, match="no answer from Gemini within 0.3 s"):
        list(make(server, timeout=0.3).stream(HI))
    assert time.perf_counter() - t0 < 2.5


def test_missing_key_names_the_variable(monkeypatch):
    for k in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(StageError, match="GEMINI_API_KEY"):
        list(GeminiLLM(GeminiLLM.Options()).stream(HI))
    monkeypatch.setenv("GOOGLE_API_KEY", "from-env")
    assert GeminiLLM(GeminiLLM.Options())._key == "from-env"


def test_the_environments_key_goes_to_googles_host_only(server, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-env-SECRET")
    llm = make(server, api_key="")  # a local stand-in for another host, and no key of its own
    with pytest.raises(StageError, match="go only to generativelanguage.googleapis.com"):
        list(llm.stream(HI))
    assert server.chat_requests == [] and "AIza-env-SECRET" not in str(server.requests)
    assert GeminiLLM(GeminiLLM.Options())._key == "AIza-env-SECRET"  # Google's own URL gets it
    server.script(Reply.text("Hi."))
    assert "".join(make(server, api_key="operator-key").stream(HI)) == "Hi."  # a key given for that server
