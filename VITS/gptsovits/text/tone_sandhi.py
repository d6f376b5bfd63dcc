"""Mandarin tone sandhi on jieba words, after the rules GPT-SoVITS takes from PaddleSpeech.

Finals carry the tone as a last digit (1-4, 5 = neutral). Implemented: the word merges (不/一 with the
next word, reduplications, runs of third tones, 儿), 不 and 一 sandhi, neutral tone for particles,
suffixes, reduplicated nouns/verbs and a short list of common neutral-tone words, and third-tone sandhi
in words of 2-4 syllables. Not implemented: the original's full 400-word neutral-tone lexicon.
"""

from __future__ import annotations

# The most frequent words whose last syllable is neutral (a subset of the original list).
NEUTRAL_WORDS = frozenset(
    "东西 时候 什么 怎么 这么 那么 多么 朋友 先生 意思 知道 明白 喜欢 觉得 衣服 休息 事情 地方 消息 名字 客气 舒服 "
    "清楚 漂亮 便宜 麻烦 告诉 认识 关系 丈夫 姑娘 学生 窗户 豆腐 耳朵 眼睛 脑袋 妈妈 爸爸 哥哥 姐姐 弟弟 妹妹 "
    "爷爷 奶奶 打听 打扮 打算 商量 收拾 结实 热闹 暖和 凉快 聪明 糊涂 部分 生意 功夫 本事".split())
NOT_NEUTRAL = frozenset(
    "男子 女子 分子 原子 量子 莲子 石子 瓜子 电子 人人 虎虎 幺幺 干嘛 学子 哈哈 数数 茵茵".split())
_PUNCT = "、：，；。？！“”‘’':,;.?!"


def _tone(final: str) -> str:
    return final[-1]


def _set(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_three(finals: list[str]) -> bool:
    return all(_tone(f) == "3" for f in finals)


def _finals(word: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(word, style=Style.FINALS_TONE3, neutral_tone_with_five=True)


def _split(word: str) -> tuple[str, str]:
    """Split a 3+ character word into two parts around its shortest jieba search sub-word."""
    import jieba

    first = min(jieba.cut_for_search(word), key=len)  # the first of the shortest
    return (first, word[len(first):]) if word.find(first) == 0 else (word[:-len(first)], first)


# -- merges before sandhi (so that 不/一 and tone-3 runs are seen inside one word) ------------------------
def merge_for_sandhi(seg: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seg = _merge_bu(seg)
    seg = _merge_yi(seg)
    seg = _merge_same(seg)
    seg = _merge_three(seg, whole_words=True)
    seg = _merge_three(seg, whole_words=False)
    return _merge_er(seg)


def _merge_bu(seg):
    out, pending = [], False
    for word, pos in seg:
        if pending:
            word, pending = "不" + word, False
        if word == "不":
            pending = True
            continue
        out.append((word, pos))
    if pending:
        out.append(("不", "d"))
    return out


def _merge_yi(seg):
    out: list[list[str]] = []
    i = 0
    while i < len(seg):  # 听 一 听 -> 听一听 (verbs only)
        word, pos = seg[i]
        if word == "一" and out and i + 1 < len(seg) and out[-1][0] == seg[i + 1][0] and out[-1][1] == "v" \
                and seg[i + 1][1] == "v":
            out[-1][0] = out[-1][0] + "一" + seg[i + 1][0]
            i += 2
            continue
        out.append([word, pos])
        i += 1
    merged: list[list[str]] = []
    for word, pos in out:  # a lone 一 joins the next word
        if merged and merged[-1][0] == "一":
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return [tuple(x) for x in merged]


def _merge_same(seg):
    out: list[list[str]] = []
    for word, pos in seg:
        if out and word == out[-1][0]:
            out[-1][0] += word
        else:
            out.append([word, pos])
    return [tuple(x) for x in out]


def _merge_three(seg, whole_words: bool):
    """Join neighbours of at most 3 characters when both are all tone 3 (``whole_words``) or when the
    tone-3 syllables meet at the boundary, unless the first is a reduplication (it goes neutral)."""
    finals = [_finals(w) for w, _ in seg]
    out: list[list[str]] = []
    merged_last = False
    for i, (word, pos) in enumerate(seg):
        joinable = False
        if i > 0 and not merged_last and finals[i - 1] and finals[i]:
            if whole_words:
                joinable = _all_three(finals[i - 1]) and _all_three(finals[i])
            else:
                joinable = _tone(finals[i - 1][-1]) == "3" and _tone(finals[i][0]) == "3"
        prev = seg[i - 1][0] if i > 0 else ""
        if joinable and not (len(prev) == 2 and prev[0] == prev[1]) and len(prev) + len(word) <= 3:
            out[-1][0] += word
            merged_last = True
        else:
            out.append([word, pos])
            merged_last = False
    return [tuple(x) for x in out]


def _merge_er(seg):
    out: list[list[str]] = []
    for word, pos in seg:
        if out and word == "儿" and out[-1][0] != "#":
            out[-1][0] += word
        else:
            out.append([word, pos])
    return [tuple(x) for x in out]


# -- sandhi inside one word ---------------------------------------------------------------------------
def modify_tones(word: str, pos: str, finals: list[str]) -> list[str]:
    finals = list(finals)
    finals = _bu(word, finals)
    finals = _yi(word, finals)
    finals = _neutral(word, pos, finals)
    return _three(word, finals)


def _bu(word, finals):
    if len(word) == 3 and word[1] == "不":  # 看不懂
        finals[1] = _set(finals[1], "5")
        return finals
    for i, ch in enumerate(word[:-1]):
        if ch == "不" and _tone(finals[i + 1]) == "4":  # 不怕 bu2
            finals[i] = _set(finals[i], "2")
    return finals


def _yi(word, finals):
    if "一" in word and all(ch.isnumeric() for ch in word if ch != "一"):
        return finals  # inside a number: yi1
    if len(word) == 3 and word[1] == "一" and word[0] == word[2]:
        finals[1] = _set(finals[1], "5")  # 看一看
    elif word.startswith("第一"):
        finals[1] = _set(finals[1], "1")
    else:
        for i, ch in enumerate(word[:-1]):
            if ch == "一" and word[i + 1] not in _PUNCT:
                finals[i] = _set(finals[i], "2" if _tone(finals[i + 1]) == "4" else "4")
    return finals


def _neutral(word, pos, finals):
    for j in range(1, len(word)):  # reduplicated nouns, verbs, adjectives: 奶奶, 试试
        if word[j] == word[j - 1] and pos[:1] in ("n", "v", "a") and word not in NOT_NEUTRAL:
            finals[j] = _set(finals[j], "5")
    ge = word.find("个")
    last = word[-1]
    if last in "吧呢哈啊呐噻嘛吖嗨哦哒额滴哩哟喽啰耶喔诶" or last in "的地得":
        finals[-1] = _set(finals[-1], "5")
    elif len(word) == 1 and word in "了着过" and pos in ("ul", "uz", "ug"):
        finals[-1] = _set(finals[-1], "5")
    elif len(word) > 1 and last in "们子" and pos in ("r", "n") and word not in NOT_NEUTRAL:
        finals[-1] = _set(finals[-1], "5")
    elif len(word) > 1 and last in "上下里" and pos in ("s", "l", "f"):
        finals[-1] = _set(finals[-1], "5")
    elif len(word) > 1 and last in "来去" and word[-2] in "上下进出回过起开":
        finals[-1] = _set(finals[-1], "5")
    elif (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")) or word == "个":
        finals[ge] = _set(finals[ge], "5")
    elif word in NEUTRAL_WORDS or word[-2:] in NEUTRAL_WORDS:
        finals[-1] = _set(finals[-1], "5")
    return finals


def _three(word, finals):
    if len(word) == 2 and _all_three(finals):
        finals[0] = _set(finals[0], "2")
    elif len(word) == 3:
        first, _ = _split(word)
        if _all_three(finals):
            finals[0] = _set(finals[0], "2") if len(first) == 2 else finals[0]
            finals[1] = _set(finals[1], "2")  # 蒙古/包 -> 2 2 3; 纸/老虎 -> 3 2 3
        else:
            a, b = finals[:len(first)], finals[len(first):]
            for i, part in enumerate((a, b)):
                if len(part) == 2 and _all_three(part):  # 所有/人
                    part[0] = _set(part[0], "2")
                elif i == 1 and part and not _all_three(part) and _tone(part[0]) == "3" and a and \
                        _tone(a[-1]) == "3":  # 好/喜欢
                    a[-1] = _set(a[-1], "2")
            finals = a + b
    elif len(word) == 4:  # idioms: two pairs
        for k in (0, 2):
            if _all_three(finals[k:k + 2]):
                finals[k] = _set(finals[k], "2")
    return finals
