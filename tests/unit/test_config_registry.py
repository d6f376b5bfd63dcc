import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from app_modules import config, registry
from app_modules.errors import BackendUnavailableError, TalkerError

REPO = Path(__file__).resolve().parents[2]


def test_settings_file_and_overrides(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("tts: espeak\npipeline: {subtitles: burn}\noptions: {openai: {model: a}}\n")
    s = config.load(f, ["thg=lite", "openai.model=b", "server.port=9000", "espeak.speed=150"])
    assert (s.tts, s.thg, s.pipeline.subtitles, s.server.port) == ("espeak", "lite", "burn", 9000)
    assert s.options_for("openai") == {"model": "b"} and s.options_for("espeak") == {"speed": 150}


@pytest.mark.parametrize("overrides, needle", [
    (["tts=nope"], "available tts backends = espeak"),
    (["colour=red"], "unknown setting"),
    (["pipeline.subtitles=maybe"], "'srt' or 'burn'"),
    (["server.port=high"], "must be an integer"),
    (["broken"], "key=value"),
])
def test_bad_settings_say_what_is_valid(overrides, needle):
    with pytest.raises(TalkerError, match=needle):
        config.load(None, overrides)


# What a fresh interpreter reports after importing the registry and asking every backend why it cannot run.
_REASONS_SCRIPT = """
import json, sys
from app_modules import registry
from app_modules.checkpoints import CheckpointManager
ck = CheckpointManager(sys.argv[1])
reasons = {s.name: registry.why_unavailable(s, ck) for s in registry.BACKENDS}
heavy = json.loads(sys.argv[2])
print(json.dumps({"reasons": reasons, "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""
# Backend packages and frameworks that take seconds (or a GPU context) to import.
_HEAVY = ("torch", "torchaudio", "transformers", "gradio", "cv2", "mediapipe", "scipy", "faster_whisper",
          "ctranslate2", "whisper", "funasr", "piper", "onnxruntime", "TTS", "openai", "google.genai", "edge_tts")


def test_registry_reasons_without_importing_heavy_packages(tmp_path):
    # A fresh interpreter: in a full run the suite has imported torch long before this test.
    # PATH holds only the programs the registry looks for, so no nvidia-smi: on a GPU machine the
    # registry may import torch to ask CUDA, which is the one import it is allowed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for prog in {p for s in registry.BACKENDS for p in s.programs}:
        if shutil.which(prog):
            (bin_dir / prog).symlink_to(shutil.which(prog))
    done = subprocess.run([sys.executable, "-c", _REASONS_SCRIPT, str(tmp_path / "ck"), json.dumps(_HEAVY)],
                          cwd=REPO, env={**os.environ, "PATH": str(bin_dir)}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    reasons = report["reasons"]
    assert "python -m app_modules.cli download wav2lip" in reasons["wav2lip"]
    assert "download sadtalker" in reasons["sadtalker"]
    assert reasons["lite"] is None and reasons["read-aloud"] is None
    assert report["loaded"] == [], f"computing the reasons imported {report['loaded']}"


def test_missing_package_and_gpu_reasons():
    s = registry.BackendSpec("tts", "x", "nowhere:X", "", packages=("surely_not_installed_pkg",),
                             install="pip install y")
    assert registry.why_unavailable(s) == "package 'surely_not_installed_pkg' is not installed: pip install y"
    nested = registry.BackendSpec("tts", "x", "nowhere:X", "", packages=("no_such_parent.genai",),
                                  install="pip install y")
    assert "no_such_parent.genai" in registry.why_unavailable(nested)
    with pytest.raises(BackendUnavailableError, match="pip install y"):
        registry.load_class(s)
    with pytest.raises(BackendUnavailableError, match="available thg backends = lite"):
        registry.spec("thg", "nope")


def test_options_are_typed_and_checked():
    class Backend:
        @dataclass
        class Options:
            speed: int = 1
            scale: float = 1.0
            still: bool = False
            name: str = ""

    o = registry.build_options(Backend, {"speed": "3", "scale": "0.5", "still": "true", "name": "x"})
    assert (o.speed, o.scale, o.still, o.name) == (3, 0.5, True, "x")
    with pytest.raises(TalkerError, match="valid options = \\['name', 'scale', 'speed', 'still'\\]"):
        registry.build_options(Backend, {"sped": 1})
    with pytest.raises(TalkerError, match="wants a int"):
        registry.build_options(Backend, {"speed": "fast"})


def test_realtime_section_is_typed_checked_and_yields_to_the_environment(tmp_path):
    from app_modules.realtime.turn_vad import TurnOptions

    # the defaults are TurnOptions' own, so a settings file without the section changes nothing
    rt = config.load(None, []).realtime
    assert TurnOptions.from_settings(rt) == TurnOptions()
    assert rt.turn_server({}) == ("", "", "")

    f = tmp_path / "s.yaml"
    f.write_text("realtime: {turn_url: 'turn:turn.example.org:3478', turn_username: talker, "
                 "turn_credential: from-file, end_silence_ms: 800}\n")
    s = config.load(f, ["realtime.onset_ms=128", "realtime.min_utterance_ms=300"])
    opts = TurnOptions.from_settings(s.realtime)
    assert (opts.end_silence_ms, opts.min_utterance_ms, opts.onset_ms) == (800, 300, 128)
    assert opts.threshold == TurnOptions().threshold  # what the section does not name keeps its default
    # the file's TURN server, unless the environment names one; each variable wins field by field
    assert s.realtime.turn_server({}) == ("turn:turn.example.org:3478", "talker", "from-file")
    assert s.realtime.turn_server({"TALKER_TURN_CREDENTIAL": "from-env"}) == (
        "turn:turn.example.org:3478", "talker", "from-env")
    env = {"TALKER_TURN_URL": "turns:other.example.org:5349", "TALKER_TURN_USERNAME": "u",
           "TALKER_TURN_CREDENTIAL": "p"}
    assert s.realtime.turn_server(env) == ("turns:other.example.org:5349", "u", "p")

    for overrides, needle in [
        (["realtime.colour=red"], r"unknown realtime setting\(s\) \['colour'\]; valid = \['end_silence_ms', "
                                  r"'min_utterance_ms', 'onset_ms', 'turn_credential', 'turn_url', 'turn_username'\]"),
        (["realtime.onset_ms=fast"], "realtime.onset_ms must be an integer"),
        (["realtime.end_silence_ms=0"], "end_silence_ms must be a positive"),
        (["realtime.min_utterance_ms=-5"], "min_utterance_ms must be 0 or more"),
        (["realtime.turn_url=turn.example.org"], "realtime.turn_url must start with turn:"),
        (["realtime.turn_username=[a, b]"], "realtime.turn_username must be text"),
        (["realtime=on"], "realtime must be a mapping"),
    ]:
        with pytest.raises(TalkerError, match=needle):
            config.load(None, overrides)


def test_realtime_section_reaches_the_realtime_tab():
    from app_modules.ui.realtime_tab import engine_settings, rtc_configuration

    rt = config.load(None, ["realtime.turn_url=turn:turn.example.org:3478", "realtime.turn_username=talker",
                            "realtime.end_silence_ms=900", "realtime.onset_ms=64"]).realtime
    live = engine_settings(rt)
    assert (live.turn.end_silence_ms, live.turn.onset_ms, live.turn.min_utterance_ms) == (900, 64, 250)
    # the browser gets the file's server, with the credential from the environment
    assert rtc_configuration({"TALKER_TURN_CREDENTIAL": "secret"}, settings=rt) == {"iceServers": [
        {"urls": ["turn:turn.example.org:3478"], "username": "talker", "credential": "secret"}]}
    assert rtc_configuration({}, settings=config.RealtimeSettings()) is None
    aiortc = pytest.importorskip("aiortc")
    from app_modules.realtime.server import ice_servers_from_env

    (server,) = ice_servers_from_env({"TALKER_TURN_CREDENTIAL": "secret"}, settings=rt)
    assert isinstance(server, aiortc.RTCIceServer)
    assert (server.urls, server.username, server.credential) == (["turn:turn.example.org:3478"], "talker", "secret")
