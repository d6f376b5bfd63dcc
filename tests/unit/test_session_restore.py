"""The browser keeps a copy of the conversations; what comes back from it is untrusted and bounded."""

from __future__ import annotations

from app_modules import config
from app_modules.config import LimitSettings
from app_modules.ui.session import MAX_KEPT_TURNS, Session


def test_a_snapshot_comes_back_whole(tmp_path):
    settings = config.load(None, [f"pipeline.workdir={tmp_path}"])
    a = Session.create(settings, "a")
    a.history("conversation", "You are terse.").commit("Hi", "Hello!")
    a.history("builtin").commit("One", "Two")
    b = Session.create(settings, "b")
    b.restore(a.snapshot(), ["builtin", "conversation"], settings.limits)
    assert b.history("conversation").system_prompt == "You are terse."
    assert b.history("conversation").as_pairs() == [("Hi", "Hello!")] and b.history("builtin").as_pairs() == [
        ("One", "Two")]


def test_whatever_the_browser_sends_is_checked(tmp_path):
    settings = config.load(None, [f"pipeline.workdir={tmp_path}"])
    limits = LimitSettings(text_chars=10, answer_chars=20)
    s = Session.create(settings, "x")
    for junk in (None, "text", [], {"v": 99, "chats": {}}, {"v": 1, "chats": "no"},
                 {"v": 1, "chats": {"builtin": {"turns": "no"}}}):
        s.restore(junk, ["builtin"], limits)
        assert s.histories == {}
    s.restore({"v": 1, "chats": {
        "../../etc": {"turns": [["a", "b"]]},  # not a tab of this page
        "builtin": {"persona": 5, "turns": [["ok", "fine"], ["x" * 11, "too long"], ["a", "y" * 21], [1, 2],
                                            ["only one"], ["", "empty"]] + [["q", "a"]] * (MAX_KEPT_TURNS + 5)}}},
              ["builtin"], limits)
    assert list(s.histories) == ["builtin"]
    turns = s.history("builtin").as_pairs()
    assert len(turns) <= MAX_KEPT_TURNS and all(len(u) <= 10 and len(a) <= 20 and u and a for u, a in turns)
    assert s.history("builtin").system_prompt == ""
