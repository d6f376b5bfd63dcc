"""``chat-text``: stdin lines in, one streamed reply per line out, history kept across lines."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

from LLM.cli import add_chat_text_parser, run_chat_text
from tests.conftest import REPO
from tests.fakes.openai_server import OpenAIServer, Reply


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_chat_text_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["chat-text", *argv])


def chat(args: argparse.Namespace, text: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = run_chat_text(args, io.StringIO(text), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_history_is_kept_across_lines_and_a_failed_turn_leaves_it_alone():
    with OpenAIServer(Reply.text("Hi Ann."), Reply.error(500), Reply.text("You are Ann.")) as s:
        args = parse("--llm", "openai", "--base-url", s.base_url, "--model", "m", "--system", "Be brief.",
                     "--set", "openai.retries=0")
        rc, out, err = chat(args, "I am Ann.\nWhat?\n\nWhat is my name?\n")
        sent = [r.body["messages"] for r in s.chat_requests]
    assert out == "Hi Ann.\nYou are Ann.\n"
    assert "error: llm:" in err and "HTTP 500" in err
    assert rc == 5
    assert sent[0] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I am Ann."}]
    assert sent[2] == sent[0] + [{"role": "assistant", "content": "Hi Ann."},
                                 {"role": "user", "content": "What is my name?"}]  # "What?" is not there
    assert all(r["model"] == "m" for r in (x.body for x in s.chat_requests))


def test_undo_and_clear_commands():
    with OpenAIServer(default=Reply.text("ok")) as s:
        args = parse("--llm", "openai", "--base-url", s.base_url, "--system", "")
        rc, out, err = chat(args, "one\ntwo\n/undo\nthree\n/clear\nfour\n/quit\nnever sent\n")
        sent = [[m["content"] for m in r.body["messages"]] for r in s.chat_requests]
    assert rc == 0 and out == "ok\n" * 4
    assert sent == [["one"], ["one", "ok", "two"], ["one", "ok", "three"], ["four"]]
    assert "forgot: two" in err


def test_read_aloud_needs_no_server():
    rc, out, _ = chat(parse("--llm", "read-aloud"), "Say this back.\n")
    assert (rc, out) == (0, "Say this back.\n")


def test_an_option_the_backend_lacks_is_refused():
    rc, _, err = chat(parse("--llm", "read-aloud", "--model", "x"), "hi\n")
    assert rc != 0 and "--model does not apply to the read-aloud backend" in err


def test_python_dash_m_llm_cli_chat_text():
    with OpenAIServer(Reply.text("Hello Bo."), Reply.text("Bo.")) as s:
        r = subprocess.run([sys.executable, "-m", "LLM.cli", "chat-text", "--llm", "openai", "--base-url", s.base_url,
                            "--model", "m"], input="I am Bo.\nWho am I?\n", capture_output=True, text=True,
                           cwd=REPO, timeout=60)
        second = s.chat_requests[1].body["messages"]
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Hello Bo.\nBo.\n"
    assert [m["content"] for m in second[1:]] == ["I am Bo.", "Hello Bo.", "Who am I?"]
