"""Talker's web UI.

    python webui.py [--settings settings.yaml] [--set tts=piper --set openai.model=qwen2.5]

``demo`` is built at import with no side effects (no model loads until the first turn), so
``gradio webui.py`` reload mode and tests can import it; the server starts only under __main__.
"""

from __future__ import annotations

import argparse
import sys

from app_modules import config
from app_modules.errors import TalkerError
from app_modules.ui.app import build_demo
from app_modules.ui.session import work_root


def launch(settings: config.Settings, demo=None, **kwargs):
    demo = demo or build_demo(settings)
    root = work_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    # one turn renders per `concurrency` slot (GPU work); later visitors see their queue position
    demo.queue(default_concurrency_limit=settings.server.concurrency)
    return demo.launch(server_name=settings.server.host, server_port=settings.server.port,
                       allowed_paths=[str(root)], max_file_size=f"{settings.server.max_upload_mb}mb", **kwargs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python webui.py", description="Talker web UI")
    config.add_arguments(p, example="tts=piper --set server.port=7861")
    args = p.parse_args(argv)
    try:
        settings = config.from_args(args)
    except TalkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    launch(settings)
    return 0


demo = build_demo(config.load())

if __name__ == "__main__":
    sys.exit(main())
