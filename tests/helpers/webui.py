"""Starting the real web UI and a real browser for the integration tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HAVE_CHROMIUM = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_webui(work: Path, overrides: list[str], env: dict[str, str] | None = None, host: str = "127.0.0.1",
                  port: int | None = None, https: bool = False,
                  settings_file: Path | None = None) -> Iterator[tuple[str, Path]]:
    """``python webui.py`` on a free port with ``--set`` overrides; yields its URL and its log file.
    ``env`` adds to the environment; ``https``: the server was told to serve TLS (certificates unchecked)."""
    import ssl

    port = port or free_port()
    cmd = [sys.executable, "webui.py"] + [a for o in [*overrides, f"server.port={port}", f"server.host={host}"]
                                          for a in ("--set", o)]
    if settings_file is not None:
        cmd += ["--settings", str(settings_file)]
    log_path = work / "server.log"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(work / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    url = f"{'https' if https else 'http'}://{host}:{port}/"
    context = ssl._create_unverified_context() if https else None
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        (work / "server.pid").write_text(str(proc.pid))  # for tests that watch the server's memory
        try:
            deadline = time.time() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"webui.py exited: {log_path.read_text()[-2000:]}")
                try:
                    urllib.request.urlopen(url, timeout=2, context=context)
                    break
                except urllib.error.HTTPError:  # up, and asking for a login
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError("webui.py did not start within 120 s") from None
                    time.sleep(0.5)
            yield url, log_path
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def chromium(microphone_wav: Path | None = None, window: str = "1300,1300", extra: tuple[str, ...] = ()):
    """Headless Debian chromium whose fake microphone plays ``microphone_wav`` (looped); ``extra`` flags."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # the background-networking flags keep chromium from dialling out on a closed network
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--window-size={window}", "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 *([f"--use-file-for-fake-audio-capture={microphone_wav}"] if microphone_wav else []), *extra):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    return driver
