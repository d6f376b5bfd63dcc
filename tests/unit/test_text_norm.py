"""Text as voices should read it: markdown and emoji gone, numbers, dates and units in words."""

from __future__ import annotations

import pytest

from TTS.text_norm import (
    is_chinese,
    normalize_chinese,
    normalize_english,
    normalize_text,
    split_sentences,
    strip_emoji,
    strip_markdown,
    zh_int,
    zh_number,
)


def test_markdown_is_reduced_to_what_is_said():
    md = """# Plan

Some **bold**, *italic*, _under_ and ~~old~~ text with [a link](https://example.com) and `code`.

```python
print("never read aloud")
```
- first item
- second item
1. numbered
| name | value |
|------|------:|
| a    | 1     |
> a quote
---
![a cat](cat.png) See https://example.com/page for more."""
    assert strip_markdown(md) == ("Plan. Some bold, italic, under and old text with a link and code. "
                                  "first item. second item. numbered. name, value. a, 1. a quote. "
                                  "a cat See for more.")


def test_markdown_keeps_plain_text_and_snake_case_alone():
    assert strip_markdown("2 * 3 = 6 and my_var_name stays.") == "2 * 3 = 6 and my_var_name stays."
    assert strip_markdown("## 标题\n第一行\n第二行") == "标题。第一行第二行"


def test_emoji_are_removed_but_symbols_kept():
    # skin tones, flags, variation selectors and zero-width-joined families all go
    assert strip_emoji("Great job 👍🏽! 🇨🇳 ❤️ 25℃ 👨‍👩‍👧 done ✅") == "Great job !   25℃  done "
    assert strip_emoji("中文，标点。½ → é") == "中文，标点。½ → é"


@pytest.mark.parametrize("text, spoken", [
    ("I have 3 apples.", "I have three apples."),
    ("It costs $5.50 now.", "It costs five dollars and fifty cents now."),
    ("It costs $1 and €3.", "It costs one dollar and three euros."),
    ("A $1.5 billion deal.", "A one point five billion dollars deal."),
    ("About 50% of 1,234 people.", "About fifty percent of one thousand two hundred and thirty-four people."),
    ("Pi is 3.14.", "Pi is three point one four."),
    ("It is -4 outside, 25°C inside.", "It is minus four outside, twenty-five degrees Celsius inside."),
    ("She ran 10 km in 1 h.", "She ran ten kilometers in one hour."),
    ("A 2.5 GB file at 60 km/h.", "A two point five gigabytes file at sixty kilometers per hour."),
    ("Born in 1999, graduated in 2021.", "Born in nineteen ninety-nine, graduated in twenty twenty-one."),
    ("The 21st century, the 2nd time.", "The twenty-first century, the second time."),
    ("Meet on 2024-05-01 at 3:30 pm.", "Meet on May first twenty twenty-four at three thirty P M."),
    ("Wake at 7:05, sleep at 10:00.", "Wake at seven oh five, sleep at ten o'clock."),
    ("Tom & Jerry", "Tom and Jerry"),
])
def test_english_numbers_dates_and_units(text, spoken):
    assert normalize_english(text) == spoken


@pytest.mark.parametrize("n, reading", [
    (0, "零"), (7, "七"), (10, "十"), (15, "十五"), (20, "二十"), (101, "一百零一"), (110, "一百一十"),
    (1001, "一千零一"), (1010, "一千零一十"), (10005, "一万零五"), (20000, "二万"), (100010000, "一亿零一万"),
    (123456789, "一亿二千三百四十五万六千七百八十九"), (-42, "负四十二"),
])
def test_chinese_integer_readings(n, reading):
    assert zh_int(n) == reading


def test_chinese_decimals_and_digit_strings():
    assert zh_number("3.14") == "三点一四"
    assert zh_number("0.05") == "零点零五"
    assert zh_number("007") == "零零七"
    assert zh_number("13812345678") == "一三八一二三四五六七八"  # phone numbers digit by digit


@pytest.mark.parametrize("text, spoken", [
    ("今天是2024年5月1日。", "今天是二零二四年五月一日。"),
    ("会议在2024-05-01 14:05开始。", "会议在二零二四年五月一日 十四点零五分开始。"),
    ("有50%的人同意，增长了3.5%。", "有百分之五十的人同意，增长了百分之三点五。"),
    ("气温25℃，跑了10km，重3.5kg。", "气温二十五摄氏度，跑了十公里，重三点五千克。"),
    ("我买了2个苹果，花了¥12.5。", "我买了两个苹果，花了十二点五元。"),
    ("下午2:30见，共12人。", "下午两点三十分见，共十二人。"),
    ("第1名，1/3的人，3~5天。", "第一名，三分之一的人，三到五天。"),
    ("共10005人，价格$20。", "共一万零五人，价格二十美元。"),
])
def test_chinese_numbers_dates_and_units(text, spoken):
    assert normalize_chinese(text) == spoken


def test_language_detection_and_the_whole_chain():
    assert is_chinese("我用Python写了100行代码") and not is_chinese("Hello 世界 and more words")
    assert normalize_text("**我**用Python写了100行代码👍") == "我用Python写了一百行代码"
    assert normalize_text("# Hi\nI'm **3** 😀") == "Hi. I'm three"
    assert normalize_text("It is 5 pm", numbers=False) == "It is 5 pm"
    assert normalize_text("共3个", language="zh") == "共三个"
    assert normalize_text("共3个", language="cmn") == "共三个"
    # a German voice reads digits in German itself: English words would be wrong
    assert normalize_text("Es kostet 5 Euro.", language="de") == "Es kostet 5 Euro."


def test_sentences_split_for_synthesis():
    assert split_sentences("Hello there. It is 3.5 m long! 你好。今天很好！好的") == [
        "Hello there.", "It is 3.5 m long!", "你好。", "今天很好！", "好的"]
    assert split_sentences("... \n\n  ") == []
    long = ", ".join(["a clause of words"] * 30) + "."
    parts = split_sentences(long, max_chars=100)
    assert len(parts) > 1 and all(len(p) <= 100 for p in parts) and " ".join(parts) == long
