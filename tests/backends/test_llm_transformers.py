"""The local transformers backend on a tiny random Qwen2 model with a tokenizer trained here (no downloads)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from app_modules.errors import MissingWeightsError, TalkerError  # noqa: E402
from app_modules.history import ChatHistory  # noqa: E402
from LLM.transformers_llm import TransformersLLM  # noqa: E402

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = ["system user assistant", "hello there how are you today", "the quick brown fox jumps over the lazy dog",
          "my name is Ann and I like tea", "what is my name"] * 10


def build_tiny_qwen(folder: Path) -> Path:
    """A random two-layer Qwen2 and a 300-token byte-level BPE with a ChatML template, saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHATML
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, bos_token_id=None, tie_word_embeddings=True))
    # Never end on the first token, so every reply has text to stream (random weights pick anything).
    model.generation_config.min_new_tokens = 2
    tok.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


def make(folder: Path, **kw) -> TransformersLLM:
    kw.setdefault("temperature", 0)
    kw.setdefault("device", "cpu")
    return TransformersLLM(TransformersLLM.Options(model=str(folder), **kw))


MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]


def test_streams_a_reply_from_a_local_folder(tiny):
    llm = make(tiny, max_new_tokens=10)
    pieces = list(llm.stream(MSGS))
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == "".join(llm.stream(MSGS))  # greedy: the same reply again
    assert llm.context_tokens == 512


def test_prompt_goes_through_the_chat_template_with_history(tiny):
    llm = make(tiny)
    h = ChatHistory(system_prompt="be brief")
    h.commit("my name is Ann", "hello Ann")
    prompt = llm.prompt(h.messages("what is my name"))
    assert prompt == ("<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nmy name is Ann<|im_end|>\n"
                      "<|im_start|>assistant\nhello Ann<|im_end|>\n<|im_start|>user\nwhat is my name<|im_end|>\n"
                      "<|im_start|>assistant\n")


def test_count_tokens_uses_the_real_tokenizer_and_trimming_fits(tiny):
    llm = make(tiny, context_tokens=120, max_new_tokens=20)
    assert llm.count_tokens("the quick brown fox") == len(llm.tokenizer.encode("the quick brown fox",
                                                                                add_special_tokens=False))
    h = ChatHistory(system_prompt="be brief")
    for i in range(30):
        h.commit(f"hello there {i}", f"how are you today {i}")
    msgs = h.messages("what is my name", llm.count_tokens, llm.context_tokens, llm.reply_tokens,
                      llm.message_overhead)
    # measured on the template: "<|im_start|>", the role (several tokens in this tiny BPE), "\n", "<|im_end|>", "\n"
    assert llm.message_overhead >= 5
    prompt_tokens = len(llm.tokenizer(llm.prompt(msgs), add_special_tokens=False)["input_ids"])
    assert prompt_tokens + llm.reply_tokens <= llm.context_tokens
    assert msgs[-3]["content"] == "hello there 29" and 0 < h.dropped < 30


def test_a_closed_stream_stops_generation(tiny):
    llm = make(tiny, max_new_tokens=400)
    gen = llm.stream(MSGS)
    next(gen)
    gen.close()
    t0 = time.perf_counter()
    while any(t.name == "llm-generate" for t in threading.enumerate()) and time.perf_counter() - t0 < 5:
        time.sleep(0.05)
    assert not any(t.name == "llm-generate" for t in threading.enumerate())


def test_hub_id_loads_from_the_hub_cache_offline(tiny, tmp_path):
    # The layout huggingface_hub leaves after a download: models--org--name/{refs/main, snapshots/<rev>/}.
    repo = tmp_path / "hub" / "models--talker--tiny-qwen"
    shutil.copytree(tiny, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    llm = make("talker/tiny-qwen", cache_dir=str(tmp_path / "hub"), local_files_only=True, max_new_tokens=4)
    assert list(llm.stream(MSGS))


def test_a_model_that_is_not_there_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingWeightsError, match="does not exist"):
        make(tmp_path / "nope")
    with pytest.raises(MissingWeightsError, match="huggingface-cli download talker/absent"):
        make("talker/absent", cache_dir=str(tmp_path), local_files_only=True)


def test_a_model_without_chat_template_gets_the_plain_one(tiny, monkeypatch):
    llm = make(tiny)
    monkeypatch.setattr(llm.tokenizer, "chat_template", None)
    assert llm.prompt(MSGS) == "be brief\n\nUser: hello there\nBot: "


@pytest.mark.parametrize("bad", [dict(device="tpu"), dict(dtype="int3"), dict(max_new_tokens=0)])
def test_bad_options_are_refused(tiny, bad):
    with pytest.raises(TalkerError):
        make(tiny, **bad)


def test_registry_builds_it(tiny):
    from app_modules import registry

    llm = registry.create("llm", "transformers", {"model": str(tiny), "device": "cpu", "max_new_tokens": "3"})
    assert "".join(llm.stream(MSGS))


@pytest.mark.parametrize("capability, expected", [((7, 5), "float16"), ((8, 6), "bfloat16")])
def test_auto_dtype_is_bf16_only_where_the_chosen_gpu_has_it(monkeypatch, capability, expected):
    # A T4 or V100 (before sm80) only emulates bf16, though torch.cuda.is_bf16_supported() says yes
    import torch

    from LLM.transformers_llm import _dtype

    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: asked.append(d) or capability)
    monkeypatch.setattr(torch.version, "hip", None)
    assert _dtype("auto", "cuda:1") == getattr(torch, expected)
    assert asked == ["cuda:1"]
    assert _dtype("auto", "cpu") == torch.float32 and _dtype("float16", "cpu") == torch.float16
