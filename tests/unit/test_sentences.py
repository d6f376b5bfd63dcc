from app_modules.text import SentenceSplitter, split_sentences


def test_english_and_chinese_punctuation():
    assert split_sentences("Hello there. How are you? Fine!") == ["Hello there.", "How are you?", "Fine!"]
    assert split_sentences("你好，今天天气很好。我们去公园吧！好不好？") == [
        "你好，今天天气很好。", "我们去公园吧！", "好不好？"]


def test_decimals_abbreviations_and_quotes_stay_whole():
    assert split_sentences("Pi is 3.14 today. Dr. Smith agrees.") == ["Pi is 3.14 today.", "Dr. Smith agrees."]
    assert split_sentences('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]


def test_short_fragments_join_the_next_sentence():
    assert split_sentences("OK. Let us begin now.") == ["OK. Let us begin now."]


def test_streamed_pieces_give_sentences_as_soon_as_they_end():
    sp = SentenceSplitter()
    got = []
    for piece in ["Hel", "lo the", "re.", " Ho", "w are", " you", "? I am", " fine"]:
        got.append(sp.feed(piece))
    # "Hello there." is known to be complete once the space after it arrives
    assert got[2] == [] and got[3] == ["Hello there."]
    assert ["How are you?"] in got
    assert sp.flush() == ["I am fine"]
