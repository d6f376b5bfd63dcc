"""ChatHistory: the one owner of multi-turn state; trimming keeps the newest turns that fit."""

from app_modules.history import ChatHistory, Turn


def words(text: str) -> int:
    return len(text.split())


def make(n: int) -> ChatHistory:
    h = ChatHistory(system_prompt="Be brief.")
    for i in range(n):
        h.commit(f"question {i} " + "w " * 8, f"answer {i} " + "w " * 8)
    return h


def test_messages_order_persona_history_new_text():
    h = ChatHistory(system_prompt="You are Ann.")
    h.commit("Hi", "Hello!")
    assert h.messages("How are you?") == [
        {"role": "system", "content": "You are Ann."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]


def test_no_system_message_without_persona():
    assert ChatHistory().messages("Hi") == [{"role": "user", "content": "Hi"}]


def test_trimming_drops_oldest_turns_first_and_fits_the_budget():
    h = make(10)  # each turn costs 10 + 10 words + 8 overhead = 28
    msgs = h.messages("new question", words, max_tokens=200, reserve=50)
    users = [m["content"] for m in msgs if m["role"] == "user"]
    assert users[-1] == "new question"
    kept = users[:-1]
    assert kept and kept[-1].startswith("question 9")  # the newest turn survives
    assert [int(u.split()[1]) for u in kept] == list(range(10 - len(kept), 10))  # a contiguous tail
    total = sum(words(m["content"]) + 4 for m in msgs)
    assert total + 50 <= 200
    assert h.dropped == 10 - len(kept)
    # one more turn's worth of room would have been too much: the trim is tight
    assert total + 50 + 28 > 200
    assert msgs[0] == {"role": "system", "content": "Be brief."}


def test_everything_fits_when_budget_is_large():
    h = make(3)
    assert len(h.messages("x", words, max_tokens=10_000)) == 1 + 6 + 1
    assert h.dropped == 0


def test_persona_and_new_text_are_kept_even_when_too_long():
    h = make(3)
    msgs = h.messages("very " * 500, words, max_tokens=100, reserve=10)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert h.dropped == 3


def test_messages_does_not_change_the_history():
    h = make(4)
    h.messages("x", words, max_tokens=50)
    assert len(h) == 4


def test_commit_undo_clear():
    h = ChatHistory(system_prompt="p")
    h.commit("a", "b")
    h.commit("c", "d")
    assert h.undo() == Turn("c", "d")
    assert h.as_pairs() == [("a", "b")]
    h.clear()
    assert h.as_pairs() == [] and h.undo() is None
    assert h.system_prompt == "p"


def test_empty_reply_is_not_committed():
    h = ChatHistory()
    h.commit("hello?", "   ")
    assert len(h) == 0
