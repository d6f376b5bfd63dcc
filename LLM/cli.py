"""``chat-text``: a text chat with the configured LLM on stdin/stdout, keeping history across lines.

    echo -e "Hi, I am Ann.\\nWhat is my name?" | python -m app_modules.cli chat-text --llm openai
    python -m LLM.cli chat-text --llm openai --preset deepseek --model deepseek-chat

Each input line is one user turn; the reply streams to stdout, one line per reply. Lines ``/undo``,
``/clear`` and ``/quit`` control the conversation. A failed turn prints ``error: ...`` to stderr and
leaves the history as it was; the exit status is then that error's (5 for a stage error).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TextIO

from app_modules import config, registry
from app_modules.errors import TalkerError
from app_modules.history import MESSAGE_OVERHEAD, ChatHistory


def add_chat_text_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``chat-text`` command to a main parser's subparsers; it runs ``run_chat_text``."""
    p = subparsers.add_parser("chat-text", help="chat with the LLM on stdin/stdout (one line per turn)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llm", metavar="NAME", help=f"LLM backend ({', '.join(registry.names('llm'))}); "
                                                 "default: the settings' llm")
    p.add_argument("--base-url", metavar="URL", help="OpenAI-compatible server root, e.g. http://127.0.0.1:11434/v1")
    p.add_argument("--model", metavar="M", help="model name (or, for transformers, a hub id or folder)")
    p.add_argument("--preset", metavar="P", help="openai preset: openai, dashscope, deepseek, ollama, vllm, llamacpp")
    p.add_argument("--system", metavar="TEXT", help="persona / system prompt (default: the settings')")
    p.add_argument("--speakable", action="store_true", help="ask for short plain answers fit to be spoken")
    config.add_arguments(p, example="openai.timeout=30")
    p.set_defaults(func=run_chat_text)
    return p


def run_chat_text(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None,
                  stderr: TextIO | None = None) -> int:
    """Run the chat until stdin ends or ``/quit``; 0 when every turn worked, else the last error's code."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        llm, system_prompt = _build(args)
    except TalkerError as e:
        print(f"error: {e}", file=stderr)
        return e.exit_code
    history = ChatHistory(system_prompt=system_prompt)
    status = 0
    for line in stdin:
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/clear":
            history.clear()
            print("(history cleared)", file=stderr)
            continue
        if text == "/undo":
            turn = history.undo()
            print(f"(forgot: {turn.user})" if turn else "(nothing to undo)", file=stderr)
            continue
        messages = history.messages(text, llm.count_tokens, llm.context_tokens,
                                    reserve=getattr(llm, "reply_tokens", 512),
                                    overhead=getattr(llm, "message_overhead", MESSAGE_OVERHEAD))
        pieces: list[str] = []
        try:
            for piece in llm.stream(messages):
                pieces.append(piece)
                stdout.write(piece)
                stdout.flush()
        except TalkerError as e:
            if pieces:
                stdout.write("\n")
            print(f"error: {e}", file=stderr)
            status = e.exit_code
            continue  # the history stays as it was before this turn
        stdout.write("\n")
        stdout.flush()
        history.commit(text, "".join(pieces).strip())
    return status


def _build(args: argparse.Namespace) -> tuple[Any, str]:
    """The LLM from the settings plus command-line choices, and the persona."""
    from app_modules.auto import resolve

    settings = config.from_args(args)
    if args.llm:
        name, options = args.llm, settings.options_for(args.llm)
    else:  # the settings' backend, or the one auto picks
        choice = resolve(settings, "llm")
        name, options = choice.name, dict(choice.options)
    cls = registry.load_class(registry.spec("llm", name))
    given = {"base_url": args.base_url, "model": args.model, "preset": args.preset,
             "speakable": True if args.speakable else None}
    fields = {f.name for f in dataclasses.fields(cls.Options)} if dataclasses.is_dataclass(cls.Options) else set()
    for key, value in given.items():
        if value is None:
            continue
        if key not in fields:
            raise TalkerError(f"--{key.replace('_', '-')} does not apply to the {name} backend "
                              f"(its options: {', '.join(sorted(fields)) or 'none'})")
        options[key] = value
    if args.preset and args.base_url is None:
        options.pop("base_url", None)  # let the preset choose the server, not settings.yaml's default
    if args.preset and args.model is None:
        options.pop("model", None)
    llm = registry.create("llm", name, options)
    system_prompt = settings.pipeline.system_prompt if args.system is None else args.system
    return llm, system_prompt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LLM.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_chat_text_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
