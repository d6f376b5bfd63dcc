"""Command line for batch work, no browser needed.

    python -m app_modules.cli say  --image FACE --text TEXT --out OUT.mp4 [--tts NAME] [--thg NAME]
    python -m app_modules.cli chat --image FACE (--text TEXT | --audio WAV) --out OUT.mp4
    python -m app_modules.cli transcribe AUDIO [--asr NAME] [--model M] [--language L]
    python -m app_modules.cli chat-text [--llm NAME] [--base-url URL] [--model M]
    python -m app_modules.cli download BACKEND [--all]
    python -m app_modules.cli backends

Bad input exits non-zero with one line saying what to fix.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from app_modules import config, media, registry
from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BadInputError, TalkerError
from app_modules.history import ChatHistory
from app_modules.types import SentenceAudio, SentenceVideo, StageFailed, TextDelta, Transcript, TurnResult


def _common(p: argparse.ArgumentParser) -> None:
    config.add_arguments(p)
    for stage in registry.STAGES:
        p.add_argument(f"--{stage}", help=f"{stage} backend: {', '.join(registry.names(stage))}")
    p.add_argument("--checkpoint", help="talking-head checkpoint file to use instead of the downloaded one")
    p.add_argument("--subtitles", choices=["srt", "burn"], help="burn the subtitles into the video")


def _settings(args: argparse.Namespace) -> config.Settings:
    overrides = []
    for stage in registry.STAGES:
        if getattr(args, stage, None):
            overrides.append(f"{stage}={getattr(args, stage)}")
    if getattr(args, "subtitles", None):
        overrides.append(f"pipeline.subtitles={args.subtitles}")
    s = config.from_args(args, overrides)
    if getattr(args, "checkpoint", None):
        s.options.setdefault(s.thg, {})["checkpoint"] = args.checkpoint
    return s


def _say(args: argparse.Namespace) -> int:
    if not args.text or not args.text.strip():
        raise BadInputError("the text is empty: pass --text with something to say")
    return _run_turn(args, text=args.text, llm="read-aloud")


def _chat(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.audio is None):
        raise BadInputError("give exactly one of --text or --audio")
    if args.text is not None and not args.text.strip():
        raise BadInputError("the text is empty: pass --text with a question")
    return _run_turn(args, text=args.text, audio_path=args.audio)


def _run_turn(args: argparse.Namespace, text: str | None = None, audio_path: str | None = None,
              llm: str | None = None) -> int:
    from app_modules.factory import build_pipeline

    settings = _settings(args)
    image = media.load_image(args.image)
    audio = None
    if audio_path is not None:
        audio = media.load_audio(audio_path, 16000)
        media.require_sound(audio, f"the audio file {Path(audio_path).name}")
    _progress("loading models")
    pipe = build_pipeline(settings, need_asr=audio is not None, llm=llm)
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="talker-") as work:
        for ev in pipe.turn(ChatHistory(settings.pipeline.system_prompt), work, text=text, audio=audio, image=image):
            if isinstance(ev, Transcript) and audio is not None:
                _progress(f"heard: {ev.text}")
            elif isinstance(ev, TextDelta) and llm != "read-aloud":
                print(ev.text, end="", flush=True, file=sys.stderr)
            elif isinstance(ev, SentenceAudio):
                _progress(f"sentence {ev.index + 1}: spoken ({ev.audio.duration:.1f} s)")
            elif isinstance(ev, SentenceVideo):
                _progress(f"sentence {ev.index + 1}: video ready")
            elif isinstance(ev, StageFailed):
                print(f"error: {ev.stage}: {ev.message}", file=sys.stderr)
                return 2 if ev.stage == "input" else 5
            elif isinstance(ev, TurnResult):
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ev.video, out)
                if ev.subtitles:
                    shutil.copyfile(ev.subtitles, out.with_suffix(".srt"))
                _progress(f"wrote {out} ({ev.timings.get('total', 0):.1f} s)")
                if llm != "read-aloud":
                    print(ev.reply)
    return 0


def _download(args: argparse.Namespace) -> int:
    paths = CheckpointManager(args.root).download(args.backend, include_optional=args.all)
    for p in paths:
        print(p)
    return 0


def _backends(args: argparse.Namespace) -> int:
    ck = CheckpointManager()
    for s in registry.BACKENDS:
        why = registry.why_unavailable(s, ck)
        print(f"{s.stage:4} {s.name:15} {'ok' if why is None else 'unavailable: ' + why}")
    return 0


def _progress(msg: str) -> None:
    print(f"[talker] {msg}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app_modules.cli", description="Talker command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("say", help="make a video of a portrait speaking a text")
    p.add_argument("--image", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--out", required=True)
    _common(p)
    p.set_defaults(func=_say)

    p = sub.add_parser("chat", help="one full turn: question (text or speech) in, answer video out")
    p.add_argument("--image", required=True)
    p.add_argument("--text")
    p.add_argument("--audio")
    p.add_argument("--out", required=True)
    _common(p)
    p.set_defaults(func=_chat)

    p = sub.add_parser("download", help="fetch the weights a backend needs into checkpoints/")
    p.add_argument("backend")
    p.add_argument("--all", action="store_true", help="include optional files (e.g. the 512 model)")
    p.add_argument("--root", help="checkpoint folder (default: checkpoints/)")
    p.set_defaults(func=_download)

    p = sub.add_parser("backends", help="list every backend and whether it can run here")
    p.set_defaults(func=_backends)

    _optional_subcommands(sub)
    return parser


def _optional_subcommands(sub) -> None:
    """Subcommands owned by a stage package; absent when that package is not there."""
    try:
        from ASR.cli import add_transcribe_parser

        add_transcribe_parser(sub)
    except ImportError:
        pass
    try:
        from LLM.cli import add_chat_text_parser

        add_chat_text_parser(sub)
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TalkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
