"""Two browser sessions on one server never see each other's conversation, files or settings.

The app runs for real (Gradio on a free port, offline backends) and two ``gradio_client`` clients,
each its own session, talk to it at the same time."""

from __future__ import annotations

import json
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
from tests.helpers.webui import free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui

    workdir = tmp_path_factory.mktemp("work")
    settings = config.load(None, ["llm=read-aloud", "tts=espeak", "thg=lite", f"pipeline.workdir={workdir}",
                                  f"server.port={free_port()}", "server.concurrency=2"])
    demo = webui.build_demo(settings)
    server = webui.launch(settings, demo=demo, block=False)
    try:
        yield f"http://127.0.0.1:{settings.server.port}/", settings
    finally:
        server.close()


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


@pytest.fixture(scope="module")
def server_with_runtime(tmp_path_factory):
    """A second server (its own folder), whose shared ``Runtime`` the test can look into."""
    import webui
    from app_modules.ui.runtime import Runtime

    workdir = tmp_path_factory.mktemp("work-settings")
    settings = config.load(None, ["llm=read-aloud", "tts=espeak", "thg=lite", f"pipeline.workdir={workdir}",
                                  f"server.port={free_port()}", "server.concurrency=2"])
    runtime = Runtime(settings)
    demo = webui.build_demo(settings, runtime)
    server = webui.launch(settings, demo=demo, block=False)
    try:
        yield f"http://127.0.0.1:{settings.server.port}/", runtime
    finally:
        server.close()


def _answer_seconds(client, portrait: Path, question: str) -> float:
    from gradio_client import handle_file

    from app_modules import media

    _chat, _sentence, final, status, *_ = client.predict(
        question, None, handle_file(str(portrait)), "You are terse.", api_name="/conversation_turn")
    assert final is not None, status
    # a gr.Video update with a subtitle track ({"value": path, "subtitles": ...}), or a plain path
    video = (final.get("value") or final.get("video")) if isinstance(final, dict) else final
    video = video.get("path") if isinstance(video, dict) else video
    assert video, final
    return float(media.probe(video)["format"]["duration"])


def _apply(client, tts_options: str) -> str:
    # the settings tab's inputs: a backend per stage, the options per stage, the subtitles
    return client.predict("faster-whisper", "read-aloud", "espeak", "lite", "", "", tts_options, "", "srt",
                          api_name="/apply_settings")


def test_settings_are_per_session(server_with_runtime, portrait_path):
    from gradio_client import Client

    url, runtime = server_with_runtime
    question = "The quick brown fox jumps over the lazy dog while the sun goes down."
    a, b, c = (Client(url, verbose=False) for _ in range(3))
    # session A slows its voice down; session B changes nothing
    assert "Saved for this session" in _apply(a, "voice: en-us\nspeed: 80\n")
    # one after the other: running side by side is test_two_sessions_are_isolated's subject
    a_secs, b_secs = _answer_seconds(a, portrait_path, question), _answer_seconds(b, portrait_path, question)
    # the same answer, spoken at 80 words a minute in A and at the default 160 in B
    assert a_secs > 1.5 * b_secs, (a_secs, b_secs)

    # the process's defaults did not change; each session got its own voice; the rest is shared
    assert runtime.settings.options_for("espeak") == {"voice": "en-us"}
    speeds = sorted(json.loads(k[2]).get("speed") or 0 for k in runtime.loaded("tts"))
    assert speeds == [0, 80]  # the default voice (no speed given) and A's
    assert len(runtime.loaded("llm")) == 1 and len(runtime.loaded("thg")) == 1
    tts_before = {k: runtime.backend(*k[:2], json.loads(k[2])) for k in runtime.loaded("tts")}

    # session C chooses what A chose: it gets A's voice, from the very same loaded instance
    assert "Saved for this session" in _apply(c, "voice: en-us\nspeed: 80\n")
    c_secs = _answer_seconds(c, portrait_path, question)
    assert abs(c_secs - a_secs) < 0.25 * a_secs, (c_secs, a_secs)
    assert {k: runtime.backend(*k[:2], json.loads(k[2])) for k in runtime.loaded("tts")} == tts_before
    # and B, asking again after A and C changed theirs, still speaks at the default speed
    assert abs(_answer_seconds(b, portrait_path, question) - b_secs) < 0.25 * b_secs
