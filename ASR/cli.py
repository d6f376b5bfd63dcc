"""The ``transcribe`` subcommand: print what is said in an audio file.

    python -m app_modules.cli transcribe AUDIO [--asr whisper|faster-whisper|funasr]
                                               [--model NAME_OR_PATH] [--language LANG]

(``python -m ASR.cli transcribe ...`` runs the same thing.) The backend and its options come from
settings.yaml; the flags override them. Bad input exits non-zero with one line saying what to fix.
"""

from __future__ import annotations

import argparse
import sys

from app_modules import config
from app_modules.errors import TalkerError

ASR_NAMES = ("faster-whisper", "whisper", "funasr")


def add_transcribe_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``transcribe`` to a CLI's subcommands (``app_modules.cli`` calls this)."""
    p = subparsers.add_parser("transcribe", help="print the text spoken in an audio file",
                              description="Print the text spoken in AUDIO (any file ffmpeg reads).")
    p.add_argument("audio", metavar="AUDIO", help="speech in any format ffmpeg reads (wav, mp3, webm, mp4 ...)")
    p.add_argument("--asr", choices=ASR_NAMES, help="recogniser (default: the asr setting)")
    p.add_argument("--model", help="model name (tiny, small, large-v3, paraformer-zh, SenseVoiceSmall ...) "
                                   "or a local checkpoint file / folder")
    p.add_argument("--language", help='spoken language: "auto" detects (default: the pipeline.language setting)')
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--no-vad", action="store_true", help="decode the whole file without voice activity detection")
    config.add_arguments(p, example="faster-whisper.beam_size=1")
    p.set_defaults(func=run_transcribe)
    return p


def run_transcribe(args: argparse.Namespace) -> int:
    """Print the transcript of ``args.audio``; 0 on success, else one ``error:`` line and the error's code."""
    try:
        print(_transcribe(args))
        return 0
    except TalkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


def _transcribe(args: argparse.Namespace) -> str:
    from app_modules import media, registry
    from app_modules.auto import resolve
    from ASR.base import SAMPLE_RATE

    settings = config.from_args(args)
    if args.asr:
        name, options = args.asr, settings.options_for(args.asr)
    else:  # the settings' backend, or the one auto picks
        choice = resolve(settings, "asr")
        name, options = choice.name, choice.options
    if args.model:
        options["model"] = args.model
    if getattr(args, "device", None):
        options["device"] = args.device
    if getattr(args, "no_vad", False):
        options["vad"] = False
    language = args.language if args.language is not None else (settings.pipeline.language or None)
    # decode first: a bad file should fail in a moment, not after a model has loaded
    audio = media.load_audio(args.audio, SAMPLE_RATE)
    asr = registry.create("asr", name, options)
    return asr.transcribe(audio, language)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ASR.cli", description=__doc__.split("\n\n")[0])
    add_transcribe_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
