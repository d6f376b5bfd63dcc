"""Building a pipeline's backends from settings (shared by the CLI, the web UI and the API)."""

from __future__ import annotations

from collections.abc import Callable

from app_modules import auto, registry
from app_modules.checkpoints import CheckpointManager
from app_modules.config import Settings
from app_modules.pipeline import Pipeline, Stages


def build_stage(settings: Settings, stage: str, checkpoints: CheckpointManager | None = None, name: str | None = None,
                report: Callable[[auto.Choice], None] | None = None):
    """``stage``'s backend: ``name`` if given, else the settings' (``auto`` resolved; ``report`` hears the choice)."""
    if name is not None:
        return registry.create(stage, name, settings.options_for(name), checkpoints)
    choice = auto.resolve(settings, stage, checkpoints)
    if report:
        report(choice)
    return registry.create(stage, choice.name, choice.options, checkpoints)


def build_pipeline(settings: Settings, *, need_asr: bool = False, need_video: bool = True,
                   llm: str | None = None, checkpoints: CheckpointManager | None = None,
                   report: Callable[[auto.Choice], None] | None = None) -> Pipeline:
    """Load the backends a job needs; the ASR and THG are skipped when the job does not use them."""
    ck = checkpoints or CheckpointManager(source=settings.models.source)
    stages = Stages(
        llm=build_stage(settings, "llm", ck, llm, report),
        tts=build_stage(settings, "tts", ck, report=report),
        thg=build_stage(settings, "thg", ck, report=report) if need_video else None,
        asr=build_stage(settings, "asr", ck, report=report) if need_asr else None,
    )
    return Pipeline(stages, settings.pipeline, limits=settings.limits)
