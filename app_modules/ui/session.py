"""One browser session: its conversations and its own folder of generated files.

Nothing here is global: the UI keeps a ``Session`` in ``gr.State`` (one per browser tab), and the
folder is removed when the session ends, so one visitor's answers are never served to another.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from app_modules.config import Settings
from app_modules.history import ChatHistory


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
    """A visitor's histories (one per tab, so each avatar keeps its own conversation) and files."""

    workdir: Path
    histories: dict[str, ChatHistory] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, session_hash: str | None = None) -> Session:
        root = work_root(settings)
        root.mkdir(parents=True, exist_ok=True)
        workdir = root / f"{session_prefix(session_hash)}{uuid.uuid4().hex[:8]}"
        workdir.mkdir(mode=0o700)
        return cls(workdir)

    def history(self, key: str, persona: str | None = None) -> ChatHistory:
        h = self.histories.setdefault(key, ChatHistory(persona or ""))
        if persona is not None:
            h.system_prompt = persona
        return h

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.histories.clear()


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
