"""The OpenAI-compatible backend against a real local HTTP server speaking chat completions (SSE)."""

from __future__ import annotations

import socket
import time

import pytest

from app_modules.errors import StageError, TalkerError
from app_modules.history import ChatHistory
from LLM import presets
from LLM.openai_llm import OpenAILLM
from tests.fakes.openai_server import OpenAIServer, Reply

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server():
    with OpenAIServer() as s:
        yield s


def make(server, **kw) -> OpenAILLM:
    kw.setdefault("retries", 0)
    kw.setdefault("timeout", 5.0)
    return OpenAILLM(OpenAILLM.Options(base_url=server.base_url, model="fake-model", **kw))


def free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streams_the_reply_piece_by_piece(server):
    server.script(Reply.text(["Hello", " there", ", Ann."]))
    assert list(make(server).stream(HI)) == ["Hello", " there", ", Ann."]


def test_sends_history_system_prompt_and_options(server):
    h = ChatHistory(system_prompt="You are Ann.")
    h.commit("My name is Bo.", "Hi Bo!")
    llm = make(server, temperature=0.2, max_tokens=64)
    messages = h.messages("What is my name?", llm.count_tokens, llm.context_tokens, llm.reply_tokens)
    list(llm.stream(messages))
    body = server.chat_requests[-1].body
    assert body["messages"] == messages
    assert body["model"] == "fake-model" and body["stream"] is True
    assert body["temperature"] == 0.2 and body["max_tokens"] == 64
    assert messages[-1] == {"role": "user", "content": "What is my name?"}


def test_stream_does_not_change_messages(server):
    msgs = [{"role": "system", "content": "p"}, {"role": "user", "content": "hi"}]
    before = [dict(m) for m in msgs]
    list(make(server, speakable=True).stream(msgs))
    assert msgs == before


def test_speakable_option_adds_the_instruction_to_the_system_prompt(server):
    list(make(server, speakable=True).stream([{"role": "system", "content": "You are Ann."}] + HI))
    system = server.chat_requests[-1].body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are Ann.")
    assert "no markdown" in system["content"].lower() or "not use markdown" in system["content"].lower()


def test_history_trimmed_to_the_context_oldest_first(server):
    h = ChatHistory(system_prompt="persona")
    for i in range(40):
        h.commit(f"question {i} " + "words " * 30, f"answer {i} " + "words " * 30)
    llm = make(server, context_tokens=400, max_tokens=100)
    list(llm.stream(h.messages("last question", llm.count_tokens, llm.context_tokens, llm.reply_tokens)))
    sent = server.chat_requests[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "persona"}
    assert sent[-1] == {"role": "user", "content": "last question"}
    assert sent[-2]["content"].startswith("answer 39")  # the newest turn is kept
    assert not any(m["content"].startswith("question 0 ") for m in sent)  # the oldest is gone
    assert sum(llm.count_tokens(m["content"]) + 4 for m in sent) + 100 <= 400
    assert 0 < h.dropped < 40


def test_think_blocks_are_not_streamed(server):
    server.script(Reply.text(["<thi", "nk>let me think", "</think>", "Paris."]))
    assert "".join(make(server).stream(HI)) == "Paris."


def test_broken_stream_gives_a_stage_error_after_the_partial_text(server):
    server.script(Reply.broken(["Half", " an"]))
    got = []
    with pytest.raises(StageError, match="broke off") as e:
        for piece in make(server).stream(HI):
            got.append(piece)
    assert got == ["Half", " an"] and e.value.stage == "llm"


def test_slow_server_times_out_with_a_message(server):
    server.script(Reply.slow(delay=3.0))
    t0 = time.perf_counter()
    with pytest.raises(StageError, match=r"no answer from .* within 0.3 s"):
        list(make(server, timeout=0.3).stream(HI))
    assert time.perf_counter() - t0 < 2.5


def test_slow_but_in_time_reply_arrives(server):
    server.script(Reply.text(["a", "b"], piece_delay=0.2))
    assert "".join(make(server, timeout=2.0).stream(HI)) == "ab"


def test_http_500_is_retried_then_succeeds(server):
    server.script(Reply.error(500), Reply.text("Fine."))
    assert "".join(make(server, retries=2).stream(HI)) == "Fine."
    assert len(server.chat_requests) == 2


def test_http_500_after_all_retries_gives_a_message(server):
    server.script(Reply.error(500, "model crashed"), Reply.error(500, "model crashed"))
    with pytest.raises(StageError, match=r"HTTP 500 \(2 tries\): model crashed"):
        list(make(server, retries=1).stream(HI))
    assert len(server.chat_requests) == 2


def test_unknown_model_names_the_fix(server):
    server.script(Reply.error(404, "model 'nope' not found"))
    with pytest.raises(StageError, match="set openai.model"):
        list(make(server).stream(HI))


def test_garbage_stream_says_the_endpoint_is_wrong(server):
    server.script(Reply.garbage())
    with pytest.raises(StageError, match="not an OpenAI chat-completions stream"):
        list(make(server).stream(HI))


def test_connection_refused_names_ollama_and_base_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(StageError, match=r"no LLM server answers at .*set openai.base_url"):
        list(OpenAILLM(OpenAILLM.Options(base_url=url, retries=0, timeout=2)).stream(HI))


def test_default_url_message_says_start_ollama():
    llm = OpenAILLM(OpenAILLM.Options(retries=0))
    e = StageError("llm", llm._explain(_connection_error(), started=False))
    assert "no LLM server answers at http://127.0.0.1:11434/v1: start Ollama (`ollama serve`)" in str(e)


def _connection_error():
    import httpx2
    import openai

    return openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1:11434/v1/chat/completions"))


def test_api_key_is_sent_but_never_shown(server, monkeypatch):
    secret = "sk-test-SECRET-1234"
    server.script(Reply.error(401, f"Incorrect API key provided: {secret}"))
    llm = make(server, api_key=secret)
    assert secret not in repr(llm) and secret not in repr(llm.options)
    with pytest.raises(StageError) as e:
        list(llm.stream(HI))
    assert secret not in str(e.value) and "refused the API key" in str(e.value)
    assert server.chat_requests[-1].headers["authorization"] == f"Bearer {secret}"


def test_keys_of_other_services_are_not_sent_to_local_servers(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-should-stay-home")
    list(make(server).stream(HI))
    assert "sk-openai" not in server.chat_requests[-1].headers.get("authorization", "")


def test_presets_fill_url_model_and_key_from_env(monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deep")
    llm = OpenAILLM(OpenAILLM.Options(preset="deepseek"))
    assert (llm.base_url, llm.model) == ("https://api.deepseek.com/v1", "deepseek-chat")
    assert llm._key == "sk-deep"
    # an explicit model wins over the preset's
    assert OpenAILLM(OpenAILLM.Options(preset="dashscope", model="qwen-max")).model == "qwen-max"
    assert presets.detect("https://dashscope.aliyuncs.com/compatible-mode/v1").key_env == "DASHSCOPE_API_KEY"
    assert presets.detect("http://127.0.0.1:8080/v1").name == "llamacpp"


def test_missing_key_for_a_remote_preset_says_which_variable(monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(StageError, match="DASHSCOPE_API_KEY"):
        list(OpenAILLM(OpenAILLM.Options(preset="dashscope")).stream(HI))


@pytest.mark.parametrize("bad", [dict(preset="nope"), dict(base_url="localhost:11434"), dict(temperature=3.0),
                                 dict(max_tokens=9000), dict(timeout=0)])
def test_bad_options_are_refused_before_any_work(bad):
    with pytest.raises(TalkerError):
        OpenAILLM(OpenAILLM.Options(**bad))


def test_models_are_listed(server):
    assert make(server).list_models() == ["fake-model"]


def test_registry_builds_it_from_settings_options(server):
    from app_modules import registry

    llm = registry.create("llm", "openai", {"base_url": server.base_url, "model": "m", "retries": "0"})
    assert "".join(llm.stream(HI)) == "Hello there."


@pytest.mark.parametrize("url", ["http://api.openai.com.attacker.example/v1", "http://api.openai.com/v1",
                                 "http://evil.example/api.openai.com/v1"])
def test_a_look_alike_host_never_gets_the_environments_key(server, monkeypatch, url):
    # the local server stands in for the other host: it is the HTTP proxy every request goes through
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-SECRET-look-alike")
    monkeypatch.setenv("HTTP_PROXY", server.root_url)
    for var in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    llm = OpenAILLM(OpenAILLM.Options(base_url=url, retries=0, timeout=5))
    assert "".join(llm.stream(HI)) == "Hello there."
    request = server.chat_requests[-1]
    assert request.path.startswith(url.split("/v1")[0])  # it really went to the other host, via the proxy
    assert "sk-env-SECRET" not in str(request.headers)


def test_keys_go_only_to_their_own_host_over_https(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-o")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-d")
    assert presets.key_for("https://api.openai.com/v1") == "sk-o"
    assert presets.key_for("https://API.OpenAI.com./v1") == "sk-o"
    assert presets.key_for("https://dashscope-intl.aliyuncs.com/compatible-mode/v1") == "sk-d"
    for url in ("https://api.openai.com.attacker.example/v1", "http://api.openai.com/v1",
                "https://api.openai.com:8443/v1", "https://xapi.openai.com/v1", "https://dashscope.evil.example/v1",
                "https://evil.example/?h=api.openai.com", "https://api.openai.com@evil.example/v1", "not a url"):
        assert presets.key_for(url) == "", url
