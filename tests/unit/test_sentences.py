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


def test_the_work_is_linear_in_the_text():
    # the issue: 15 kB streamed token by token took minutes, the buffer rescanned on every token
    text = ("This is sentence number one, and it goes on for a while without stopping " * 3 + ". ") * 60
    text += "no full stop at all here just words " * 400 + "3.14 e.g. Dr. ...... !!!" * 200
    for piece_len in (1, 3, 50):
        sp = SentenceSplitter()
        got = []
        for i in range(0, len(text), piece_len):
            got += sp.feed(text[i:i + piece_len])
        got += sp.flush()
        assert sp.scanned < 3 * len(text), (piece_len, sp.scanned, len(text))
        # nothing is lost or duplicated, and no piece handed to TTS is longer than the cut
        assert "".join(got).replace(" ", "") == text.replace(" ", "")
        assert max(len(s) for s in got) <= 400 + 3


def test_a_long_run_without_a_full_stop_is_cut_at_a_comma_or_space():
    sp = SentenceSplitter(max_chars=100)
    out = sp.feed("word, " * 40)
    assert out and all(len(s) <= 100 for s in out) and all(s.endswith(",") for s in out)
