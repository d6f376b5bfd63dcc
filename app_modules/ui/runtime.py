"""What one process shares between all sessions: the default settings and the loaded backends.

Backends are heavy (model weights), so each is built once, on first use, and shared by every
session that asks for the same one: the cache is keyed by (stage, name, options), so two sessions
with the same choice get the same instance and nothing loads twice. Which backends a turn uses is
the session's business: each ``Session`` holds its own ``Settings`` (a copy of the defaults that its
settings tab may change), and passes them to ``pipeline``. The defaults themselves only come from
the settings file and the command line.

A stage set to ``auto`` is resolved by ``app_modules.auto`` (which probes servers): the choice is kept
for ``AUTO_TTL_S`` seconds, so a server started later is picked up without probing on every turn.

Memory stays bounded: when more than ``max_per_stage`` backends of one stage are loaded, the ones
used least recently are dropped from the cache (a turn still running on one keeps it alive until it
ends; the next turn that wants it loads it again).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
from collections import OrderedDict
from typing import Any

from app_modules import auto, registry
from app_modules.checkpoints import CheckpointManager
from app_modules.config import AUTO, Settings
from app_modules.pipeline import Pipeline, Stages
from app_modules.slots import RenderSlots

BackendKey = tuple[str, str, str]  # (stage, name, options as sorted JSON)
AUTO_TTL_S = 30.0


class Runtime:
    """The process's default settings plus a bounded cache of backend instances."""

    def __init__(self, settings: Settings, checkpoints: CheckpointManager | None = None, max_per_stage: int = 4,
                 probes: auto.Probes | None = None):
        self._settings = settings
        self.checkpoints = checkpoints or CheckpointManager(source=settings.models.source)
        self.max_per_stage = max(1, max_per_stage)
        # the one limit on turns rendering at once: every tab, the API and real-time sessions share it
        self.renders = RenderSlots(settings.server.concurrency, settings.limits.queue)
        self.probes = probes or auto.Probes()
        self._choices: dict[str, tuple[float, auto.Choice]] = {}
        self._lock = threading.RLock()
        self._face_mesh: Any = None
        self._face_lock = threading.Lock()
        # least recently used first
        self._backends: OrderedDict[BackendKey, Any] = OrderedDict()
        self._pipelines: OrderedDict[tuple, Pipeline] = OrderedDict()

    @property
    def settings(self) -> Settings:
        """The process-wide defaults (settings file and command line). Never changed by a page."""
        return self._settings

    def session_settings(self) -> Settings:
        """A new session's own settings: a copy of the defaults it may change without touching others."""
        return copy.deepcopy(self._settings)

    def choice(self, stage: str, settings: Settings | None = None) -> auto.Choice:
        """The backend ``stage`` runs with: the settings' own, or what ``auto`` picks (kept a little while)."""
        s = settings or self._settings
        if s.backend(stage) != AUTO:
            return auto.resolve(s, stage, self.checkpoints, self.probes)
        key = json.dumps([stage, s.options, s.models.source], sort_keys=True, default=str)
        with self._lock:
            hit = self._choices.get(key)
            if hit and time.monotonic() - hit[0] < AUTO_TTL_S:
                return hit[1]
        made = auto.resolve(s, stage, self.checkpoints, self.probes)
        with self._lock:
            self._choices[key] = (time.monotonic(), made)
        return made

    def answering(self, settings: Settings | None = None) -> str:
        """A line for the page: which model answers, which voice speaks, which face moves, and how to do better."""
        parts = []
        for stage, title in (("llm", "Answering"), ("tts", "Voice"), ("thg", "Face")):
            c = self.choice(stage, settings)
            parts.append(f"**{title}:** {c.label or c.name}" + (f" ({c.better})" if c.better else ""))
        return " · ".join(parts)

    def backend_key(self, stage: str, name: str | None = None, extra_options: dict[str, Any] | None = None,
                    settings: Settings | None = None) -> BackendKey:
        s = settings or self._settings
        if name is None:
            c = self.choice(stage, s)
            name, base = c.name, c.options
        else:
            base = s.options_for(name)
        options = {**base, **(extra_options or {})}
        return (stage, name, json.dumps(options, sort_keys=True, default=str))

    def backend(self, stage: str, name: str | None = None, extra_options: dict[str, Any] | None = None,
                settings: Settings | None = None) -> Any:
        """The shared instance for ``stage`` as ``settings`` (default: the process's) configure it."""
        key = self.backend_key(stage, name, extra_options, settings)
        # one lock for all loads: two sessions asking at once must not load the same weights twice
        with self._lock:
            if key in self._backends:
                self._backends.move_to_end(key)
                return self._backends[key]
            instance = registry.create(stage, key[1], json.loads(key[2]), self.checkpoints)
            self._backends[key] = instance
            self._evict(stage)
            return instance

    def _evict(self, stage: str) -> None:
        keys = [k for k in self._backends if k[0] == stage]  # least recently used first
        for key in keys[:max(0, len(keys) - self.max_per_stage)]:
            del self._backends[key]
            for pkey in [p for p in self._pipelines if key in p[0]]:
                del self._pipelines[pkey]

    def loaded(self, stage: str | None = None) -> list[BackendKey]:
        """The cached backends' keys (of one stage, or all), least recently used first."""
        with self._lock:
            return [k for k in self._backends if stage is None or k[0] == stage]

    def pipeline(self, *, settings: Settings | None = None, need_asr: bool = False, need_video: bool = True,
                 llm: str | None = None, tts: str | None = None,
                 tts_options: dict[str, Any] | None = None) -> Pipeline:
        """A pipeline over shared backends, as ``settings`` (a session's; default: the process's) choose.

        Raises ``TalkerError`` when a backend cannot load."""
        s = settings or self._settings
        wanted = [("llm", llm, None), ("tts", tts, tts_options)]
        if need_video:
            wanted.append(("thg", None, None))
        if need_asr:
            wanted.append(("asr", None, None))
        for stage, name, _ in wanted:  # probe for auto stages before taking the lock other sessions wait on
            if name is None:
                self.choice(stage, s)
        with self._lock:
            instances = {stage: self.backend(stage, name, opts, s) for stage, name, opts in wanted}
            keys = tuple(self.backend_key(stage, name, opts, s) for stage, name, opts in wanted)
            stages = Stages(llm=instances["llm"], tts=instances["tts"], thg=instances.get("thg"),
                            asr=instances.get("asr"))
            # the pipeline caches prepared avatars, so keep one per set of backends and pipeline settings
            pkey = (keys, json.dumps(dataclasses.asdict(s.pipeline), sort_keys=True, default=str))
            if pkey in self._pipelines:
                self._pipelines.move_to_end(pkey)
            else:
                # limits are the operator's, whatever settings a session chose
                self._pipelines[pkey] = Pipeline(stages, copy.deepcopy(s.pipeline), limits=self._settings.limits,
                                                 slots=self.renders, face_width=self.face_width)
                while len(self._pipelines) > 2 * self.max_per_stage:
                    self._pipelines.popitem(last=False)
            return self._pipelines[pkey]

    def face_width(self, image: Any) -> float | None:
        """The width in pixels of the face in ``image`` (one shared MediaPipe mesh), None when no face is
        found or MediaPipe is not installed: the talking head then decides for itself."""
        with self._face_lock:
            if self._face_mesh is None:
                try:
                    from THG.face_mesh import FaceMesh

                    self._face_mesh = FaceMesh()
                except ImportError:
                    self._face_mesh = False
        if self._face_mesh is False:
            return None
        from THG.face_mesh import face_width

        landmarks = self._face_mesh(image)
        return None if landmarks is None else face_width(landmarks)

