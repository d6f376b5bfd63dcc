"""Building a pipeline's backends from settings (shared by the CLI, the web UI and the API)."""

from __future__ import annotations

from app_modules import registry
from app_modules.checkpoints import CheckpointManager
from app_modules.config import Settings
from app_modules.pipeline import Pipeline, Stages


def build_stage(settings: Settings, stage: str, checkpoints: CheckpointManager | None = None, name: str | None = None):
    name = name or settings.backend(stage)
    return registry.create(stage, name, settings.options_for(name), checkpoints)


def build_pipeline(settings: Settings, *, need_asr: bool = False, need_video: bool = True,
                   llm: str | None = None, checkpoints: CheckpointManager | None = None) -> Pipeline:
    """Load the backends a job needs; the ASR and THG are skipped when the job does not use them."""
    ck = checkpoints or CheckpointManager()
    stages = Stages(
        llm=build_stage(settings, "llm", ck, llm),
        tts=build_stage(settings, "tts", ck),
        thg=build_stage(settings, "thg", ck) if need_video else None,
        asr=build_stage(settings, "asr", ck) if need_asr else None,
    )
    return Pipeline(stages, settings.pipeline, limits=settings.limits)
