"""Text front end: phone sequences derived by hand from the GPT-SoVITS v2 rules.

How the expected values were derived: Mandarin syllables from the dictionary reading (pypinyin), then
the original chinese2/tone_sandhi rules applied by hand (3-3 -> 2-3, 不 before tone 4 -> bu2, 一 before
tone 4 -> yi2 and before other tones -> yi4, 看一看 -> yi5, reduplicated nouns neutral, 的 neutral),
then the opencpop mapping (zero initials AA/EE/OO/y/w, ian -> En after y, zi -> i0, zhi -> ir,
u after j/q/x -> v). English from the first CMUdict pronunciation. Ids come from the v2 symbol order:
sorted(pad + initials + toned finals + Japanese + punctuation + ARPAbet), then [ ], Korean, Cantonese.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_modules.errors import BadInputError
from VITS.gptsovits.text import english
from VITS.gptsovits.text.chinese import split_pinyin
from VITS.gptsovits.text.english_oov import neural_g2p
from VITS.gptsovits.text.frontend import phonemize
from VITS.gptsovits.text.symbols import SYMBOL_TO_ID, SYMBOLS, to_ids


def test_symbol_table_order():
    assert len(SYMBOLS) == 732 and len(set(SYMBOLS)) == 732
    assert SYMBOLS[:6] == ["!", ",", "-", ".", "?", "AA"]  # ASCII sort: marks before capitals
    assert SYMBOL_TO_ID["_"] == 95 and SYMBOL_TO_ID["UNK"] == 86 and SYMBOL_TO_ID["SP"] == 77
    assert SYMBOL_TO_ID["["] == 322 and SYMBOL_TO_ID["ㄱ"] == 324 and SYMBOL_TO_ID["Ya1"] == 354
    assert SYMBOLS[-1] == "Yz"
    assert to_ids(["n", "i2", "h", "ao3", "not-a-phone"]) == [227, 167, 158, 119, 86]


@pytest.mark.parametrize("initial,final,expected", [
    ("", "a", ("AA", "a")), ("", "er", ("EE", "er")), ("", "ou", ("OO", "ou")),
    ("", "i", ("y", "i")), ("", "ian", ("y", "En")), ("", "ie", ("y", "E")), ("", "iou", ("y", "ou")),
    ("", "u", ("w", "u")), ("", "uei", ("w", "ei")), ("", "uen", ("w", "en")), ("", "uo", ("w", "o")),
    ("", "v", ("y", "v")), ("", "van", ("y", "van")),
    ("zh", "i", ("zh", "ir")), ("r", "i", ("r", "ir")), ("z", "i", ("z", "i0")), ("s", "i", ("s", "i0")),
    ("d", "uei", ("d", "ui")), ("l", "iou", ("l", "iu")), ("ch", "uen", ("ch", "un")),
    ("j", "v", ("j", "v")), ("q", "uan", ("q", "van")), ("b", "a", ("b", "a")),
])
def test_pinyin_to_symbols(initial, final, expected):
    assert split_pinyin(initial, final) == expected


@pytest.mark.parametrize("text,phones", [
    ("你好，世界。", "n i2 h ao3 , sh ir4 j ie4 ."),  # 你好: 3-3 sandhi
    ("不要紧，我不怕。", "b u2 y ao4 j in3 , w o3 b u2 p a4 ."),  # 不 before tone 4
    ("我们一起去看一看吧！", "w o3 m en5 y i4 q i3 q v4 k an4 y i5 k an4 b a5 !"),
    ("一天一段", "y i4 t ian1 y i2 d uan4"),
    ("自私的月亮", "z i04 s i01 d e5 y ve4 l iang4"),
    ("我为你，奶奶好。", "w o3 w ei4 n i3 , n ai3 n ai5 h ao3 ."),
    ("展览馆", "zh an2 l an2 g uan3"),  # 2+1 all-third-tone word: 2 2 3
    ("我有3个", "w o2 y ou3 s an1 g e5"),  # number read out; measure word 个 neutral
])
def test_chinese_phones(text, phones):
    p = phonemize(text, "zh")
    assert " ".join(p.phones) == phones
    assert p.ids == [SYMBOL_TO_ID[s] for s in phones.split()]
    assert len(p.word2ph) == len(p.norm_text) and sum(p.word2ph) == len(p.phones)


def test_chinese_ids_pinned():
    assert phonemize("你好，世界。", "zh").ids == [227, 167, 158, 119, 1, 251, 214, 221, 194, 3]


@pytest.mark.parametrize("text,phones", [
    ("Hello, world!", "HH AH0 L OW1 , W ER1 L D !"),
    ("I have 2 cats.", "AY1 HH AE1 V T UW1 K AE1 T S ."),
    ("It costs 15%.", "IH1 T K AA1 S T S F IH0 F T IY1 N P ER0 S EH1 N T ."),
    ("Hi", ", . HH AY1"),  # short text: '.' prepended, then ',' for fewer than 4 phones
])
def test_english_phones(text, phones):
    assert " ".join(phonemize(text, "en").phones) == phones


def test_unknown_language_and_empty_text():
    with pytest.raises(BadInputError, match="zh, en"):
        phonemize("bonjour", "fr")
    with pytest.raises(BadInputError, match="nothing to say"):
        phonemize("!!!", "en")


# -- words outside CMUdict: read as the original GPT-SoVITS reads them, never letter by letter ------------
PREDICTED = json.loads((Path(__file__).resolve().parent.parent / "data" / "g2p_en" / "predict.json").read_text())


@pytest.mark.parametrize("word", sorted(PREDICTED))
def test_neural_g2p_matches_g2p_en(word):
    """Our decoder over g2p_en's shipped weights gives the original g2p_en's phones (tests/data/g2p_en)."""
    assert neural_g2p()(word) == PREDICTED[word]


@pytest.mark.parametrize("text,phones", [
    # not in CMUdict and no split: g2p_en's neural model (its output is in tests/data/g2p_en)
    ("The chatbot works.", "DH AH0 CH AE1 T B AA2 T W ER1 K S ."),
    # a compound: wordsegment splits it, CMUdict reads the parts
    ("A smartwatch helps.", "AH0 S M AA1 R T W AA1 CH HH EH1 L P S ."),
    # acronyms of up to three letters are spelled, as upstream
    ("My GPU is fast.", "M AY1 JH IY1 P IY1 Y UW1 IH1 Z F AE1 S T ."),
    # possessive of an unknown word: the stem, then S after a voiceless sound
    ("The chatbot's rule.", "DH AH0 CH AE1 T B AA2 T S R UW1 L ."),
])
def test_english_words_outside_the_dictionary(text, phones):
    assert " ".join(phonemize(text, "en").phones) == phones


def test_oov_words_are_not_spelled():
    spelled = [ph for ch in "vocoder" for ph in english.word_phones(ch)]
    assert english.word_phones("vocoder") == PREDICTED["vocoder"] != spelled


@pytest.mark.parametrize("text,syllables", [
    ("我去银行取钱。", ["h ang2"]), ("他行走很快。", ["x ing2"]),
    ("他长大了。", ["zh ang3"]), ("这条路的长度是多少？", ["ch ang2"]),
    ("重新开始吧。", ["ch ong2"]), ("这很重要。", ["zh ong4"]),
    ("我喜欢音乐。", ["y ve4"]), ("我很快乐。", ["l e4"]),
    ("我想睡觉。", ["j iao4"]), ("我觉得不错。", ["j ve2"]),
    ("便宜的东西。", ["p ian2"]), ("北京是首都。", ["d u1"]), ("我们都很好。", ["d ou1"]),
])
def test_chinese_polyphones_read_in_context(text, syllables):
    """pypinyin's phrase dictionary (over jieba's words) picks the reading a word needs."""
    phones = " ".join(phonemize(text, "zh").phones)
    for s in syllables:
        assert s in phones, (text, phones)
