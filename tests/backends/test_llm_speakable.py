"""Replies meant to be spoken: markdown and emoji stripped, think blocks dropped; the read-aloud backend."""

from LLM.readaloud_llm import ReadAloudLLM
from LLM.speakable import INSTRUCTION, ThinkFilter, to_speech, with_instruction


def test_markdown_and_emoji_are_stripped():
    md = ("# Plan\n\n**Bold** and _soft_ words 😀👍🏽\n- first item\n2. second item\n"
          "> quoted\nSee [the docs](https://x.y/z) or https://x.y.\n```python\nprint(1)\n```\n"
          "| a | b |\n|---|---|\n| 1 | 2 |\nKeep snake_case and 3*4*5.")
    assert to_speech(md) == ("Plan\nBold and soft words\nfirst item\nsecond item\nquoted\nSee the docs or\n"
                             "a b\n1 2\nKeep snake_case and 3*4*5.")


def test_plain_text_and_chinese_pass_unchanged():
    assert to_speech("你好，今天天气很好。") == "你好，今天天气很好。"
    assert to_speech("It costs 5 dollars.") == "It costs 5 dollars."


def test_think_blocks_are_removed_whole_or_streamed():
    assert to_speech("<think>secret</think>Answer.") == "Answer."
    f = ThinkFilter()
    pieces = ["Hi <th", "ink>sec", "ret</thi", "nk> there", " <", "b>"]
    assert "".join(f.feed(p) for p in pieces) + f.flush() == "Hi  there <b>"
    f = ThinkFilter()
    assert f.feed("<think>never closed") + f.flush() == ""


def test_instruction_is_added_once_without_changing_the_input():
    msgs = [{"role": "system", "content": "You are Ann."}, {"role": "user", "content": "hi"}]
    out = with_instruction(msgs)
    assert msgs[0]["content"] == "You are Ann."
    assert out[0]["content"] == f"You are Ann.\n\n{INSTRUCTION}"
    assert with_instruction(out) == out
    assert with_instruction([{"role": "user", "content": "hi"}])[0] == {"role": "system", "content": INSTRUCTION}


def test_read_aloud_streams_the_last_user_text_in_words():
    llm = ReadAloudLLM(ReadAloudLLM.Options())
    msgs = [{"role": "user", "content": "old"}, {"role": "assistant", "content": "x"},
            {"role": "user", "content": " Hello there, world! 你好"}]
    pieces = list(llm.stream(msgs))
    assert pieces == ["Hello ", "there, ", "world! ", "你", "好"]
    assert "".join(pieces) == "Hello there, world! 你好"
