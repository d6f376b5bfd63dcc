"""Talker's web UI, with the HTTP API on the same port.

    python webui.py [--settings settings.yaml] [--set tts=piper --set openai.model=qwen2.5]

``demo`` is built at import with no side effects (no model loads until the first turn), so
``gradio webui.py`` reload mode and tests can import it; the server starts only under __main__.

One server, one set of rules (see README, "Running it for others"): the page and ``/api`` share the
login (``server.auth``), the one limit on renders at once (``server.concurrency``), the request size
limits, https (``server.https``) and the sweeping of stale files. Listening beyond this machine
without a login is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from app_modules import config, security, tls
from app_modules import options as declared
from app_modules.errors import TalkerError
from app_modules.ui.app import build_demo
from app_modules.ui.session import work_root


class Server:
    """The running app: ``url``, and ``close()`` to stop it (``run()`` blocks until it stops)."""

    def __init__(self, app, settings: config.Settings, ssl: tuple[str, str] | None, sweeper):
        import uvicorn

        kwargs = dict(ssl_certfile=ssl[0], ssl_keyfile=ssl[1]) if ssl else {}
        self._server = uvicorn.Server(uvicorn.Config(app, host=settings.server.host, port=settings.server.port,
                                                     log_level="warning", timeout_graceful_shutdown=5, **kwargs))
        scheme = "https" if ssl else "http"
        host = settings.server.host if settings.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.url = f"{scheme}://{host}:{settings.server.port}/"
        self._sweeper = sweeper
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        print(f"Talker is running on {self.url}", flush=True)
        try:
            self._server.run()
        finally:
            self._sweeper.stop()

    def start(self, timeout: float = 60.0) -> Server:
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="talker-server")
        self._thread.start()
        deadline = time.time() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.time() > deadline:
                raise TalkerError(f"the server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        self._sweeper.stop()


def cache_folder(settings: config.Settings) -> Path:
    """Gradio's cache of the files it serves (uploads, copies of answers): Talker's own, so sweeping it
    touches no other app's files. ``GRADIO_TEMP_DIR`` wins where set."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        return Path(os.environ["GRADIO_TEMP_DIR"])
    return Path(settings.pipeline.workdir or tempfile.gettempdir()) / "talker-gradio"


def launch(settings: config.Settings, demo=None, block: bool = True, **_ignored) -> Server:
    """Serve ``demo`` (default: built from ``settings``) and the HTTP API on ``server.host:server.port``.
    ``block``: run until stopped; otherwise start in the background and return the running ``Server``."""
    import gradio as gr

    from app_modules import api
    from app_modules.sweep import Sweeper
    from app_modules.ui.runtime import Runtime

    security.check_exposure(settings)
    declared.check_settings(settings)
    ssl = tls.certificate(settings) if settings.server.https else None
    runtime = getattr(demo, "talker_runtime", None) or Runtime(settings)
    demo = demo or build_demo(settings, runtime)
    root = work_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    limits = settings.limits
    # Gradio's cache too, where it is Talker's own (main() gives it one); a shared /tmp/gradio is left
    # to Gradio's own cleaning
    folders = [root] + ([Path(demo.GRADIO_CACHE)] if os.environ.get("GRADIO_TEMP_DIR") else [])
    sweeper = Sweeper(folders, limits.files_ttl_minutes * 60.0).start()
    # turns wait for the server-wide render limit themselves (and show their place in line); Gradio only
    # bounds how many may wait at all
    demo.queue(default_concurrency_limit=settings.server.concurrency + limits.queue)
    app = api.create_app(settings, runtime=runtime)
    credentials = security.Credentials.of(settings)
    gr.mount_gradio_app(app, demo, path="/", auth=credentials.check_password if credentials.users else None,
                        auth_message="Talker: log in with the name and password the operator gave you.",
                        allowed_paths=[str(root)], max_file_size=f"{settings.server.max_upload_mb}mb",
                        ssr_mode=False, show_error=True)
    server = Server(app, settings, ssl, sweeper)
    if not block:
        return server.start()
    server.run()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python webui.py", description="Talker web UI")
    config.add_arguments(p, example="tts=piper --set server.port=7861")
    args = p.parse_args(argv)
    try:
        settings = config.from_args(args)
        # before any Blocks exists: Gradio reads it when the app is built
        os.environ.setdefault("GRADIO_TEMP_DIR", str(cache_folder(settings)))
        launch(settings)
    except TalkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


demo = build_demo(config.load())

if __name__ == "__main__":
    sys.exit(main())
