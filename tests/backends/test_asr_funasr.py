"""FunASR through the real ``funasr.AutoModel`` on small model folders built in the test.

Each folder is laid out as ModelScope publishes one (config.yaml, model.pt, tokens.txt) with a tiny
SenseVoiceSmall or Paraformer of random weights, except the output layer, which the test sets so
the decode has a known answer (every frame votes for the token 你好). That runs the loading code, the
filter-bank frontend, the encoder and the CTC / CIF decoding for real; recognition quality is not
tested (no FunASR weights ship in a wheel)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from app_modules import media
from app_modules.errors import BadInputError, MissingWeightsError, StageError, TalkerError
from app_modules.types import Audio

torch = pytest.importorskip("torch")
pytest.importorskip("funasr", reason="pip install funasr modelscope kaldi-native-fbank")
pytest.importorskip("kaldi_native_fbank", reason="pip install kaldi-native-fbank (FunASR's fbank without torchaudio)")

from ASR.funasr_asr import FunASR, hub_id  # noqa: E402 - after the importorskips

TOKENS = ["<blank>", "<s>", "</s>", "你好", "世界", "<unk>"]
HELLO = TOKENS.index("你好")
NO_DROPOUT = {"dropout_rate": 0.0, "positional_dropout_rate": 0.0}
ENCODER = {"output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 1, **NO_DROPOUT,
           "attention_dropout_rate": 0.0, "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder",
           "normalize_before": True, "kernel_size": 11, "sanm_shfit": 0, "selfattention_layer_type": "sanm"}
COMMON = {
    "frontend": "WavFrontend",
    "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                      "lfr_m": 7, "lfr_n": 6},
    "tokenizer": "CharTokenizer",
    "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
}


def _write_folder(folder, config: dict, model) -> str:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    (folder / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    torch.save(model.state_dict(), folder / "model.pt")
    return str(folder)


def sensevoice_folder(folder) -> str:
    from funasr.models.sense_voice.model import SenseVoiceSmall

    torch.manual_seed(0)
    encoder_conf = {**ENCODER, "num_blocks": 2, "tp_blocks": 1}
    config = {"model": "SenseVoiceSmall", "encoder": "SenseVoiceEncoderSmall", "encoder_conf": encoder_conf,
              **COMMON}
    model = SenseVoiceSmall(encoder="SenseVoiceEncoderSmall", encoder_conf=encoder_conf, input_size=560,
                            vocab_size=len(TOKENS), ctc_conf=COMMON["ctc_conf"])
    with torch.no_grad():  # every frame's CTC argmax is 你好; CTC collapses the run to one token
        model.ctc.ctc_lo.weight.zero_()
        model.ctc.ctc_lo.bias.zero_()
        model.ctc.ctc_lo.bias[HELLO] = 10.0
    return _write_folder(folder, config, model)


def paraformer_folder(folder) -> str:
    from funasr.models.paraformer.model import Paraformer

    torch.manual_seed(0)
    decoder_conf = {"attention_heads": 2, "linear_units": 32, "num_blocks": 1, **NO_DROPOUT,
                    "self_attention_dropout_rate": 0.0, "src_attention_dropout_rate": 0.0, "att_layer_num": 1,
                    "kernel_size": 11, "sanm_shfit": 0}
    parts = {"encoder": "SANMEncoder", "encoder_conf": ENCODER, "decoder": "ParaformerSANMDecoder",
             "decoder_conf": decoder_conf, "predictor": "CifPredictorV2",
             "predictor_conf": {"idim": 16, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
             "ctc_conf": COMMON["ctc_conf"]}
    model_conf = {"ctc_weight": 0.0, "predictor_bias": 1}
    model = Paraformer(**parts, **model_conf, input_size=560, vocab_size=len(TOKENS))
    with torch.no_grad():
        # CIF fires a token every ~20 frames (alpha = sigmoid(-3)); the decoder always says 你好
        model.predictor.cif_output.weight.zero_()
        model.predictor.cif_output.bias.fill_(-3.0)
        model.decoder.output_layer.weight.zero_()
        model.decoder.output_layer.bias.zero_()
        model.decoder.output_layer.bias[HELLO] = 10.0
    return _write_folder(folder, {"model": "Paraformer", "model_conf": model_conf, **parts, **COMMON}, model)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("funasr")
    return {"sensevoice": sensevoice_folder(root / "SenseVoiceTiny"),
            "paraformer": paraformer_folder(root / "ParaTiny")}


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Audio:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path_factory.mktemp("speech") / "zh.wav"
    subprocess.run(["espeak-ng", "-v", "cmn", "-w", str(wav), "你好，世界。今天天气很好。"], check=True)
    return media.load_audio(wav, 22050)


@pytest.fixture(scope="module")
def sensevoice(folders) -> FunASR:
    return FunASR(FunASR.Options(model=folders["sensevoice"], device="cpu"), None)


def test_sensevoice_folder_decodes_through_automodel(sensevoice, speech):
    assert sensevoice.sensevoice and sensevoice.kind == "SenseVoiceSmall"
    assert sensevoice.transcribe(speech) == "你好"  # rich tags stripped by the post-processing
    assert sensevoice.transcribe(speech, "zh") == "你好"
    assert sensevoice.transcribe(speech, "cantonese") == "你好"  # -> yue


def test_sensevoice_languages_are_checked(sensevoice, speech, folders):
    with pytest.raises(TalkerError, match="one of: en, ja, ko, yue, zh"):
        sensevoice.transcribe(speech, "fr")
    with pytest.raises(TalkerError, match="language 'de'"):
        FunASR(FunASR.Options(model=folders["sensevoice"], language="de"), None)


def test_paraformer_folder_and_hotwords(folders, speech):
    asr = FunASR(FunASR.Options(model=folders["paraformer"], hotwords="世界 你好"), None)
    assert not asr.sensevoice and asr.valid_languages is None  # one language: the option is ignored
    calls = []
    real = asr.model.generate

    def spy(**kwargs):  # records what the adapter hands to the real AutoModel.generate
        calls.append(kwargs)
        return real(**kwargs)

    asr.model.generate = spy
    text = asr.transcribe(speech, "zh")
    assert re.fullmatch("(你好)+", text), text
    assert calls[0]["hotword"] == "世界 你好" and "language" not in calls[0]


def test_long_recording_is_split_and_joined_without_spaces(sensevoice, speech):
    """Over 28 s of speech (with short pauses) goes to the model as two chunks, cut at a pause."""
    s = media.resample(speech, 16000).samples
    pause = np.zeros(8000, np.float32)
    reps = int(np.ceil(35 * 16000 / (len(s) + len(pause))))
    long = Audio(np.concatenate([s, pause] * reps), 16000)
    # the stand-in model says 你好 once per chunk: one per chunk, joined with no space
    assert sensevoice.transcribe(long) == "你好你好"


def test_no_speech_and_bad_files(sensevoice, tmp_path):
    with pytest.raises(BadInputError, match="no speech detected"):
        sensevoice.transcribe(Audio(np.zeros(48000, np.float32), 16000))
    noise = (np.random.default_rng(0).standard_normal(48000) * 0.2).astype(np.float32)
    with pytest.raises(BadInputError, match="no speech detected"):
        sensevoice.transcribe(Audio(noise, 16000))
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(BadInputError, match="corrupt"):
        sensevoice.transcribe_file(bad)


def test_missing_models_say_how_to_get_them(tmp_path, folders):
    with pytest.raises(MissingWeightsError, match=r"'SenseVoiceSmall' \(iic/SenseVoiceSmall\).*modelscope download"):
        FunASR(FunASR.Options(model="SenseVoiceSmall", download_root=str(tmp_path)), None)
    with pytest.raises(MissingWeightsError, match="huggingface-cli download funasr/paraformer-zh"):
        FunASR(FunASR.Options(model="paraformer-zh", hub="hf", download_root=str(tmp_path)), None)
    with pytest.raises(MissingWeightsError, match="config.yaml"):
        FunASR(FunASR.Options(model=str(tmp_path)), None)
    broken = tmp_path / "broken"
    shutil.copytree(folders["sensevoice"], broken)
    (broken / "model.pt").unlink()
    with pytest.raises(MissingWeightsError, match="no model.pt"):
        FunASR(FunASR.Options(model=str(broken)), None)
    with pytest.raises(TalkerError, match="known names = .*SenseVoiceSmall.*paraformer-zh"):
        FunASR(FunASR.Options(model="nonsense"), None)
    with pytest.raises(TalkerError, match="hub must be"):
        FunASR(FunASR.Options(hub="github"), None)
    assert hub_id("paraformer-zh").startswith("iic/speech_seaco_paraformer")


def test_a_mismatched_model_pt_is_a_stage_error(tmp_path, folders):
    broken = tmp_path / "mismatch"
    shutil.copytree(folders["sensevoice"], broken)
    (broken / "config.yaml").write_text((broken / "config.yaml").read_text().replace("SenseVoiceSmall", "Nonexistent"))
    with pytest.raises(StageError, match="cannot load the FunASR model"):
        FunASR(FunASR.Options(model=str(broken)), None)
