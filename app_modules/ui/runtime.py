"""What one process shares between all sessions: the settings and the loaded backends.

Backends are heavy (model weights), so each is built once, on first use, and shared by every session
and tab; a turn keeps its own state in its ``ChatHistory`` and working folder. Changing a backend in
the settings tab swaps the settings and drops the cached instances, so the next turn loads anew.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from app_modules import registry
from app_modules.checkpoints import CheckpointManager
from app_modules.config import Settings
from app_modules.pipeline import Pipeline, Stages


class Runtime:
    """Settings plus a cache of backend instances keyed by (stage, name, options)."""

    def __init__(self, settings: Settings, checkpoints: CheckpointManager | None = None):
        self._settings = settings
        self.checkpoints = checkpoints or CheckpointManager()
        self._lock = threading.RLock()
        self._backends: dict[tuple[str, str, str], Any] = {}
        self._pipelines: dict[tuple, Pipeline] = {}
        self.generation = 0  # bumped on every settings change, so a UI can tell it is stale

    @property
    def settings(self) -> Settings:
        return self._settings

    def replace_settings(self, settings: Settings) -> None:
        """New settings for every later turn; turns already running finish on the old backends."""
        with self._lock:
            self._settings = settings
            self._backends.clear()
            self._pipelines.clear()
            self.generation += 1

    def backend(self, stage: str, name: str | None = None, extra_options: dict[str, Any] | None = None) -> Any:
        s = self._settings
        name = name or s.backend(stage)
        options = {**s.options_for(name), **(extra_options or {})}
        key = (stage, name, json.dumps(options, sort_keys=True, default=str))
        # one lock for all loads: two sessions asking at once must not load the same weights twice
        with self._lock:
            if key not in self._backends:
                self._backends[key] = registry.create(stage, name, options, self.checkpoints)
            return self._backends[key]

    def pipeline(self, *, need_asr: bool = False, need_video: bool = True, llm: str | None = None,
                 tts: str | None = None, tts_options: dict[str, Any] | None = None) -> Pipeline:
        """A pipeline over shared backends. Raises ``TalkerError`` when a backend cannot load."""
        with self._lock:
            stages = Stages(
                llm=self.backend("llm", llm),
                tts=self.backend("tts", tts, tts_options),
                thg=self.backend("thg") if need_video else None,
                asr=self.backend("asr") if need_asr else None,
            )
            # the pipeline caches prepared avatars, so keep one per set of backends
            key = tuple(id(x) for x in (stages.llm, stages.tts, stages.thg, stages.asr))
            if key not in self._pipelines:
                self._pipelines[key] = Pipeline(stages, self._settings.pipeline)
            return self._pipelines[key]
