"""The settings tab's logic: only runnable backends are offered, options are validated before they
replace the session's settings, and a change gives that session (and no other) other backends on its
next turn, while sessions with the same choice share one loaded instance."""

from __future__ import annotations

import json

import pytest

from app_modules import config, registry
from app_modules.errors import TalkerError
from app_modules.ui.runtime import Runtime
from app_modules.ui.session import Session
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

    settings = config.load(None, ["llm=read-aloud", "tts=espeak", "thg=lite", f"pipeline.workdir={tmp_path}"])
    return Runtime(settings, CheckpointManager(tmp_path / "checkpoints"))


@pytest.fixture
def session(runtime):
    s = Session.create(runtime.settings, "session-a")
    yield s
    s.close()


@pytest.fixture
def other(runtime):
    s = Session.create(runtime.settings, "session-b")
    yield s
    s.close()


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


def test_bad_options_are_refused_and_nothing_changes(runtime, session):
    before, defaults = session.settings, runtime.settings
    choices = {"asr": "faster-whisper", "llm": "read-aloud", "tts": "espeak", "thg": "lite"}
    with pytest.raises(TalkerError, match="valid options"):
        apply(runtime, session, choices, {"tts": "nonsense: 1"}, "srt")
    with pytest.raises(TalkerError, match="out of range|not valid YAML|mapping"):
        apply(runtime, session, choices, {"tts": "voice: [unclosed"}, "srt")
    assert session.settings is before and session.settings.options_for("espeak") == {"voice": "en-us"}
    assert runtime.settings is defaults and runtime.loaded() == []


def test_applied_settings_reload_the_backends(runtime, session):
    old_tts = runtime.pipeline(settings=session.settings).stages.tts
    choices = {"asr": "faster-whisper", "llm": "read-aloud", "tts": "espeak", "thg": "lite"}
    message = apply(runtime, session, choices, {"tts": "voice: en-gb\nspeed: 200\n"}, "burn")
    assert "tts=espeak" in message
    assert session.settings.options["espeak"] == {"voice": "en-gb", "speed": 200}
    assert session.settings.pipeline.subtitles == "burn"
    pipe = runtime.pipeline(settings=session.settings)
    new_tts = pipe.stages.tts
    assert new_tts is not old_tts and new_tts.options.speed == 200 and new_tts.options.voice == "en-gb"
    assert pipe.settings.subtitles == "burn"


def test_a_change_in_one_session_leaves_the_others_alone(runtime, session, other):
    before = runtime.pipeline(settings=other.settings)
    choices = {"asr": "faster-whisper", "llm": "read-aloud", "tts": "espeak", "thg": "lite"}
    apply(runtime, session, choices, {"tts": "voice: en-gb\nspeed: 200\n"}, "burn")

    # session B's settings, backends and pipeline are the ones it had; the defaults did not move
    assert other.settings.options_for("espeak") == {"voice": "en-us"} and other.settings.pipeline.subtitles == "srt"
    assert runtime.settings.options_for("espeak") == {"voice": "en-us"}
    assert runtime.settings.pipeline.subtitles == "srt"
    b = runtime.pipeline(settings=other.settings)
    assert b is before and b.stages.tts.options.speed == 160 and b.settings.subtitles == "srt"
    a = runtime.pipeline(settings=session.settings)
    assert a.stages.tts.options.speed == 200 and a.settings.subtitles == "burn"
    # what stayed the same is shared: one LLM and one talking head for both sessions
    assert a.stages.llm is b.stages.llm and a.stages.thg is b.stages.thg
    # a new session starts from the defaults, not from what session A chose
    fresh = Session.create(runtime.settings, "session-c")
    try:
        assert fresh.settings.options_for("espeak") == {"voice": "en-us"}
        assert runtime.pipeline(settings=fresh.settings).stages.tts is b.stages.tts
    finally:
        fresh.close()
    # and the page's option editor shows each session its own options
    assert "speed: 200" in options_yaml(runtime, "tts", "espeak", session.settings)
    assert "speed: 160" in options_yaml(runtime, "tts", "espeak", other.settings)


def test_sessions_with_the_same_options_share_one_backend(runtime, session, other):
    choices = {"asr": "faster-whisper", "llm": "read-aloud", "tts": "espeak", "thg": "lite"}
    for s in (session, other):  # both choose the same, each in its own settings tab
        apply(runtime, s, choices, {"tts": "speed: 120\n"}, "srt")
    assert session.settings is not other.settings
    a, b = runtime.pipeline(settings=session.settings), runtime.pipeline(settings=other.settings)
    assert a.stages.tts is b.stages.tts and a.stages.tts.options.speed == 120
    assert a is b  # one pipeline too, so a prepared avatar is shared
    assert [k[1] for k in runtime.loaded("tts")] == ["espeak"]  # loaded once


def test_backends_no_session_used_recently_are_evicted(tmp_path):
    from app_modules.checkpoints import CheckpointManager

    settings = config.load(None, ["llm=read-aloud", "tts=espeak", "thg=lite", f"pipeline.workdir={tmp_path}"])
    runtime = Runtime(settings, CheckpointManager(tmp_path / "checkpoints"), max_per_stage=2)
    sessions = [Session.create(settings, f"s{i}") for i in range(3)]
    try:
        for speed, s in zip((100, 120, 140), sessions, strict=True):
            s.settings.options["espeak"] = {"speed": speed}
        first = runtime.pipeline(settings=sessions[0].settings).stages.tts
        second = runtime.pipeline(settings=sessions[1].settings).stages.tts
        assert runtime.pipeline(settings=sessions[0].settings).stages.tts is first  # used again: now the newest
        third = runtime.pipeline(settings=sessions[2].settings).stages.tts
        speeds = sorted(json.loads(k[2])["speed"] for k in runtime.loaded("tts"))
        assert speeds == [100, 140]  # the least recently used (120) went; never more than 2 per stage
        assert runtime.pipeline(settings=sessions[0].settings).stages.tts is first
        assert runtime.pipeline(settings=sessions[2].settings).stages.tts is third
        # the evicted one loads again when its session comes back, still bounded
        again = runtime.pipeline(settings=sessions[1].settings).stages.tts
        assert again is not second and again.options.speed == 120 and len(runtime.loaded("tts")) == 2
        assert len(runtime.loaded("llm")) == 1 and len(runtime.loaded("thg")) == 1
    finally:
        for s in sessions:
            s.close()


def test_auto_is_offered_and_resolves_to_a_backend_that_runs(runtime, session):
    from app_modules.ui.settings_tab import model_choices

    choices = {"asr": "faster-whisper", "llm": "read-aloud", "tts": "auto", "thg": "auto"}
    message = apply(runtime, session, choices, {"tts": "# anything: auto's options come from the settings"}, "srt")
    assert "tts=auto" in message and session.settings.tts == "auto"
    pipe = runtime.pipeline(settings=session.settings)
    tts, thg = runtime.choice("tts", session.settings), runtime.choice("thg", session.settings)
    assert type(pipe.stages.tts).__name__.lower().startswith(tts.name) and thg.name == "lite"  # no Wav2Lip weights
    assert "auto picks lite" in options_yaml(runtime, "thg", "auto", session.settings)
    # the model manager: every catalog file with its source, and which models are complete
    rows = checkpoint_rows(runtime)
    assert any(r[1] == "model.safetensors" and r[4].startswith("hf:Qwen/Qwen2.5-0.5B-Instruct@") for r in rows)
    assert dict((key, label) for label, key in model_choices(runtime))["wav2lip"].startswith("wav2lip: talking head")
