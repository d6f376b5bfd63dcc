"""Settings: one YAML file, typed on load, plus ``key=value`` overrides from the command line.

    asr: auto                  # a backend per stage (see `python -m app_modules.cli backends`);
    llm: auto                  # auto picks the best one present here (app_modules/auto.py)
    tts: auto
    thg: auto
    pipeline: {subtitles: srt, system_prompt: "..."}
    server: {host: 127.0.0.1, port: 7860}
    realtime: {end_silence_ms: 640, turn_url: "turn:turn.example.org:3478"}
    models: {source: huggingface}   # or modelscope: where the model manager downloads from
    options:                   # per backend, checked against the backend's Options dataclass
      openai: {base_url: "http://127.0.0.1:11434/v1", model: qwen2.5}
      espeak: {voice: en-us}

Overrides: ``tts=piper``, ``pipeline.subtitles=burn``, ``openai.model=gpt-4o-mini``, ``realtime.onset_ms=128``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app_modules.errors import TalkerError
from app_modules.registry import STAGES, names

AUTO = "auto"  # a stage's backend chosen by what is present and answering (app_modules/auto.py)
MODEL_SOURCES = ("huggingface", "modelscope")
DEFAULT_FILE = Path(__file__).resolve().parent.parent / "settings.yaml"


@dataclass
class PipelineSettings:
    # "srt": a subtitle file beside the video; "burn": also drawn into the final video
    subtitles: str = "srt"
    # the persona; empty for none
    system_prompt: str = ("You are a friendly digital human. Answer briefly in plain spoken sentences, "
                          "without markdown or emoji, in the language the user speaks.")
    # fixed ASR language (e.g. "en", "zh"), or empty to detect
    language: str = ""
    # where per-session files go; empty for the system temp folder
    workdir: str = ""
    # sentences shorter than this many characters are joined to the next one, so TTS gets real phrases
    min_sentence_chars: int = 6


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    # how many turns may render at once (GPU work); more requests wait in the queue
    concurrency: int = 1
    # the largest upload accepted, in megabytes
    max_upload_mb: int = 20
    # a bearer token the HTTP API requires; empty for none (TALKER_API_TOKEN also sets it)
    api_token: str = ""
    # --- running it for others (app_modules/security.py)
    # users and their passwords for the web UI and the API: {alice: "secret"}; TALKER_AUTH="alice:secret,bob:pw"
    # adds to them, so passwords can stay out of the file. Empty: no login (loopback only, see allow_no_auth)
    auth: dict[str, str] = field(default_factory=dict)
    # listening beyond this machine (host not 127.0.0.1/localhost) without a login is refused at start;
    # true opens the server to everyone who can reach it
    allow_no_auth: bool = False
    # serve over TLS, so browsers on other devices allow the microphone: true uses ssl_certfile/ssl_keyfile,
    # or, without them, a self-signed certificate made once (browsers warn about it once)
    https: bool = False
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    def users(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """Login names and passwords: ``auth`` plus TALKER_AUTH ("user:password,user2:password2")."""
        env = os.environ if env is None else env
        out = {str(k): str(v) for k, v in self.auth.items()}
        for item in (env.get("TALKER_AUTH") or "").split(","):
            user, sep, password = item.strip().partition(":")
            if sep and user and password:
                out[user] = password
        return out

    def token(self, env: Mapping[str, str] | None = None) -> str:
        env = os.environ if env is None else env
        return self.api_token or (env.get("TALKER_API_TOKEN") or "").strip()


@dataclass
class LimitSettings:
    """How much one request may ask for. Each bound refuses with a message that names it."""

    # the longest typed question, text to speak or persona, in characters
    text_chars: int = 2000
    # an answer is cut after this many characters (the model is stopped; what was said is kept)
    answer_chars: int = 4000
    # the most pixels a portrait may have, read from the file's header before it is decoded
    image_pixels: int = 40_000_000
    # the smallest face (its width in pixels) a talking head is asked to animate
    min_face_px: int = 48
    # the longest recorded question, in seconds
    audio_seconds: int = 120
    # request bodies that are not file uploads (JSON, form fields), in kilobytes
    request_kb: int = 2048
    # turns that may wait for a free render slot (server.concurrency); more are told the server is busy
    queue: int = 16
    # live (Real-time tab) conversations at once
    realtime_sessions: int = 2
    # session and job files, and Gradio's cached copies, untouched this long are removed (at start and hourly)
    files_ttl_minutes: int = 120


@dataclass
class VisitorSettings:
    """What a visitor may choose in the page's Settings tab (the rest is the operator's)."""

    # backends a visitor may pick, per stage, e.g. {tts: [espeak, piper]}; a stage not named here offers
    # every backend that can run on this machine
    backends: dict[str, list[str]] = field(default_factory=dict)
    # values of the options marked `listed` (model names, voice files) a visitor may pick, e.g.
    # {"openai.model": [qwen2.5:1.5b, llama3.2]}; without a list only the operator's own value
    choices: dict[str, list[Any]] = field(default_factory=dict)
    # whether the page's model manager may download weights (large files onto the server's disk) when the
    # server is reachable from other machines; on a loopback-only server the visitor is the operator and may
    downloads: bool = False


@dataclass
class RealtimeSettings:
    """The Real-time tab: its TURN server and when a spoken turn starts and ends.

    The turn-taking fields are ``app_modules.realtime.turn_vad.TurnOptions``' of the same names (and
    defaults); the TURN fields go to both the browser and the server side of the WebRTC connection.
    """

    # a TURN (or STUN) server for connections across NAT, e.g. "turn:turn.example.org:3478"; empty: direct only.
    # TALKER_TURN_URL, TALKER_TURN_USERNAME and TALKER_TURN_CREDENTIAL, where set, take precedence over these
    # three, so the credential can stay out of the file
    turn_url: str = ""
    turn_username: str = ""
    turn_credential: str = ""
    # the pause (ms) that ends the user's turn; shorter pauses (between words, a breath) keep it going
    end_silence_ms: int = 640
    # an utterance with less speech (ms) than this in total (a knock, "hm") is dropped, not answered
    min_utterance_ms: int = 250
    # speech must last this long (ms) before it counts; also the barge-in delay: keep it well under 300
    onset_ms: int = 96

    def turn_server(self, env: Mapping[str, str] | None = None) -> tuple[str, str, str]:
        """(url, username, credential): each from its environment variable where set, else from here."""
        env = os.environ if env is None else env
        return tuple(  # type: ignore[return-value]
            (env.get(var) or "").strip() or value
            for var, value in (("TALKER_TURN_URL", self.turn_url), ("TALKER_TURN_USERNAME", self.turn_username),
                               ("TALKER_TURN_CREDENTIAL", self.turn_credential)))


TURN_URL_SCHEMES = ("turn:", "turns:", "stun:")
SECTIONS = ("pipeline", "server", "realtime", "limits", "visitors", "models")


@dataclass
class ModelSettings:
    """The model manager (Settings tab, ``python -m app_modules.cli download``)."""

    # where downloads come from: "huggingface" (HF_ENDPOINT selects a mirror) or "modelscope", for the
    # models ModelScope publishes with the same files (faster-whisper, Qwen)
    source: str = "huggingface"


@dataclass
class Settings:
    asr: str = AUTO
    llm: str = AUTO
    tts: str = AUTO
    thg: str = AUTO
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    visitors: VisitorSettings = field(default_factory=VisitorSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    # backend name -> options for that backend's Options dataclass
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def backend(self, stage: str) -> str:
        return getattr(self, stage)

    def options_for(self, name: str) -> dict[str, Any]:
        return dict(self.options.get(name, {}))


def add_arguments(parser: argparse.ArgumentParser, example: str = "tts=piper --set openai.model=qwen2.5") -> None:
    """The ``--settings FILE`` and repeatable ``--set KEY=VALUE`` options every command line takes."""
    parser.add_argument("--settings", metavar="FILE", help="settings file (YAML); default: settings.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a setting (repeatable), e.g. --set {example}")


def from_args(args: argparse.Namespace, extra: list[str] | tuple[str, ...] = ()) -> Settings:
    """Settings from ``add_arguments``' options, with ``extra`` overrides applied last."""
    return load(getattr(args, "settings", None), [*(getattr(args, "set", None) or []), *extra])


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Settings:
    """Read the settings file (the default one if it exists), apply overrides, validate."""
    raw: dict[str, Any] = {}
    p = Path(path) if path else DEFAULT_FILE
    if path or p.exists():
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise TalkerError(f"cannot read settings file {p}: {e}") from e
        if not isinstance(raw, dict):
            raise TalkerError(f"settings file {p} must hold a mapping at the top level")
    for item in overrides or []:
        _apply_override(raw, item)
    return from_dict(raw)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise TalkerError(f"override {item!r} must look like key=value (e.g. tts=piper, openai.model=qwen2.5)")
    parts = key.strip().split(".")
    parsed = yaml.safe_load(value) if value.strip() else ""
    if len(parts) == 1 or parts[0] in STAGES or parts[0] in SECTIONS:
        target = raw
    else:  # a backend's option: openai.model=...
        target = raw.setdefault("options", {})
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = parsed


def from_dict(raw: dict[str, Any]) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TalkerError(f"unknown setting(s) {unknown}; valid settings = {sorted(known)}")
    s = Settings(
        pipeline=_section(PipelineSettings, _mapping(raw.get("pipeline"), "pipeline"), "pipeline"),
        server=_section(ServerSettings, _mapping(raw.get("server"), "server"), "server"),
        realtime=_section(RealtimeSettings, _mapping(raw.get("realtime"), "realtime"), "realtime"),
        limits=_section(LimitSettings, _mapping(raw.get("limits"), "limits"), "limits"),
        visitors=_section(VisitorSettings, _mapping(raw.get("visitors"), "visitors"), "visitors"),
        models=_section(ModelSettings, _mapping(raw.get("models"), "models"), "models"),
        options={str(k): _mapping(v, f"options.{k}") for k, v in (raw.get("options") or {}).items()},
    )
    for stage in STAGES:
        if stage in raw:
            setattr(s, stage, str(raw[stage]))
        if s.backend(stage) not in (*names(stage), AUTO):
            raise TalkerError(f"unknown {stage} backend {s.backend(stage)!r}; "
                              f"available {stage} backends = {', '.join(names(stage))}, or {AUTO}")
    if s.models.source not in MODEL_SOURCES:
        raise TalkerError(f"models.source must be one of {', '.join(MODEL_SOURCES)}, got {s.models.source!r}")
    if s.pipeline.subtitles not in ("srt", "burn"):
        raise TalkerError(f"pipeline.subtitles must be 'srt' or 'burn', got {s.pipeline.subtitles!r}")
    _check_realtime(s.realtime)
    _check_limits(s)
    return s


def _check_limits(s: Settings) -> None:
    for name, value in dataclasses.asdict(s.limits).items():
        if value < 1:
            raise TalkerError(f"limits.{name} must be at least 1, got {value!r}")
    if s.server.concurrency < 1 or s.server.max_upload_mb < 1:
        raise TalkerError(f"server.concurrency and server.max_upload_mb must be at least 1, got "
                          f"{s.server.concurrency}, {s.server.max_upload_mb}")
    for stage, allowed in s.visitors.backends.items():
        if stage not in STAGES or not isinstance(allowed, list):
            raise TalkerError(f"visitors.backends maps a stage ({', '.join(STAGES)}) to a list of backends, "
                              f"got {stage}: {allowed!r}")
        unknown = sorted(set(map(str, allowed)) - set(names(stage)))
        if unknown:
            raise TalkerError(f"visitors.backends.{stage}: unknown backend(s) {unknown}; "
                              f"available {stage} backends = {', '.join(names(stage))}")
    # `--set visitors.choices.openai.model=[a,b]` arrives nested: {openai: {model: [a, b]}}
    s.visitors.choices = {f"{k}.{name}" if isinstance(v, dict) else k: vv
                          for k, v in s.visitors.choices.items()
                          for name, vv in (v.items() if isinstance(v, dict) else [(None, v)])}
    for key, allowed in s.visitors.choices.items():
        if "." not in key or not isinstance(allowed, list):
            raise TalkerError(f"visitors.choices maps 'backend.option' to a list of values, got {key}: {allowed!r}")
    if bool(s.server.ssl_certfile) != bool(s.server.ssl_keyfile):
        raise TalkerError("server.ssl_certfile and server.ssl_keyfile go together: set both, or neither for a "
                          "self-signed certificate")


def _check_realtime(rt: RealtimeSettings) -> None:
    if rt.turn_url and not rt.turn_url.startswith(TURN_URL_SCHEMES):
        raise TalkerError(f"realtime.turn_url must start with {', '.join(TURN_URL_SCHEMES)} "
                          f"(e.g. turn:turn.example.org:3478), got {rt.turn_url!r}")
    for name in ("end_silence_ms", "onset_ms"):
        if getattr(rt, name) <= 0:
            raise TalkerError(f"realtime.{name} must be a positive number of milliseconds, got {getattr(rt, name)!r}")
    if rt.min_utterance_ms < 0:
        raise TalkerError(f"realtime.min_utterance_ms must be 0 or more milliseconds, got {rt.min_utterance_ms!r}")


def _mapping(v: Any, label: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise TalkerError(f"{label} must be a mapping of names to values, got {v!r}")
    return dict(v)


def _section(cls: type, raw: dict[str, Any], label: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise TalkerError(f"unknown {label} setting(s) {unknown}; valid = {sorted(fields)}")
    values = {}
    for k, v in raw.items():
        want = fields[k].type
        if want == "int" and (not isinstance(v, int) or isinstance(v, bool)):
            raise TalkerError(f"{label}.{k} must be an integer, got {v!r}")
        if want == "bool" and not isinstance(v, bool):
            raise TalkerError(f"{label}.{k} must be true or false, got {v!r}")
        if want.startswith("dict[") and not isinstance(v, dict):
            raise TalkerError(f"{label}.{k} must be a mapping, got {v!r}")
        if want == "str" and v is not None and not isinstance(v, str):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TalkerError(f"{label}.{k} must be text, got {v!r}")
            v = str(v)  # e.g. a numeric token or password read as a number
        values[k] = "" if want == "str" and v is None else v
    return cls(**values)
