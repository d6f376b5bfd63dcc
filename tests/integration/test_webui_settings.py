"""The settings tab's logic: only runnable backends are offered, options are validated before they
replace the running settings, and a change reloads the shared backends on the next turn."""

from __future__ import annotations

import pytest

from app_modules import config, registry
from app_modules.errors import TalkerError
from app_modules.ui.runtime import Runtime
from app_modules.ui.settings_tab import (
    apply,
    available,
    checkpoint_rows,
    options_yaml,
    unavailable_table,
)


@pytest.fixture
def runtime(tmp_path):
    from app_modules.checkpoints import CheckpointManager

    return Runtime(config.load(None, ["llm=read-aloud", "tts=espeak", "thg=lite"]), CheckpointManager(tmp_path))


def test_only_available_backends_are_offered(runtime):
    for stage in registry.STAGES:
        offered = available(runtime, stage)
        for name in offered:
            assert registry.why_unavailable(registry.spec(stage, name), runtime.checkpoints) is None
    assert "read-aloud" in available(runtime, "llm") and "espeak" in available(runtime, "tts")
    # the empty checkpoint folder makes wav2lip unavailable, with the command that fixes it
    reasons = {(st, name): why for st, name, why in unavailable_table(runtime)}
    assert "download wav2lip" in reasons[("thg", "wav2lip")]
    assert all(row[-1] == "missing" for row in checkpoint_rows(runtime))


def test_options_are_shown_with_defaults(runtime):
    text = options_yaml(runtime, "tts", "espeak")
    assert "voice: en-us" in text and "speed: 160" in text


def test_bad_options_are_refused_and_nothing_changes(runtime):
    before = runtime.settings
    choices = {"asr": "faster-whisper", "llm": "read-aloud", "tts": "espeak", "thg": "lite"}
    with pytest.raises(TalkerError, match="valid options"):
        apply(runtime, choices, {"tts": "nonsense: 1"}, "srt")
    with pytest.raises(TalkerError, match="out of range|not valid YAML|mapping"):
        apply(runtime, choices, {"tts": "voice: [unclosed"}, "srt")
    assert runtime.settings is before and runtime.generation == 0


def test_applied_settings_reload_the_backends(runtime):
    old_tts = runtime.backend("tts")
    choices = {"asr": "faster-whisper", "llm": "read-aloud", "tts": "espeak", "thg": "lite"}
    message = apply(runtime, choices, {"tts": "voice: en-gb\nspeed: 200\n"}, "burn")
    assert "tts=espeak" in message
    assert runtime.settings.options["espeak"] == {"voice": "en-gb", "speed": 200}
    assert runtime.settings.pipeline.subtitles == "burn"
    new_tts = runtime.backend("tts")
    assert new_tts is not old_tts and new_tts.options.speed == 200
