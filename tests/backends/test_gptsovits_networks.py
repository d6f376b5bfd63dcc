"""GPT-SoVITS v2 networks against the reference fixtures computed by the original code.

Weights come from ``seeded.py``, are written in the published container layouts and read back through
``VITS.gptsovits.loaders`` so that key names, prefixes and strictness are checked too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app_modules.errors import MissingWeightsError
from tests.helpers.seeded_checkpoints import seeded_state_dict, write_gptsovits_sovits, write_gptsovits_t2s
from VITS.gptsovits.loaders import CheckpointFormatError, load_sovits, load_t2s
from VITS.gptsovits.spectrogram import spectrogram

DATA = Path(__file__).resolve().parent.parent / "data"
LOGITS = {"atol": 1e-4, "rtol": 1e-4}
WAV = {"atol": 2e-4, "rtol": 1e-4}

# The configs the real files carry (s1longer-v2.yaml, s2.json); the loaders build the networks from them.
T2S_CONFIG = {"data": {"max_sec": 54}, "model": {
    "vocab_size": 1025, "phoneme_vocab_size": 732, "embedding_dim": 512, "hidden_dim": 512, "head": 16,
    "linear_units": 2048, "n_layer": 24, "dropout": 0, "EOS": 1024, "random_bert": 0}}
S2_CONFIG = {
    "data": {"sampling_rate": 32000, "filter_length": 2048, "hop_length": 640, "win_length": 2048,
             "n_speakers": 300},
    "train": {"segment_size": 20480},
    "model": {"inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
              "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
              "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [10, 8, 2, 2, 2],
              "upsample_initial_channel": 512, "upsample_kernel_sizes": [16, 16, 8, 2, 2], "n_layers_q": 3,
              "use_spectral_norm": False, "gin_channels": 512, "semantic_frame_rate": "25hz",
              "freeze_quantizer": True}}


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def t2s_ckpt(reference_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("gsv") / "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
    return write_gptsovits_t2s(reference_dir, path, T2S_CONFIG)


@pytest.fixture(scope="module")
def t2s(t2s_ckpt):
    model, config = load_t2s(t2s_ckpt)
    assert config["data"]["max_sec"] == 54
    return model


@pytest.fixture(scope="module")
def s2_pth(reference_dir, tmp_path_factory):
    weight = seeded_state_dict(reference_dir, "gptsovits_sovits")
    weight["enc_q.proj.weight"] = torch.zeros(384, 192, 1)  # training-only; the loader must ignore it
    path = tmp_path_factory.mktemp("gsv") / "s2G2333k.pth"
    return write_gptsovits_sovits(reference_dir, path, S2_CONFIG, state=weight, info="seeded")


@pytest.fixture(scope="module")
def sovits(s2_pth):
    return load_sovits(s2_pth)[0]


@pytest.fixture(scope="module")
def t2s_ref(reference_dir):
    return dict(np.load(reference_dir / "gptsovits_t2s.npz"))


@pytest.fixture(scope="module")
def s2_ref(reference_dir):
    return dict(np.load(reference_dir / "gptsovits_sovits.npz"))


def _t(a):
    return torch.from_numpy(a)


def test_t2s_teacher_forced_logits(t2s, t2s_ref):
    r = t2s_ref
    prompt, target = _t(r["prompt"]), _t(r["target"])
    logits = t2s.teacher_forced_logits(_t(r["phoneme_ids"]), _t(r["bert_feature"]), torch.cat([prompt, target], 1))
    # the row before target[j] predicts it; the last row predicts what follows the target
    np.testing.assert_allclose(logits[:, prompt.size(1) - 1:-1].numpy(), r["tf_logits"], **LOGITS)
    np.testing.assert_allclose(logits[:, -1].numpy(), r["tf_logits_last"], **LOGITS)


@pytest.mark.parametrize("prefix,penalty", [("greedy", 1.35), ("greedy_norep", 1.0)])
def test_t2s_greedy_decode(t2s, t2s_ref, prefix, penalty):
    r = t2s_ref
    torch.manual_seed(0)
    out = t2s.generate(_t(r["phoneme_ids"]), _t(r["prompt"]), _t(r["bert_feature"]), top_k=1, top_p=1.0,
                       temperature=1.0, repetition_penalty=penalty, early_stop_num=15, keep_step_logits=True)
    np.testing.assert_array_equal(out.y.numpy(), r[prefix + "_y"])
    assert out.idx == int(r[prefix + "_idx"]) and not out.stopped_by_eos
    np.testing.assert_allclose(torch.stack(out.step_logits).numpy(), r[prefix + "_step_logits"], **LOGITS)
    # the webui quirk: 16 tokens generated, the first one dropped
    np.testing.assert_array_equal(out.tokens.numpy(), r[prefix + "_y"][:, -15:])


@pytest.mark.parametrize("prefix,penalty", [("greedy", 1.35), ("greedy_norep", 1.0)])
def test_t2s_decode_without_a_prompt_keeps_every_token(t2s, t2s_ref, prefix, penalty):
    """The webui's reference-free mode: upstream ``infer_panel(..., prompts=None, ...)`` returns idx 0, so
    ``y[:, -idx:]`` hands all 21 tokens to SoVITS (tests/data/gptsovits, made by the original code)."""
    ref = np.load(DATA / "gptsovits" / "t2s_ref_free.npz")
    torch.manual_seed(0)
    out = t2s.generate(_t(t2s_ref["phoneme_ids"]), None, _t(t2s_ref["bert_feature"]), top_k=1, top_p=1.0,
                       temperature=1.0, repetition_penalty=penalty, early_stop_num=20)
    np.testing.assert_array_equal(out.y.numpy(), ref[prefix + "_y"])
    assert out.idx == int(ref[prefix + "_idx"]) == 0
    np.testing.assert_array_equal(out.tokens.numpy(), ref[prefix + "_kept"])
    assert out.tokens.shape == (1, 21)


def test_refer_spectrogram(s2_ref):
    spec = spectrogram(_t(s2_ref["ref_wav_32k"]))
    np.testing.assert_allclose(spec.numpy(), s2_ref["refer_spec"], atol=1e-4, rtol=1e-4)


def test_sovits_decode_without_noise(sovits, s2_ref):
    r = s2_ref
    trace = {}
    wav = sovits.decode(_t(r["codes"]), _t(r["text"]), [_t(r["refer_spec"])], noise_scale=0.0, trace=trace)
    for name in ("ge", "m_p", "logs_p", "z"):
        np.testing.assert_allclose(trace[name].numpy(), r["noise0_" + name], atol=1e-4, rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(wav.numpy(), r["wav_noise0"], **WAV)


def test_sovits_decode_with_noise(sovits, s2_ref):
    r = s2_ref
    wav = sovits.decode(_t(r["codes"]), _t(r["text"]), _t(r["refer_spec"]), noise_scale=0.5, noise=_t(r["noise"]))
    np.testing.assert_allclose(wav.numpy(), r["wav_noise05"], **WAV)


def test_sovits_extract_latent(sovits, s2_ref):
    codes = sovits.extract_latent(_t(s2_ref["ssl_content"]))
    np.testing.assert_array_equal(codes.numpy(), s2_ref["latent_codes"])


def test_loader_errors(tmp_path, s2_pth):
    with pytest.raises(MissingWeightsError):
        load_t2s(tmp_path / "absent.ckpt")
    bad = tmp_path / "bare.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointFormatError, match="'weight'"):
        load_sovits(bad)
    with pytest.raises(CheckpointFormatError, match="model."):  # the SoVITS file given as the GPT
        load_t2s(s2_pth)
    # a file that needs full unpickling: refused by default, with the option named in the message
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"weight": {}, "config": {"when": object.__new__(_Opaque)}}, pickled)
    with pytest.raises(CheckpointFormatError, match="allow_pickle"):
        load_t2s(pickled)


class _Opaque:
    pass


def test_sine_position_table_follows_the_input_device():
    # The table is a plain attribute (not in the checkpoint), so ``t2s.to("cuda")`` does not move it;
    # the meta device stands in for CUDA: a CPU table there fails as it would on the GPU.
    from VITS.gptsovits.t2s import ScaledSinePosition

    pos = ScaledSinePosition(8).to("meta")
    for start in (2, 4001):  # also past the first table's end, where it is built anew
        out = pos(torch.zeros(1, 5, 8, device="meta"), start=start)
        assert out.device.type == "meta" and out.shape == (1, 5, 8)
