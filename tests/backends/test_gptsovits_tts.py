"""GPTSoVITSTTS end to end on small random models, built through the registry like the app does.

The GPT is a 2-layer random T2S, the synthesizer has the seeded v2 weights, HuBERT and BERT are tiny
random transformers models saved to local folders: nothing is downloaded. This checks the plumbing
(voice preparation, text, sampling, decode, output format), not voice quality."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BadInputError, MissingWeightsError
from app_modules.registry import create
from tests.helpers.seeded_checkpoints import write_gptsovits_sovits, write_gptsovits_t2s
from TTS.base import Speech
from VITS.gptsovits.t2s import T2SConfig, Text2SemanticDecoder
from VITS.voices import VoiceLibrary

SR = 16000
ZH_TRANSCRIPT = "你好，我是小明，今天天气很好。"


def _speechlike(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((150, 300, 450)))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return (0.05 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def setup(reference_dir, tmp_path_factory):
    import transformers

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("gsv_e2e")
    torch.manual_seed(0)
    tiny = {"vocab_size": 1025, "phoneme_vocab_size": 732, "embedding_dim": 64, "hidden_dim": 64, "head": 4,
            "n_layer": 2, "EOS": 1024}
    t2s = Text2SemanticDecoder(T2SConfig.from_dict(tiny))
    write_gptsovits_t2s(reference_dir, root / "t2s.ckpt", {"model": tiny, "data": {"max_sec": 54}},
                        state={"model." + k: v for k, v in t2s.state_dict().items()})
    write_gptsovits_sovits(reference_dir, root / "s2G.pth", {"data": {"sampling_rate": 32000}})

    hubert = transformers.HubertModel(transformers.HubertConfig(
        hidden_size=768, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4))
    hubert.save_pretrained(root / "hubert")

    chars = sorted(set(ZH_TRANSCRIPT + "你们好吗我很好谢谢,.!?") - set("，。"))
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n",
                                    encoding="utf-8")
    tok = transformers.BertTokenizer(str(root / "vocab.txt"))
    tok.save_pretrained(root / "bert")
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=1024, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64))
    bert.save_pretrained(root / "bert")

    lib = VoiceLibrary(root / "voices")
    lib.add("ming", (_speechlike(3.5), SR), ZH_TRANSCRIPT, "zh")
    options = {"t2s_checkpoint": str(root / "t2s.ckpt"), "sovits_checkpoint": str(root / "s2G.pth"),
               "hubert": str(root / "hubert"), "bert": str(root / "bert"), "voices_dir": str(root / "voices"),
               "voice": "ming", "device": "cpu", "max_seconds": 0.22, "seed": 3}
    return root, options


@pytest.fixture(scope="module")
def tts(setup):
    root, options = setup
    return create("tts", "gpt-sovits", options, CheckpointManager(root / "no-catalog"))


def test_chinese_sentence(tts):
    speech = tts.synthesize("你们好吗")
    assert isinstance(speech, Speech) and speech.audio.sample_rate == 32000
    x = speech.audio.samples
    assert x.dtype == np.float32 and np.isfinite(x).all() and np.abs(x).max() <= 1.0 and x.std() > 1e-4
    # 25 Hz codes, 1280 samples each. Early stop at 50 * 0.22 = 11 new codes and EOS barred for the first
    # 11 steps: either EOS at step 11 or 12 codes with the first dropped (the webui quirk) -> 11 codes
    assert len(x) == 11 * 1280
    assert speech.words[0].text == "你们好吗。" and speech.words[0].end == pytest.approx(speech.audio.duration)
    again = tts.synthesize("你们好吗")  # seeded per sentence: same text, same audio
    np.testing.assert_array_equal(again.audio.samples, x)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_english_with_builtin_voice(tts):
    tts.options = dataclasses.replace(tts.options, voice="default")  # Options are frozen
    try:
        speech = tts.synthesize("Hello there, how are you?")
        assert np.isfinite(speech.audio.samples).all() and len(speech.audio.samples) == 11 * 1280
        assert tts._voice.name == "default"
    finally:
        tts.options = dataclasses.replace(tts.options, voice="ming")  # Options are frozen


def test_errors_a_user_can_act_on(tts, setup):
    root, options = setup
    with pytest.raises(BadInputError, match="no text"):
        tts.synthesize("   ")
    tts.options = dataclasses.replace(tts.options, voice="nobody")  # Options are frozen
    try:
        with pytest.raises(BadInputError, match="available voices: .*ming"):
            tts.synthesize("你好")
    finally:
        tts.options = dataclasses.replace(tts.options, voice="ming")  # Options are frozen
    with pytest.raises(MissingWeightsError, match="download gpt-sovits"):
        create("tts", "gpt-sovits", {"device": "cpu"}, CheckpointManager(root / "empty"))
    with pytest.raises(BadInputError, match="top_p"):
        create("tts", "gpt-sovits", {**options, "top_p": 0.0}, CheckpointManager(root / "empty"))
