"""Two browser sessions on one server never see each other's conversation or files.

The app runs for real (Gradio on a free port, offline backends) and two ``gradio_client`` clients,
each its own session, talk to it at the same time."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")

from app_modules import config
from app_modules.ui.session import (
    Session,
    close_session,
    remove_session_folders,
    work_root,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui

    workdir = tmp_path_factory.mktemp("work")
    settings = config.load(None, ["llm=read-aloud", "tts=espeak", "thg=lite", f"pipeline.workdir={workdir}",
                                  f"server.port={_free_port()}", "server.concurrency=2"])
    demo = webui.build_demo(settings)
    webui.launch(settings, demo=demo, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{settings.server.port}/", settings
    finally:
        demo.close()


def _turn(url: str, portrait: Path, questions: list[str]):
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    chats = []
    for q in questions:
        chat, _sentence, final, status, *_ = client.predict(
            q, None, handle_file(str(portrait)), "You are terse.", api_name="/conversation_turn")
        assert final is not None, status
        chats.append(chat)
    undone = client.predict(api_name="/conversation_undo")
    return chats, undone


def _texts(chat) -> list[str]:
    """Message texts; Gradio 6 sends each message's content as a list of typed parts."""
    out = []
    for m in chat:
        c = m["content"]
        out.append(c if isinstance(c, str) else "".join(p.get("text", "") for p in c if isinstance(p, dict)))
    return out


def test_two_sessions_are_isolated(server, portrait_path):
    url, settings = server
    a_questions = ["Apples are red.", "Alpha is first."]
    b_questions = ["Bananas are yellow.", "Beta is second."]
    with ThreadPoolExecutor(2) as pool:  # both sessions at the same time, on one shared pipeline
        fa = pool.submit(_turn, url, portrait_path, a_questions)
        fb = pool.submit(_turn, url, portrait_path, b_questions)
        (a_chats, a_undo), (b_chats, b_undo) = fa.result(timeout=240), fb.result(timeout=240)

    # each session's second answer shows its own two turns and nothing of the other's
    assert _texts(a_chats[1]) == [a_questions[0], a_questions[0], a_questions[1], a_questions[1]]
    assert _texts(b_chats[1]) == [b_questions[0], b_questions[0], b_questions[1], b_questions[1]]
    # undo removed only that session's last turn
    assert _texts(a_undo[0]) == [a_questions[0], a_questions[0]]
    assert _texts(b_undo[0]) == [b_questions[0], b_questions[0]]

    # one folder per session, each holding exactly its own two turns
    folders = sorted(p for p in work_root(settings).iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        assert len(list(folder.glob("turn-*/answer.mp4"))) == 2


def test_session_folders_are_removed_when_the_session_ends(tmp_path):
    settings = config.load(None, [f"pipeline.workdir={tmp_path}"])
    a, b = Session.create(settings, "hash-a"), Session.create(settings, "hash-b")
    (a.workdir / "answer.mp4").write_bytes(b"x")
    remove_session_folders(settings, "hash-a")  # the unload hook for the closed tab
    assert not a.workdir.exists() and b.workdir.is_dir()
    b.history("chat").commit("q", "a")
    close_session(b)  # gr.State's delete callback
    assert not b.workdir.exists() and not b.histories
    remove_session_folders(settings, "../../etc")  # a browser-chosen hash never becomes a path
    assert tmp_path.is_dir()
