"""Sweeping: what nothing touched for the time-to-live goes (a crash leaves it), what is in use stays,
and a link is removed without following it."""

from __future__ import annotations

import os
import time

from app_modules.sweep import Sweeper, sweep


def _age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def test_stale_entries_go_and_live_ones_stay(tmp_path):
    root = tmp_path / "sessions"
    dead, live, old_file = root / "s-dead", root / "s-live", root / "partial.mp4"
    for d in (dead / "turn-1", live / "turn-1"):
        d.mkdir(parents=True)
        (d / "answer.mp4").write_bytes(b"x")
        _age(d / "answer.mp4", 7200)
        _age(d, 7200)
    (live / "turn-2").mkdir()  # a live session wrote a new turn a moment ago, deep inside
    _age(dead, 7200)
    _age(live, 7200)
    old_file.write_bytes(b"half")
    _age(old_file, 7200)
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    link = root / "link-to-outside"
    link.symlink_to(outside)
    _age(link, 7200)

    assert sweep(root, 3600) == 3
    assert not dead.exists() and live.is_dir() and not old_file.exists() and not link.is_symlink()
    assert outside.read_text() == "keep me"  # the link went, not what it pointed at
    assert sweep(tmp_path / "missing", 3600) == 0


def test_the_sweeper_runs_at_start(tmp_path):
    stale = tmp_path / "job"
    stale.mkdir()
    _age(stale, 10_000)
    sweeper = Sweeper([tmp_path], 3600, every_s=3600).start()
    try:
        assert not stale.exists()
    finally:
        sweeper.stop()
