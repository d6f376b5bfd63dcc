"""Nothing left behind: folders of sessions and jobs that are gone, and Gradio's cached copies.

A session's folder is removed when its tab closes, a job's after its hour; but a server that crashed
or was killed removes nothing. ``sweep`` removes every entry of a folder that nothing has touched for
``max_age_s``; ``Sweeper`` runs it at start and then on a timer. Links are removed, never followed.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def newest_mtime(path: Path, limit: int = 10_000) -> float:
    """The latest modification time of ``path`` and what it holds (a live session writes into turn folders)."""
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return 0.0
    if not stat.S_ISDIR(path.lstat().st_mode):
        return newest
    seen = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
            seen += 1
            if seen >= limit:
                return newest
    return newest


def sweep(folder: Path, max_age_s: float, now: float | None = None) -> int:
    """Remove the entries of ``folder`` untouched for ``max_age_s``; returns how many went."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        path = Path(entry.path)
        if now - newest_mtime(path) < max_age_s:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError as e:
            log.debug("could not remove %s: %s", path, e)
    return removed


class Sweeper:
    """``sweep`` over ``folders`` now and then every ``every_s`` seconds, on a daemon thread."""

    def __init__(self, folders: Iterable[Path], max_age_s: float, every_s: float = 600.0):
        self.folders = [Path(f) for f in folders]
        self.max_age_s = max_age_s
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        return sum(sweep(f, self.max_age_s) for f in self.folders)

    def start(self) -> Sweeper:
        removed = self.run_once()
        if removed:
            log.info("removed %d stale file(s) and folder(s) left by earlier runs", removed)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="talker-sweeper")
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the sweeper must outlive one bad folder
                log.exception("sweeping failed")

    def stop(self) -> None:
        self._stop.set()
