import sys
from dataclasses import dataclass

import pytest

from app_modules import config, registry
from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BackendUnavailableError, TalkerError


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


def test_registry_reasons_without_importing_heavy_packages(tmp_path):
    before = set(sys.modules)
    ck = CheckpointManager(tmp_path)
    reasons = {s.name: registry.why_unavailable(s, ck) for s in registry.BACKENDS}
    assert "python -m app_modules.cli download wav2lip" in reasons["wav2lip"]
    assert "download sadtalker" in reasons["sadtalker"]
    assert reasons["lite"] is None and reasons["read-aloud"] is None
    assert "torch" not in set(sys.modules) - before


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
