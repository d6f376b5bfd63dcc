"""One browser session: its conversations, its own folder of generated files and its own settings.

Nothing here is global: the UI keeps a ``Session`` in ``gr.State`` (one per browser tab), and the
folder is removed when the session ends (or, after a crash, by the sweeper), so one visitor's answers
are never served to another. The conversations' text also goes to the visitor's own browser
(``snapshot`` / ``restore``), so a reload or a server restart does not lose it. The
session's ``settings`` start as a copy of the process's defaults; its settings tab changes them for
this session only (the backends themselves are shared through ``Runtime``'s cache).
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app_modules.config import LimitSettings, Settings
from app_modules.history import ChatHistory, Turn

SNAPSHOT_VERSION = 1
MAX_KEPT_TURNS = 50  # per conversation, in the browser: older turns would not fit a model's context anyway


def work_root(settings: Settings) -> Path:
    """Where session folders go: ``pipeline.workdir``, else Gradio's temp dir, else the system's."""
    base = settings.pipeline.workdir or os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
    return Path(base) / "talker-sessions"


def session_prefix(session_hash: str | None) -> str:
    # the hash comes from the browser: never put it in a path as it is
    digest = hashlib.sha256((session_hash or "").encode()).hexdigest()[:16]
    return f"s-{digest}-"


@dataclass
class Session:
    """A visitor's histories (one per tab, so each avatar keeps its own conversation), files and settings."""

    workdir: Path
    # this session's backends and options; replaced as a whole (never edited in place) by the settings
    # tab, so a turn that already started keeps the settings it started with
    settings: Settings = field(default_factory=Settings)
    histories: dict[str, ChatHistory] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, session_hash: str | None = None) -> Session:
        """A new session in ``settings``' work folder, with its own copy of ``settings``."""
        root = work_root(settings)
        root.mkdir(parents=True, exist_ok=True)
        workdir = root / f"{session_prefix(session_hash)}{uuid.uuid4().hex[:8]}"
        workdir.mkdir(mode=0o700)
        return cls(workdir, copy.deepcopy(settings))

    def history(self, key: str, persona: str | None = None) -> ChatHistory:
        h = self.histories.setdefault(key, ChatHistory(persona or ""))
        if persona is not None:
            h.system_prompt = persona
        return h

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.histories.clear()

    # ------------------------------------------------------------- kept in the visitor's browser
    def snapshot(self) -> dict[str, Any]:
        """The conversations as plain JSON, for the browser to keep (``gr.BrowserState``), so a reload or
        a server restart does not lose them. Only text: the videos are not kept."""
        return {"v": SNAPSHOT_VERSION, "chats": {
            key: {"persona": h.system_prompt, "turns": [[t.user, t.assistant] for t in h.turns[-MAX_KEPT_TURNS:]]}
            for key, h in self.histories.items() if h.turns}}

    def restore(self, data: Any, keys: Iterable[str], limits: LimitSettings) -> None:
        """Put back what ``snapshot`` gave the browser. It comes from the browser, so it is untrusted:
        anything malformed, unknown or beyond the limits is dropped, never an error."""
        if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION or not isinstance(data.get("chats"), dict):
            return
        keys = set(keys)
        for key, chat in data["chats"].items():
            if key not in keys or not isinstance(chat, dict) or not isinstance(chat.get("turns"), list):
                continue
            persona = chat.get("persona") if isinstance(chat.get("persona"), str) else ""
            turns = [Turn(u, a) for u, a in (t for t in chat["turns"][-MAX_KEPT_TURNS:]
                                             if isinstance(t, list) and len(t) == 2)
                     if isinstance(u, str) and isinstance(a, str) and 0 < len(u) <= limits.text_chars
                     and 0 < len(a) <= limits.answer_chars]
            if turns:
                self.histories[key] = ChatHistory(persona[:limits.text_chars], turns)


def close_session(session: Session | None) -> None:
    """``gr.State``'s delete callback."""
    if isinstance(session, Session):
        session.close()


def remove_session_folders(settings: Settings, session_hash: str | None) -> None:
    """On unload: remove every folder the closed browser session created."""
    root = work_root(settings)
    if not session_hash or not root.is_dir():
        return
    for p in root.glob(session_prefix(session_hash) + "*"):
        shutil.rmtree(p, ignore_errors=True)
