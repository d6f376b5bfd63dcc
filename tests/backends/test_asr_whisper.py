"""openai-whisper: a tiny randomly initialised Whisper, saved as a checkpoint exactly as the published
ones are ({"dims", "model_state_dict"}), loads through the same code as a downloaded model and runs the
whole decode (mel, language detection, beam search, temperature fallback) on speech made by espeak-ng.
Random weights say nothing about accuracy: faster-whisper's test checks real recognition."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess

import numpy as np
import pytest

from app_modules import media
from app_modules.errors import BadInputError, MissingWeightsError, StageError, TalkerError
from app_modules.types import Audio

torch = pytest.importorskip("torch")
whisper = pytest.importorskip(
    "whisper", reason="pip install --no-deps openai-whisper && pip install numba tiktoken more-itertools")

from ASR.whisper_asr import WhisperASR  # noqa: E402 - after the importorskips


def tiny_checkpoint(path, n_vocab: int = 51865):
    """Tiny dims: the real mel size, audio context and vocabulary (the tokenizer needs them), one narrow
    layer each, and a 16-token text context so a random decode stops after 8 tokens."""
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_vocab=n_vocab, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                           n_audio_layer=1, n_text_ctx=16, n_text_state=64, n_text_head=2, n_text_layer=1)
    model = Whisper(dims)
    # Whisper leaves this parameter as torch.empty (loaded from checkpoints); give it random values
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("whisper") / "tiny-random.pt")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Audio:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path_factory.mktemp("speech") / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Good morning, what is the weather like?"], check=True)
    return media.load_audio(wav, 22050)  # not 16 kHz: the backend resamples


@pytest.fixture(scope="module")
def asr(checkpoint) -> WhisperASR:
    return WhisperASR(WhisperASR.Options(model=str(checkpoint), beam_size=1, device="cpu"), None)


def test_random_checkpoint_runs_the_whole_decode(asr, speech):
    assert asr.model.is_multilingual and asr.model.dims.n_text_state == 64
    text = asr.transcribe(speech)  # language detected, greedy decode, fallback on repetition
    assert isinstance(text, str) and text.strip()
    assert asr.transcribe(speech) == text  # deterministic at temperature 0
    assert asr.transcribe(speech, "en").strip()  # a fixed language skips detection


def test_beam_search_and_prompt(checkpoint, speech):
    asr = WhisperASR(WhisperASR.Options(model=str(checkpoint), beam_size=2, initial_prompt="Weather.",
                                        language="en", vad=False), None)
    assert asr.transcribe(speech).strip()


def test_named_model_loads_from_the_cache_through_the_same_path(checkpoint, tmp_path, monkeypatch, speech):
    """A checkpoint in the download folder under a published name (url ending in its sha256) loads
    without network, exactly as a downloaded tiny.pt would."""
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    monkeypatch.setitem(whisper._MODELS, "tiny-test", f"https://example.invalid/models/{digest}/tiny-test.pt")
    shutil.copy(checkpoint, tmp_path / "tiny-test.pt")
    asr = WhisperASR(WhisperASR.Options(model="tiny-test", download_root=str(tmp_path), beam_size=1), None)
    assert asr.transcribe(speech, "en").strip()


def test_missing_damaged_and_wrong_checkpoints(tmp_path, checkpoint):
    with pytest.raises(MissingWeightsError, match=r"whisper model 'tiny' is not in .*offline"):
        WhisperASR(WhisperASR.Options(model="tiny", download_root=str(tmp_path)), None)
    (tmp_path / "base.pt").write_bytes(b"half a download")
    with pytest.raises(MissingWeightsError, match="damaged"):
        WhisperASR(WhisperASR.Options(model="base", download_root=str(tmp_path)), None)
    with pytest.raises(MissingWeightsError, match="not found"):
        WhisperASR(WhisperASR.Options(model=str(tmp_path / "nope.pt")), None)
    junk = tmp_path / "junk.pt"
    torch.save({"weights": 1}, junk)
    with pytest.raises(StageError, match="not a Whisper checkpoint"):
        WhisperASR(WhisperASR.Options(model=str(junk)), None)
    with pytest.raises(TalkerError, match="available models = .*large-v3"):
        WhisperASR(WhisperASR.Options(model="gigantic"), None)
    with pytest.raises(TalkerError, match="language 'xx'"):
        WhisperASR(WhisperASR.Options(model=str(checkpoint), language="xx"), None)


def test_english_only_checkpoint_refuses_other_languages(tmp_path, speech):
    asr = WhisperASR(WhisperASR.Options(model=str(tiny_checkpoint(tmp_path / "en.pt", n_vocab=51864)),
                                        beam_size=1), None)
    assert not asr.model.is_multilingual
    with pytest.raises(TalkerError, match="one of: en"):
        asr.transcribe(speech, "zh")


def test_silence_and_noise_are_no_speech(asr):
    rng = np.random.default_rng(0)
    for samples in (np.zeros(48000), rng.standard_normal(48000) * 0.2):
        with pytest.raises(BadInputError, match="no speech detected"):
            asr.transcribe(Audio(samples.astype(np.float32), 16000))


def test_registry_and_cli_path(checkpoint, speech, tmp_path, capsys):
    import argparse

    from app_modules import registry
    from ASR.cli import add_transcribe_parser, run_transcribe

    asr = registry.create("asr", "whisper", {"model": str(checkpoint), "beam_size": "1"})
    assert isinstance(asr, WhisperASR)
    wav = media.write_wav(speech, tmp_path / "speech.wav")
    parser = argparse.ArgumentParser()
    add_transcribe_parser(parser.add_subparsers())
    args = parser.parse_args(["transcribe", str(wav), "--asr", "whisper", "--model", str(checkpoint),
                              "--set", "whisper.beam_size=1"])
    assert run_transcribe(args) == 0
    assert capsys.readouterr().out.strip()
