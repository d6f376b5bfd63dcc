"""The one declaration per backend option: types and ranges (NaN, infinity and zero included) are checked
when an Options is made, and a visitor may change only what it declares safe; keys are never shown."""

from __future__ import annotations

import dataclasses
import importlib
import math

import pytest

from app_modules import config, registry
from app_modules import options as declared
from app_modules.errors import BadInputError, TalkerError


def _options_class(spec):
    """The Options class of a registered backend, read without importing its heavy packages when they are
    missing: the module is imported only where it can be."""
    try:
        return registry.load_class(spec).Options
    except TalkerError:
        return None


def test_every_registered_backend_declares_frozen_checked_options():
    seen = 0
    for spec in registry.BACKENDS:
        opt_cls = _options_class(spec)
        if opt_cls is None:
            continue
        seen += 1
        assert dataclasses.is_dataclass(opt_cls) and opt_cls.__dataclass_params__.frozen, spec.name
        assert issubclass(opt_cls, declared.Declared) and opt_cls.label == spec.name, spec.name
        o = opt_cls()
        for f in dataclasses.fields(o)[:1]:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(o, f.name, None)
    assert seen >= 8  # espeak, piper, lite, read-aloud, openai, gemini, faster-whisper ... are installed here


@pytest.mark.parametrize(("name", "values", "message"), [
    ("lite", {"open_scale": math.nan}, "lite.open_scale must be a finite number"),
    ("lite", {"open_scale": math.inf}, "lite.open_scale must be a finite number"),
    ("lite", {"fps": 0}, "lite.fps must be between 1 and 60"),
    ("lite", {"fps": 25.5}, "lite.fps must be a whole number"),
    ("lite", {"fps": True}, "lite.fps must be a whole number"),
    ("espeak", {"speed": 5000}, "espeak.speed must be between 80 and 450"),
    ("espeak", {"voice": ["en"]}, "espeak.voice must be text"),
    ("openai", {"temperature": "nan"}, "openai.temperature must be a finite number"),
    ("openai", {"max_tokens": 0}, "openai.max_tokens must be between 1"),
    ("openai", {"timeout": 0}, "openai.timeout must be between"),
    ("openai", {"preset": "evil"}, "unknown openai.preset 'evil'"),
    ("piper", {"speaker": -1}, "piper.speaker must be between 0"),
    ("piper", {"noise_scale": math.nan}, "piper.noise_scale must be a finite number"),
])
def test_bad_values_are_refused_before_any_work(name, values, message):
    spec = next(s for s in registry.BACKENDS if s.name == name)
    cls = registry.load_class(spec)
    with pytest.raises(BadInputError, match=message.replace(".", r"\.")):
        registry.build_options(cls, values)


def test_command_line_strings_become_the_declared_type():
    cls = registry.load_class(registry.spec("tts", "piper"))
    o = registry.build_options(cls, {"speaker": "2", "speed": "1.5", "noise_w": "None"})
    assert (o.speaker, o.speed, o.noise_w) == (2, 1.5, None)
    lite = registry.load_class(registry.spec("thg", "lite"))
    assert registry.build_options(lite, {"open_scale": 1}).open_scale == 1.0


def test_a_bad_option_in_the_settings_stops_the_start():
    with pytest.raises(BadInputError, match="lite.fps must be between 1 and 60, got 0"):
        declared.check_settings(config.load(None, ["llm=read-aloud", "lite.fps=0"]))
    declared.check_settings(config.load(None, ["llm=read-aloud", "lite.fps=30"]))


def _openai():
    return importlib.import_module("LLM.openai_llm").OpenAILLM.Options


@pytest.mark.parametrize(("cls_of", "field"), [
    (_openai, "base_url"), (_openai, "api_key"), (_openai, "timeout"),
    (lambda: importlib.import_module("VITS.gptsovits_tts").GPTSoVITSTTS.Options, "allow_pickle"),
    (lambda: importlib.import_module("VITS.gptsovits_tts").GPTSoVITSTTS.Options, "threads"),
    (lambda: importlib.import_module("VITS.gptsovits_tts").GPTSoVITSTTS.Options, "t2s_checkpoint"),
    (lambda: importlib.import_module("VITS.gptsovits_tts").GPTSoVITSTTS.Options, "voices_dir"),
    (lambda: importlib.import_module("ASR.faster_whisper_asr").FasterWhisperASR.Options, "download_root"),
    (lambda: importlib.import_module("ASR.faster_whisper_asr").FasterWhisperASR.Options, "device"),
    (lambda: importlib.import_module("THG.lite_thg").LiteTHG.Options, "fps"),
])
def test_a_visitor_cannot_set_paths_urls_keys_pickle_threads_or_devices(cls_of, field):
    try:
        opt_cls = cls_of()
    except ImportError as e:
        pytest.skip(f"not installed here: {e}")
    with pytest.raises(BadInputError, match=f"{field} is set by the operator"):
        declared.overlay(opt_cls, {}, {field: "x"})
    assert field not in declared.visible(opt_cls, {field: "x"})


def test_a_visitor_may_change_safe_options_and_listed_ones_only_among_the_operators_values():
    opt_cls = _openai()
    operator = {"base_url": "http://127.0.0.1:9/v1", "model": "qwen2.5:1.5b", "api_key": "sk-operator-SECRET"}
    merged = declared.overlay(opt_cls, operator, {"temperature": 0.2, "model": "qwen2.5:1.5b"})
    assert merged == {**operator, "temperature": 0.2, "model": "qwen2.5:1.5b"}
    with pytest.raises(BadInputError, match="values the operator allows: qwen2.5:1.5b; got 'gpt-4o'"):
        declared.overlay(opt_cls, operator, {"model": "gpt-4o"})
    allowed = {"openai.model": ["qwen2.5:1.5b", "llama3.2"]}
    assert declared.overlay(opt_cls, operator, {"model": "llama3.2"}, allowed)["model"] == "llama3.2"
    shown = declared.visible(opt_cls, operator)
    assert "api_key" not in shown and "base_url" not in shown and "model" not in shown and "temperature" in shown
    assert declared.visible(opt_cls, operator, allowed)["model"] == "qwen2.5:1.5b"  # offered once listed
    assert "sk-operator-SECRET" not in repr(opt_cls(**operator))


def test_declarations_carry_what_a_settings_page_needs():
    f = {f.name: f for f in dataclasses.fields(registry.load_class(registry.spec("tts", "espeak")).Options)}
    spec = declared.spec_of(f["speed"])
    assert (spec.min, spec.max, spec.access, spec.step) == (80, 450, declared.VISITOR, 10)
