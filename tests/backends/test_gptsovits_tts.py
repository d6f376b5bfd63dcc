"""GPTSoVITSTTS end to end on small random models, built through the registry like the app does.

The GPT is a 2-layer random T2S, the synthesizer has the seeded v2 weights, HuBERT and BERT are tiny
random transformers models saved in the published folder layout under checkpoints/gpt-sovits: nothing
is downloaded. This checks the plumbing (voice preparation, per-call voices, fine-tuned weights,
caching, text, sampling, decode, output format), not voice quality."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BadInputError, MissingWeightsError
from app_modules.registry import create
from tests.helpers.seeded_checkpoints import (
    seeded_state_dict,
    write_gptsovits_bert,
    write_gptsovits_hubert,
    write_gptsovits_sovits,
    write_gptsovits_t2s,
)
from TTS.base import Speech
from VITS import gptsovits_tts
from VITS.gptsovits.t2s import T2SConfig, Text2SemanticDecoder
from VITS.gptsovits_tts import BERT_DIR, HUBERT_DIR, SOVITS_FILE, T2S_FILE
from VITS.voices import VoiceLibrary

SR = 16000
ZH_TRANSCRIPT = "你好，我是小明，今天天气很好。"
TINY_T2S = {"vocab_size": 1025, "phoneme_vocab_size": 732, "embedding_dim": 64, "hidden_dim": 64, "head": 4,
            "n_layer": 2, "EOS": 1024}
TINY_HUBERT = {"hidden_size": 768, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64,
               "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}


def _speechlike(seconds: float, f0: float = 150) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((f0, 2 * f0, 3 * f0)))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return (0.05 * x / np.abs(x).max()).astype(np.float32)


def _tiny_t2s(reference_dir, path, seed: int, **extras):
    torch.manual_seed(seed)
    t2s = Text2SemanticDecoder(T2SConfig.from_dict(TINY_T2S))
    write_gptsovits_t2s(reference_dir, path, {"model": TINY_T2S, "data": {"max_sec": 54}},
                        state={"model." + k: v for k, v in t2s.state_dict().items()})
    if extras:  # what fine-tuning adds to the container (process_ckpt: 'info')
        obj = torch.load(path, weights_only=True)
        torch.save({**obj, **extras}, path)
    return path


@pytest.fixture(scope="module")
def setup(reference_dir, tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("gsv_e2e")
    models = root / "checkpoints" / "gpt-sovits"  # the catalog's layout: the backend finds everything here
    models.mkdir(parents=True)
    _tiny_t2s(reference_dir, models / T2S_FILE, seed=0)
    write_gptsovits_sovits(reference_dir, models / SOVITS_FILE, {"data": {"sampling_rate": 32000}})
    write_gptsovits_hubert(models / HUBERT_DIR, **TINY_HUBERT)
    write_gptsovits_bert(models / BERT_DIR, ZH_TRANSCRIPT + "你们好吗我很好谢谢,.!?", hidden_size=1024,
                         num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)

    # a voice with its own fine-tuned weights: another GPT, and a SoVITS whose weights differ from the shared
    tuned = root / "tuned"
    tuned.mkdir()
    _tiny_t2s(reference_dir, tuned / "ming-e15.ckpt", seed=1, info="GPT-e15")
    sovits = {k: v.clone() for k, v in seeded_state_dict(reference_dir, "gptsovits_sovits").items()
              if not k.startswith("enc_q.")}  # training's savee drops the posterior encoder
    sovits = {k: (v * 1.05 if k.startswith("dec.") and v.is_floating_point() else v).half()
              for k, v in sovits.items()}  # and stores half precision
    write_gptsovits_sovits(reference_dir, tuned / "ming_e8_s200.pth", {"data": {"sampling_rate": 32000}},
                           state=sovits, info="ming_e8_s200")

    lib = VoiceLibrary(root / "voices")
    lib.add("ming", (_speechlike(3.5), SR), ZH_TRANSCRIPT, "zh")
    lib.add("hua", (_speechlike(4.0, f0=220), SR), ZH_TRANSCRIPT, "zh")
    lib.add("ming-tuned", (_speechlike(3.5), SR), ZH_TRANSCRIPT, "zh",
            gpt_weights=tuned / "ming-e15.ckpt", sovits_weights=tuned / "ming_e8_s200.pth")
    options = {"voices_dir": str(root / "voices"), "voice": "ming", "device": "cpu", "max_seconds": 0.22, "seed": 3}
    return root, options


@pytest.fixture(scope="module")
def tts(setup):
    root, options = setup
    return create("tts", "gpt-sovits", options, CheckpointManager(root / "checkpoints"))


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
    assert tts.options.voice == "ming"  # the default voice is the option's


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_english_with_builtin_voice(tts):
    speech = tts.synthesize("Hello there, how are you?", voice="default")
    assert np.isfinite(speech.audio.samples).all() and len(speech.audio.samples) == 11 * 1280


def test_voice_per_call_by_name_or_value(tts):
    ming = tts.synthesize("你们好吗").audio.samples
    hua = tts.synthesize("你们好吗", voice="hua").audio.samples
    assert not np.array_equal(ming, hua)  # another reference: other prompt codes and timbre
    as_value = tts.synthesize("你们好吗", voice=tts.voices.get("hua")).audio.samples  # a Voice value object
    np.testing.assert_array_equal(as_value, hua)
    np.testing.assert_array_equal(tts.synthesize("你们好吗", voice="ming").audio.samples, ming)


def test_switching_voices_reloads_no_model(setup, monkeypatch):
    """Shared models load once; a voice is prepared once; only a fine-tuned voice loads its own weights."""
    root, options = setup
    loads: dict[str, list] = {"t2s": [], "sovits": [], "hf": []}
    real_t2s, real_sovits = gptsovits_tts.load_t2s, gptsovits_tts.load_sovits
    real_hf = gptsovits_tts.GPTSoVITSTTS._load_hf
    monkeypatch.setattr(gptsovits_tts, "load_t2s", lambda p, a=False: loads["t2s"].append(p.name) or real_t2s(p, a))
    monkeypatch.setattr(gptsovits_tts, "load_sovits",
                        lambda p, a=False: loads["sovits"].append(p.name) or real_sovits(p, a))
    monkeypatch.setattr(gptsovits_tts.GPTSoVITSTTS, "_load_hf",
                        lambda self, kind, name: loads["hf"].append(kind) or real_hf(self, kind, name))
    tts = create("tts", "gpt-sovits", {**options, "voice_cache": 2},
                 CheckpointManager(root / "checkpoints"))
    prepared: list[str] = []
    real_prepare = tts._prepare_voice
    tts._prepare_voice = lambda v: prepared.append(v.name) or real_prepare(v)
    assert loads == {"t2s": [T2S_FILE], "sovits": [SOVITS_FILE], "hf": ["hubert", "bert"]}

    tts.synthesize("你好", voice="ming")
    for name in ("hua", "ming", "hua", "ming"):
        tts.prepare(name)  # what a picked voice does; synthesize goes through the same cache
    assert prepared == ["ming", "hua"]  # each voice prepared once, then served from the cache
    assert loads == {"t2s": [T2S_FILE], "sovits": [SOVITS_FILE], "hf": ["hubert", "bert"]}

    shared = tts.synthesize("你们好吗", voice="ming").audio.samples
    tuned = tts.synthesize("你们好吗", voice="ming-tuned").audio.samples  # same clip, its own GPT and SoVITS
    assert loads["t2s"] == [T2S_FILE, "gpt.ckpt"] and loads["sovits"] == [SOVITS_FILE, "sovits.pth"]
    assert not np.array_equal(shared, tuned) and np.isfinite(tuned).all()
    for name in ("ming-tuned", "ming", "ming-tuned"):
        tts.prepare(name)
    assert loads["t2s"] == [T2S_FILE, "gpt.ckpt"]  # fine-tuned weights cached, shared ones untouched
    assert loads["hf"] == ["hubert", "bert"]
    np.testing.assert_array_equal(tts.synthesize("你们好吗", voice="ming").audio.samples, shared)

    # the voice cache is bounded (2 here): a third voice evicts the least recently used one
    tts.prepare("hua")  # prepared again: ming-tuned pushed it out; now (ming, hua)
    tts.prepare("ming-tuned")  # prepared again, its weights still cached; now (hua, ming-tuned)
    n = len(prepared)
    tts.prepare("ming")
    assert prepared[n - 2:] == ["hua", "ming-tuned", "ming"] and len(tts._voice_cache) == 2
    assert loads["t2s"] == [T2S_FILE, "gpt.ckpt"] and loads["sovits"] == [SOVITS_FILE, "sovits.pth"]


def test_re_recorded_voice_is_prepared_again(tts, tmp_path):
    """A voice from another library (a session's own, say) is passed as a value; re-recorded under the
    same name, it is a new voice to the cache."""
    lib = VoiceLibrary(tmp_path / "voices")
    anna = lib.add("anna", (_speechlike(3.5), SR), ZH_TRANSCRIPT, "zh")
    first = tts.synthesize("你们好吗", voice=anna).audio.samples
    lib.delete("anna")
    anna = lib.add("anna", (_speechlike(4.5, f0=260), SR), ZH_TRANSCRIPT, "zh")  # same name, another recording
    assert not np.array_equal(tts.synthesize("你们好吗", voice=anna).audio.samples, first)


def test_errors_a_user_can_act_on(tts, setup):
    root, options = setup
    with pytest.raises(BadInputError, match="no text"):
        tts.synthesize("   ")
    with pytest.raises(BadInputError, match="available voices: .*ming"):
        tts.synthesize("你好", voice="nobody")
    with pytest.raises(MissingWeightsError, match="download gpt-sovits"):
        create("tts", "gpt-sovits", {"device": "cpu"}, CheckpointManager(root / "empty"))
    with pytest.raises(BadInputError, match="top_p"):
        create("tts", "gpt-sovits", {**options, "top_p": 0.0}, CheckpointManager(root / "empty"))


def test_missing_feature_model_names_the_download(setup, tmp_path):
    root, options = setup
    models = tmp_path / "gpt-sovits"
    shutil.copytree(root / "checkpoints" / "gpt-sovits", models)
    shutil.rmtree(models / BERT_DIR)
    with pytest.raises(MissingWeightsError, match=f"{BERT_DIR}.*download gpt-sovits"):
        create("tts", "gpt-sovits", options, CheckpointManager(tmp_path))


def test_fine_tuned_weights_must_be_the_training_files(setup, tmp_path):
    root, _ = setup
    lib = VoiceLibrary(tmp_path)
    sovits = root / "tuned" / "ming_e8_s200.pth"
    with pytest.raises(BadInputError, match="not a GPT"):
        lib.add("x", (_speechlike(3.5), SR), ZH_TRANSCRIPT, "zh", gpt_weights=sovits)
    with pytest.raises(BadInputError, match="not found"):
        lib.add("x", (_speechlike(3.5), SR), ZH_TRANSCRIPT, "zh", sovits_weights=tmp_path / "none.pth")
    voice = lib.add("x", (_speechlike(3.5), SR), ZH_TRANSCRIPT, "zh", sovits_weights=sovits)
    assert voice.gpt_weights is None and voice.sovits_weights.name == "sovits.pth"
    assert voice.sovits_weights.read_bytes() == sovits.read_bytes()
