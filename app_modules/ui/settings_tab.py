"""The settings tab: which backend runs each stage, each backend's options, and the model manager.

A change here applies to this browser session's next turn only: it replaces the session's own
``Settings`` (a copy of the process's defaults), never the defaults, which only the settings file and
the command line set. Sessions that choose the same backend with the same options share one loaded
instance (``Runtime``'s cache). Server settings (host, port, concurrency, upload limit, API token)
are the process's and are not offered here. Only backends that can run here (and that the operator
offers visitors) are offered; the others are listed with the reason and the fix. Each backend's
options are shown and accepted only where their declaration (``app_modules.options``) lets a visitor
change them: paths, URLs, keys, pickle, threads, devices and cache folders are never on this page.
"""

from __future__ import annotations

import copy
import dataclasses

import gradio as gr
import yaml

from app_modules import config, registry
from app_modules import options as declared
from app_modules.checkpoints import DESCRIPTIONS
from app_modules.config import AUTO, Settings
from app_modules.errors import TalkerError
from app_modules.security import is_loopback
from app_modules.ui.chat_tabs import ensure_session
from app_modules.ui.runtime import Runtime
from app_modules.ui.session import Session


def available(runtime: Runtime, stage: str) -> list[str]:
    """The backends a visitor may pick for ``stage``: those the operator allows (``visitors.backends``;
    all, where the stage is not named) that can run here, and always the operator's own choice."""
    allowed = runtime.settings.visitors.backends.get(stage)
    mine = runtime.settings.backend(stage)
    return [s.name for s in registry.BACKENDS
            if s.stage == stage and (allowed is None or s.name in allowed or s.name == mine)
            and registry.why_unavailable(s, runtime.checkpoints) is None]


def offered(runtime: Runtime, stage: str) -> list[str]:
    """What the stage's drop-down offers: ``auto`` (the best of the others, as ``app_modules.auto`` picks)
    where the operator allows it, then ``available``."""
    allowed = runtime.settings.visitors.backends.get(stage)
    auto = allowed is None or AUTO in allowed or runtime.settings.backend(stage) == AUTO
    return [AUTO] * auto + available(runtime, stage)


def unavailable_table(runtime: Runtime) -> list[list[str]]:
    rows = []
    for s in registry.BACKENDS:
        why = registry.why_unavailable(s, runtime.checkpoints)
        if why:
            rows.append([s.stage, s.name, why])
    return rows


def options_yaml(runtime: Runtime, stage: str, name: str | None, settings: Settings | None = None,
                 probe: bool = True) -> str:
    """The options a visitor may change for the backend (``app_modules.options``: never a path, URL, key or
    process-wide knob), with their values in ``settings`` (a session's; default: the process's), as YAML.
    For ``auto``, what it picks (``probe=False``: without asking servers)."""
    if not name:
        return ""
    if name == AUTO:
        if not probe:
            return "# auto: the best backend present and answering here (the line at the top of the page says which)\n"
        choice = runtime.choice(stage, settings)
        return (f"# auto picks {choice.name}: {choice.describe()}\n# its options come from the settings file; "
                f"choose {choice.name} here to change them\n")
    try:
        opt_cls = getattr(registry.load_class(registry.spec(stage, name)), "Options", None)
    except TalkerError as e:
        return f"# {e}\n"
    if opt_cls is None:
        return "# no options\n"
    values = declared.visible(opt_cls, (settings or runtime.settings).options_for(name),
                              runtime.settings.visitors.choices)
    if not values:
        return "# nothing here a visitor may change\n"
    return yaml.safe_dump(values, sort_keys=False, allow_unicode=True)


def apply(runtime: Runtime, session: Session, choices: dict[str, str], option_texts: dict[str, str],
          subtitles: str) -> str:
    """Validate the new settings fully (every chosen backend's options) before they replace the
    session's own; other sessions and the process's defaults are untouched.

    A visitor changes only what the operator lets a visitor change: a backend among ``available``, the
    options declared ``visitor`` (or ``listed``, among ``visitors.choices``), the subtitles. Everything
    else (the server, the limits, paths, URLs, keys) stays the operator's."""
    s = copy.deepcopy(session.settings)
    operator = runtime.settings
    raw = {"pipeline": dataclasses.asdict(s.pipeline), "server": dataclasses.asdict(operator.server),
           "limits": dataclasses.asdict(operator.limits), "realtime": dataclasses.asdict(operator.realtime),
           "visitors": dataclasses.asdict(operator.visitors), "models": dataclasses.asdict(operator.models),
           "options": copy.deepcopy(operator.options)}
    if subtitles not in ("srt", "burn"):
        raise TalkerError(f"subtitles must be srt or burn, got {subtitles!r}")
    raw["pipeline"]["subtitles"] = subtitles
    for stage in registry.STAGES:
        name = choices.get(stage) or s.backend(stage)
        if name not in offered(runtime, stage):
            raise TalkerError(f"the {stage} backend {name!r} is not offered here; choose one of "
                              f"{', '.join(offered(runtime, stage))}")
        raw[stage] = name
        if name == AUTO:  # auto's options are those of the backend it picks, from the settings
            continue
        text = option_texts.get(stage, "")
        if len(text) > 20_000:
            raise TalkerError(f"the {stage} options are too long")
        try:
            opts = yaml.safe_load(text) if text.strip() else {}
        except yaml.YAMLError as e:
            raise TalkerError(f"the {stage} options are not valid YAML: {e}") from e
        if opts is None:
            opts = {}
        if not isinstance(opts, dict):
            raise TalkerError(f"the {stage} options must be a mapping of name: value")
        cls = registry.load_class(registry.spec(stage, name))
        opt_cls = getattr(cls, "Options", None)
        merged = declared.overlay(opt_cls, operator.options_for(name), opts, operator.visitors.choices) \
            if opt_cls is not None else opts
        registry.build_options(cls, merged)  # unknown or mistyped options are named now, not at the next turn
        raw["options"][name] = merged
    new = config.from_dict(raw)
    session.settings = new  # swapped whole: a turn already running keeps the settings it started with
    return ("Saved for this session. The backends " + ", ".join(f"{st}={new.backend(st)}" for st in registry.STAGES)
            + " are used from the next turn.")


def checkpoint_rows(runtime: Runtime) -> list[list]:
    ck = runtime.checkpoints
    return [[f.backend, f.name, f.size_mb or "", "optional" if f.optional else "required", f.source(ck.source),
             "✅ present" if ok else "missing"] for f, ok in ck.status()]


def model_choices(runtime: Runtime) -> list[tuple[str, str]]:
    """(label, model) pairs for the download drop-down: what each model is for, and whether it is here."""
    ck = runtime.checkpoints
    return [(f"{key}: {DESCRIPTIONS.get(key, '')}{' ✅' if ck.complete(key) else ''}", key) for key in ck.catalog]


def settings_tab(runtime: Runtime, state: gr.State) -> None:
    gr.Markdown("Backends per stage. Changes apply to **this browser session only**, from its next turn; "
                "other visitors keep their own. Only backends that can run on this machine are offered.")
    dropdowns: dict[str, gr.Dropdown] = {}
    codes: dict[str, gr.Code] = {}
    for stage in registry.STAGES:
        names = offered(runtime, stage)
        current = runtime.settings.backend(stage)
        with gr.Row():
            dropdowns[stage] = gr.Dropdown(names, value=current if current in names else None,
                                           label=f"{stage.upper()} backend", scale=1, elem_id=f"settings-{stage}")
            codes[stage] = gr.Code(options_yaml(runtime, stage, current if current in names else None, probe=False),
                                   language="yaml", label=f"{stage.upper()} options", scale=2,
                                   elem_id=f"settings-{stage}-options")
        dropdowns[stage].change(
            lambda name, session, st=stage: options_yaml(
                runtime, st, name, session.settings if isinstance(session, Session) else None),
            [dropdowns[stage], state], codes[stage], api_name=False, concurrency_limit=None)
    subtitles = gr.Radio(["srt", "burn"], value=runtime.settings.pipeline.subtitles,
                         label="Subtitles: a separate track (srt) or drawn into the video (burn)")
    save = gr.Button("Apply settings", variant="primary", elem_id="settings-apply")
    result = gr.Markdown(elem_id="settings-result")
    with gr.Accordion("Backends that cannot run here, and why", open=False):
        gr.Dataframe(unavailable_table(runtime), headers=["stage", "backend", "why not / how to fix"],
                     interactive=False, wrap=True)

    def on_save(request: gr.Request, session, *values):  # gr.Request first: *values follows
        session = ensure_session(runtime, session, request)
        n = len(registry.STAGES)
        choices = dict(zip(registry.STAGES, values[:n], strict=True))
        texts = dict(zip(registry.STAGES, values[n:2 * n], strict=True))
        try:
            return session, apply(runtime, session, choices, texts, values[-1])
        except TalkerError as e:
            return session, f"⚠️ Not saved: {e}"

    save.click(on_save, [state, *dropdowns.values(), *codes.values(), subtitles], [state, result],
               api_name="apply_settings", concurrency_limit=None)

    gr.Markdown("### Model manager\nEvery model the backends use; a backend is offered above once all its files "
                "are here. `python -m app_modules.cli download --list` prints the same.")
    table = gr.Dataframe(checkpoint_rows(runtime), headers=["model", "file", "MB", "kind", "source", "status"],
                         interactive=False, elem_id="models-table")
    with gr.Row():
        which = gr.Dropdown(model_choices(runtime), label="Model to download", scale=2, elem_id="models-which")
        download = gr.Button("Download", scale=1, elem_id="models-download")
        refresh = gr.Button("Refresh", scale=1)
    message = gr.Markdown(elem_id="models-message")

    def on_download(backend, progress=gr.Progress()):  # noqa: B008 - gradio's way to ask for a progress bar
        if not (runtime.settings.visitors.downloads or is_loopback(runtime.settings.server.host)):
            return gr.skip(), ("Downloads are the operator's: run `python -m app_modules.cli download "
                               f"{backend or 'NAME'}` on the server (or set visitors.downloads: true).")
        if not backend:
            return gr.skip(), "Pick a backend to download first."

        def report(name: str, done: int, total: int | None) -> None:
            progress(done / total if total else None, desc=f"{name}: {done / 1e6:.0f} MB")

        try:
            paths = runtime.checkpoints.download(backend, progress=report)
        except TalkerError as e:
            return checkpoint_rows(runtime), f"⚠️ {e}"
        return checkpoint_rows(runtime), (f"Downloaded {len(paths)} file(s) for {backend}. `auto` uses it from the "
                                          "next turn (within half a minute); reload the page to offer it above.")

    download.click(on_download, which, [table, message], api_name=False, concurrency_limit=2)
    refresh.click(lambda: checkpoint_rows(runtime), None, table, api_name=False, concurrency_limit=None)
