"""XTTS through its worker process, on a stand-in coqui-tts package installed in a temporary site folder.

The stand-in is laid out and imported like coqui-tts: a top-level package called ``TTS`` (the name of
Talker's own TTS/ folder) whose ``__init__`` reads the ``coqui-tts`` distribution's version, whose
``api.TTS(model_name)`` loads the model through ``TTS.utils.synthesizer``, which imports
``TTS.tts.configs.xtts_config`` and ``TTS.tts.models.xtts`` only then, by name, as coqui's
``setup_model`` does. With the project root on the worker's path, the first of these imports would
find Talker's folder and fail with "No module named 'TTS.tts'". The stand-in's model "speaks" a
deterministic tone from the voice clip's level, so the audio that comes back can be checked exactly,
and writes each call to a log so that caching in the worker can be counted.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest

from app_modules import registry
from app_modules.errors import BackendUnavailableError, BadInputError, StageError
from VITS import xtts_tts
from VITS.voices import VoiceLibrary

STANDIN = {
    "TTS/__init__.py": '''
        import importlib.metadata

        __version__ = importlib.metadata.version("coqui-tts")  # as coqui-tts: fails without its dist-info
    ''',
    "TTS/api.py": '''
        from TTS.utils.synthesizer import Synthesizer


        class TTS:
            def __init__(self, model_name="", progress_bar=True, gpu=False):
                self.synthesizer = Synthesizer(model_name)

            def to(self, device):
                self.synthesizer.tts_model.device = device
                return self
    ''',
    "TTS/utils/__init__.py": "",
    "TTS/utils/synthesizer.py": '''
        import importlib


        class Synthesizer:
            def __init__(self, model_name):
                if "xtts" not in model_name:
                    raise ValueError(f"model {model_name} not found")
                # lazily and by name, like coqui's load_config and setup_model
                config = importlib.import_module("TTS.tts.configs.xtts_config").XttsConfig()
                models = importlib.import_module("TTS.tts.models")
                self.tts_model = models.setup_model(config)
                self.output_sample_rate = config.output_sample_rate
    ''',
    "TTS/tts/__init__.py": "",
    "TTS/tts/configs/__init__.py": "",
    "TTS/tts/configs/xtts_config.py": '''
        class XttsConfig:
            model = "xtts"
            output_sample_rate = 24000
            gpt_cond_len = 12
            gpt_cond_chunk_len = 4
            max_ref_len = 10
            sound_norm_refs = False
            temperature = 0.85
            length_penalty = 1.0
            repetition_penalty = 2.0
            top_k = 50
            top_p = 0.85
    ''',
    "TTS/tts/models/__init__.py": '''
        import importlib


        def setup_model(config):
            return importlib.import_module("TTS.tts.models." + config.model).Xtts(config)
    ''',
    "TTS/tts/models/xtts.py": '''
        import json
        import math
        import os
        import sys
        import wave


        def _log(**entry):
            with open(os.environ["XTTS_STANDIN_LOG"], "a") as f:
                f.write(json.dumps(entry) + "\\n")


        class Xtts:
            def __init__(self, config):
                self.config = config
                _log(call="load", tts_module=sys.modules["TTS"].__file__)

            def get_conditioning_latents(self, audio_path, **kw):
                with wave.open(audio_path[0]) as w:
                    frames = w.readframes(w.getnframes())
                n = len(frames) // 2
                peak = max(abs(int.from_bytes(frames[i:i + 2], "little", signed=True)) for i in range(0, 2 * n, 2))
                _log(call="latents", wav=audio_path[0], kw=kw)
                return [n], [peak / 32768]

            def inference(self, text, language, gpt_cond_latent, speaker_embedding, **kw):
                _log(call="inference", text=text, language=language, kw=kw)
                if text == "crash now.":
                    os._exit(3)
                if text == "fail now.":
                    raise ValueError("the stand-in refuses this sentence")
                level = speaker_embedding[0]
                return {"wav": [level * math.sin(i / 10) for i in range(100 * len(text))]}
    ''',
    "coqui_tts-0.27.2.dist-info/METADATA": "Metadata-Version: 2.1\nName: coqui-tts\nVersion: 0.27.2\n",
    "coqui_tts-0.27.2.dist-info/top_level.txt": "TTS\n",
    # the registry checks torchaudio's distribution too (the real one does not load on this CPU torch)
    "torchaudio-2.8.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: torchaudio\nVersion: 2.8.0\n",
}


def install_standin(site: Path) -> Path:
    for rel, text in STANDIN.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return site


def tone(text: str, level: float) -> np.ndarray:
    return (level * np.sin(np.arange(100 * len(text)) / 10)).astype(np.float32)


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "standin.log"
    monkeypatch.setenv("XTTS_STANDIN_LOG", str(path))
    monkeypatch.delenv(xtts_tts.PYTHON_ENV, raising=False)
    return lambda: [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def site(tmp_path, monkeypatch):
    """The stand-in in a site folder this interpreter can find distributions in (not imported here)."""
    site = install_standin(tmp_path / "site")
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])  # after Talker's root: ``TTS`` stays ours
    return site


@pytest.fixture
def voices(tmp_path):
    lib = VoiceLibrary(tmp_path / "voices")
    t = np.arange(4 * 16000) / 16000
    lib.add("anna", ((0.25 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000), "Hi, I am Anna.", "en")
    lib.add("bo", ((0.5 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000), "你好，我是波。", "zh")
    return lib


def _peak(voice) -> float:
    import soundfile as sf

    return float(np.abs(sf.read(str(voice.wav), dtype="int16")[0]).max()) / 32768


def test_worker_loads_coqui_through_its_lazy_imports_and_streams_audio(site, log, voices):
    tts = xtts_tts.XTTSTTS(xtts_tts.XTTSTTS.Options(device="cpu", voice="anna", voices_dir=str(voices.root)))
    try:
        anna, bo = voices.get("anna"), voices.get("bo")
        first = tts.synthesize("Hello there.")
        assert first.audio.sample_rate == 24000 and tts.sample_rate == 24000
        np.testing.assert_allclose(first.audio.samples, tone("Hello there.", _peak(anna)), atol=1e-6)
        assert first.words[0].end == pytest.approx(len("Hello there.") * 100 / 24000)
        second = tts.synthesize("你好。", voice="bo")  # the voice per call, as a name ...
        np.testing.assert_allclose(second.audio.samples, tone("你好。", _peak(bo)), atol=1e-6)
        tts.synthesize("Again.", voice=anna)  # ... or as a Voice value
        tts.synthesize("And again.")

        calls = log()
        assert [c["call"] for c in calls].count("load") == 1  # loaded once
        assert calls[0]["tts_module"].startswith(str(site))  # coqui's TTS, not Talker's TTS/
        latents = [c for c in calls if c["call"] == "latents"]
        assert [Path(c["wav"]).parent.name for c in latents] == ["anna", "bo"]  # once per voice, then cached
        assert latents[0]["kw"] == {"gpt_cond_len": 12, "gpt_cond_chunk_len": 4, "max_ref_length": 10,
                                    "sound_norm_refs": False}  # the model config's, as coqui's synthesize
        said = [(c["text"], c["language"]) for c in calls if c["call"] == "inference"]
        assert said == [("Hello there.", "en"), ("你好。", "zh-cn"), ("Again.", "en"), ("And again.", "en")]
        assert calls[-1]["kw"] == {"temperature": 0.85, "length_penalty": 1.0, "repetition_penalty": 2.0,
                                   "top_k": 50, "top_p": 0.85}
        assert sys.modules["TTS"].__file__.startswith(str(xtts_tts.ROOT))  # Talker's package untouched here
        with pytest.raises(BadInputError):
            tts.synthesize(" ")
    finally:
        tts.close()
    assert not tts._worker.alive()


def test_a_failed_sentence_and_a_dead_worker_are_reported(site, log, voices):
    tts = xtts_tts.XTTSTTS(xtts_tts.XTTSTTS.Options(device="cpu", voice="anna", voices_dir=str(voices.root)))
    try:
        with pytest.raises(StageError, match="refuses this sentence"):
            tts.synthesize("fail now.")
        assert tts.synthesize("Still here.").audio.samples.size == 1100  # the worker carried on
        with pytest.raises(xtts_tts.WorkerDied, match=r"stopped while speaking .*exit code 3"):
            tts.synthesize("crash now.")
        # the next sentence starts a new worker, which loads the model again
        assert tts.synthesize("Back again.").audio.samples.size == 1100
        assert [c["call"] for c in log()].count("load") == 2
    finally:
        tts.close()


def test_load_failure_names_the_cause(site, log, voices):
    with pytest.raises(BackendUnavailableError, match="could not load 'some/other-model'.*not found"):
        xtts_tts.XTTSTTS(xtts_tts.XTTSTTS.Options(model="some/other-model", device="cpu",
                                                  voices_dir=str(voices.root)))


def test_registry_checks_the_distributions(site, monkeypatch):
    spec = registry.spec("tts", "xtts")
    # found by their metadata (Talker's own TTS/ folder no longer counts as coqui-tts); then the GPU check
    assert registry.why_unavailable(spec) in (None, "needs a CUDA GPU")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site)])
    assert "package 'coqui-tts' is not installed" in registry.why_unavailable(spec)
    with pytest.raises(BackendUnavailableError, match="pip install coqui-tts"):
        registry.create("tts", "xtts", {"device": "cpu"})  # the registry's own requirement check
    with pytest.raises(BackendUnavailableError, match="pip install coqui-tts"):
        xtts_tts.XTTSTTS(xtts_tts.XTTSTTS.Options(device="cpu"))  # the adapter's


def test_missing_coqui_names_the_install(monkeypatch):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.delenv(xtts_tts.PYTHON_ENV, raising=False)
    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(BackendUnavailableError, match="pip install coqui-tts"):
        xtts_tts.XTTSTTS(xtts_tts.XTTSTTS.Options(device="cpu"))


def test_worker_in_another_python_environment(tmp_path, log, voices, monkeypatch):
    """coqui-tts pins an older torch and transformers: it may live in its own environment, named by
    TALKER_XTTS_PYTHON; the registry asks that interpreter, and the worker runs under it."""
    env = tmp_path / "coqui-env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site_dir = subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    spec = registry.spec("tts", "xtts")
    monkeypatch.setenv(xtts_tts.PYTHON_ENV, str(python))
    assert "not installed for" in registry.why_unavailable(spec)  # an empty environment
    install_standin(Path(site_dir))
    registry._missing_elsewhere.cache_clear()
    assert registry.why_unavailable(spec) in (None, "needs a CUDA GPU")

    tts = xtts_tts.XTTSTTS(xtts_tts.XTTSTTS.Options(device="cpu", voice="anna", voices_dir=str(voices.root)))
    try:
        speech = tts.synthesize("Hello there.")
        np.testing.assert_allclose(speech.audio.samples, tone("Hello there.", _peak(voices.get("anna"))), atol=1e-6)
        assert log()[0]["tts_module"].startswith(site_dir)
    finally:
        tts.close()
        registry._missing_elsewhere.cache_clear()
