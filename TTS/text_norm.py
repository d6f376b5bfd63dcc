"""Text as a voice should read it: markdown and emoji removed, numbers, dates and units spelled out.

LLM replies arrive as markdown with emoji and digits. Voices read "**2024-05-01**" as stars and
digits (or skip it), so every backend sees ``normalize_text(text)`` first. English numbers go
through ``num2words``; Chinese readings (一千二百三十四, 二零二四年, 百分之五十) are done here,
as no small package covers them.
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------------------------------ language

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def is_chinese(text: str) -> bool:
    """True when Chinese characters outnumber Latin words ("我用Python写代码" is Chinese)."""
    cjk = len(_CJK.findall(text))
    return cjk > 0 and cjk >= len(_LATIN_WORD.findall(text))


def language_of(text: str) -> str:
    return "zh" if is_chinese(text) else "en"


# ------------------------------------------------------------------------------------ markdown, emoji

_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, symbols and pictographs ext.
    "\u2600-\u27bf"  # miscellaneous symbols, dingbats
    "\u2300-\u23ff"  # technical (watch, hourglass)
    "\u2b00-\u2bff"  # arrows, stars
    "\ufe0e\ufe0f\u200d\u20e3"  # variation selectors, zero-width joiner, keycap
    "\U000e0020-\U000e007f"  # flag tags
    "]+"
)


def strip_emoji(text: str) -> str:
    return _EMOJI.sub("", text)


_FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1[^\n]*$", re.S | re.M)
_SUBS_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # image -> alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # link -> its text
    (re.compile(r"<https?://[^>]+>"), ""),
    (re.compile(r"https?://\S+"), ""),  # nobody wants a URL read letter by letter
    (re.compile(r"</?[A-Za-z][^>]*>"), ""),  # HTML tags
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"\*\*(.+?)\*\*|__(.+?)__"), lambda m: m.group(1) or m.group(2)),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"), r"\1"),
    (re.compile(r"~~(.+?)~~"), r"\1"),
]
_BLOCK = re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_END_PUNCT = tuple(".!?;:。！？；：…,，、")


def strip_markdown(text: str) -> str:
    """Plain text from markdown. Code blocks are dropped: read aloud they help no one.

    Headings, list items and table rows end a sentence, so the voice pauses after them."""
    text = _FENCE.sub("", text)
    lines: list[str] = []
    for raw in text.splitlines():
        if _RULE.match(raw) or _TABLE_SEP.match(raw):
            continue
        line = raw.strip()
        block = bool(_BLOCK.match(raw)) or line.startswith("|")
        if line.startswith("|"):
            line = ", ".join(c.strip() for c in line.strip("|").split("|") if c.strip())
        line = _BLOCK.sub("", line)
        for pattern, repl in _SUBS_INLINE:
            line = pattern.sub(repl, line)
        line = re.sub(r"[ \t]{2,}", " ", line).strip()
        if not line:
            continue
        if block and not line.endswith(_END_PUNCT):
            line += "。" if is_chinese(line) else "."
        lines.append(line)
    return _join_lines(lines)


_WIDE = re.compile(r"[\u3000-\u9fff\uf900-\ufaff\uff00-\uffef]")  # CJK characters and punctuation


def _join_lines(lines: list[str]) -> str:
    out = ""
    for line in lines:
        # Chinese text has no spaces between lines of one paragraph
        if out and not (_WIDE.match(out[-1]) or _WIDE.match(line[0])):
            out += " "
        out += line
    return out


# --------------------------------------------------------------------------------------------- English

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_EN_UNITS = {
    "km": "kilometer", "m": "meter", "cm": "centimeter", "mm": "millimeter", "kg": "kilogram",
    "g": "gram", "mg": "milligram", "l": "liter", "L": "liter", "ml": "milliliter", "mL": "milliliter",
    "km/h": "kilometer per hour", "mph": "mile per hour", "°C": "degree Celsius", "℃": "degree Celsius",
    "°F": "degree Fahrenheit", "°": "degree", "GB": "gigabyte", "MB": "megabyte", "KB": "kilobyte",
    "kB": "kilobyte", "TB": "terabyte", "Hz": "hertz", "kHz": "kilohertz", "MHz": "megahertz",
    "GHz": "gigahertz", "ms": "millisecond", "s": "second", "min": "minute", "h": "hour",
    "kW": "kilowatt", "W": "watt", "V": "volt", "lb": "pound", "lbs": "pound", "ft": "foot", "in": "inch",
}
_EN_PLURAL = {"foot": "feet", "inch": "inches", "hertz": "hertz", "kilohertz": "kilohertz",
              "megahertz": "megahertz", "gigahertz": "gigahertz"}
_CURRENCY_EN = {"$": ("dollar", "cent"), "€": ("euro", "cent"), "£": ("pound", "penny"),
                "¥": ("yuan", ""), "￥": ("yuan", "")}
_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
# longest first, so "km/h" wins over "km" and "ms" over "m"
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(_EN_UNITS, key=len, reverse=True))


def _words(n: float | int, **kw) -> str:
    from num2words import num2words

    # num2words puts commas in long numbers ("one million, two hundred"): pauses in the wrong place
    return num2words(n, lang="en", **kw).replace(",", "")


def _number(s: str) -> int | float:
    s = s.replace(",", "")
    return float(s) if "." in s else int(s)


def _decimal_en(s: str) -> str:
    s = s.replace(",", "")
    if "." not in s:
        return _words(int(s))
    whole, frac = s.split(".")
    return f"{_words(int(whole or 0))} point {' '.join(_words(int(d)) for d in frac)}"


def _plural(unit: str, value: str) -> str:
    if _number(value) == 1:
        return unit
    first, _, rest = unit.partition(" ")
    first = _EN_PLURAL.get(first, first + "s")
    return f"{first} {rest}".strip()


def _en_date(m: re.Match) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return f"{_MONTHS[mo - 1]} {_words(d, to='ordinal')} {_words(y, to='year')}"


def _en_time(m: re.Match) -> str:
    h, mi, suffix = int(m.group(1)), int(m.group(2)), (m.group(3) or "").strip()
    if h > 24 or mi > 59:
        return m.group(0)
    spoken = _words(h) + (" o'clock" if mi == 0 and not suffix else "" if mi == 0
                          else f" oh {_words(mi)}" if mi < 10 else f" {_words(mi)}")
    if suffix:
        spoken += " " + " ".join(suffix.replace(".", "").upper())
        if suffix.endswith("."):  # "p.m." at the end of a sentence also ends the sentence
            spoken += "."
    return spoken


def _en_money(m: re.Match) -> str:
    unit, sub = _CURRENCY_EN[m.group(1)]
    amount, scale = m.group(2).replace(",", ""), m.group(3)
    if scale:  # "$1.5 billion" -> "one point five billion dollars"
        return f"{_decimal_en(amount)} {scale} {unit}s"
    whole, _, cents = amount.partition(".")
    out = f"{_words(int(whole))} {_plural(unit, whole)}"
    if cents and sub and int(cents[:2].ljust(2, "0")):
        c = int(cents[:2].ljust(2, "0"))
        out += f" and {_words(c)} {sub if c == 1 else ('pence' if sub == 'penny' else sub + 's')}"
    return out


def _en_number(m: re.Match) -> str:
    s = m.group(0)
    sign = "minus " if s.startswith("-") else ""
    s = s.lstrip("-")
    # a bare four-digit number in this range is nearly always a year ("in 1999", "2024 was")
    if re.fullmatch(r"1[1-9]\d\d|20\d\d", s):
        return sign + _words(int(s), to="year")
    return sign + _decimal_en(s)


_EN_RULES: list[tuple[re.Pattern, object]] = [
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), _en_date),
    (re.compile(r"\b(\d{1,2}):(\d{2})\b(\s*[ap]\.?m\.?(?![A-Za-z]))?", re.I), _en_time),
    (re.compile(r"([$€£¥￥])\s?(" + _NUM + r")(?:\s?(thousand|million|billion|trillion)\b)?"), _en_money),
    (re.compile(r"(" + _NUM + r")\s?%"), lambda m: f"{_decimal_en(m.group(1))} percent"),
    (re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.I), lambda m: _words(int(m.group(1)), to="ordinal")),
    (re.compile(r"\b(\d+)/(\d+)\b(?!/)"),
     lambda m: f"{_words(int(m.group(1)))} over {_words(int(m.group(2)))}"),
    (re.compile(r"(" + _NUM + r")\s?(" + _UNIT_ALT + r")(?![A-Za-z0-9])"),
     lambda m: f"{_decimal_en(m.group(1))} {_plural(_EN_UNITS[m.group(2)], m.group(1))}"),
    (re.compile(r"(?<![\w.])-?" + _NUM), _en_number),
    (re.compile(r"\s*&\s*"), " and "),
]


def normalize_english(text: str) -> str:
    for pattern, repl in _EN_RULES:
        text = pattern.sub(repl, text)
    return text


# --------------------------------------------------------------------------------------------- Chinese

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_SMALL = ("", "十", "百", "千")
_ZH_BIG = ("", "万", "亿", "万亿")
# before these measure words 2 is read 两 (两个, 两点), elsewhere 二
_LIANG = set("个只本位条件次天人种台张点岁瓶杯碗辆匹头份家座所间层把双对")
_ZH_UNITS = {
    "km/h": "公里每小时", "km": "公里", "cm": "厘米", "mm": "毫米", "m": "米", "kg": "千克", "mg": "毫克",
    "g": "克", "ml": "毫升", "mL": "毫升", "L": "升", "l": "升", "°C": "摄氏度", "℃": "摄氏度",
    "°F": "华氏度", "°": "度", "GB": "G B", "MB": "M B", "TB": "T B", "kHz": "千赫兹", "Hz": "赫兹",
    "ms": "毫秒", "s": "秒", "min": "分钟", "h": "小时", "kW": "千瓦", "W": "瓦", "V": "伏",
}
_CURRENCY_ZH = {"¥": "元", "￥": "元", "$": "美元", "€": "欧元", "£": "英镑"}
_ZH_UNIT_ALT = "|".join(re.escape(u) for u in sorted(_ZH_UNITS, key=len, reverse=True))


def zh_digits(s: str) -> str:
    """Digit by digit: 2024 -> 二零二四 (years, phone numbers)."""
    return "".join(_ZH_DIGITS[int(c)] for c in s if c.isdigit())


def zh_int(n: int) -> str:
    """The reading of a whole number: 1234 -> 一千二百三十四, 10005 -> 一万零五, 15 -> 十五."""
    if n < 0:
        return "负" + zh_int(-n)
    if n == 0:
        return "零"
    groups: list[int] = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out = ""
    need_zero = False
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if g == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or g < 1000):
            out += "零"
        out += _zh_group(g) + _ZH_BIG[i]
        need_zero = False
    # 一十五 is said 十五 (but 一百一十五 keeps its 一)
    return out[1:] if out.startswith("一十") else out


def _zh_group(g: int) -> str:
    out, zero = "", False
    for pos in range(3, -1, -1):
        d = g // 10**pos % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _ZH_DIGITS[d] + _ZH_SMALL[pos]
    return out


def zh_number(s: str) -> str:
    """12.05 -> 十二点零五; leading zeros and eight or more digits read digit by digit (IDs, phones)."""
    s = s.replace(",", "")
    neg = s.startswith("-")
    s = s.lstrip("-+")
    whole, _, frac = s.partition(".")
    if (len(whole) > 1 and whole.startswith("0")) or len(whole) >= 8 and not frac:
        out = zh_digits(whole)
    else:
        out = zh_int(int(whole or 0))
    if frac:
        out += "点" + zh_digits(frac)
    return ("负" if neg else "") + out


def _zh_plain(m: re.Match) -> str:
    s, after = m.group(0), m.string[m.end():m.end() + 1]
    if s == "2" and after in _LIANG:
        return "两"
    return zh_number(s)


_ZH_RULES: list[tuple[re.Pattern, object]] = [
    (re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:日|号)?"),
     lambda m: f"{zh_digits(m.group(1))}年{zh_int(int(m.group(2)))}月{zh_int(int(m.group(3)))}日"),
    (re.compile(r"(\d{2,4})年"), lambda m: zh_digits(m.group(1)) + "年"),
    (re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?"),
     lambda m: ("两" if m.group(1).lstrip("0") == "2" else zh_int(int(m.group(1)))) + "点"
     + (("零" if int(m.group(2)) < 10 else "") + zh_int(int(m.group(2))) + "分" if int(m.group(2)) else "")
     + (zh_int(int(m.group(3))) + "秒" if m.group(3) and int(m.group(3)) else "")),
    (re.compile(r"([¥￥$€£])\s?(" + _NUM + r")(?:\s?(万|亿))?"),
     lambda m: zh_number(m.group(2)) + (m.group(3) or "") + _CURRENCY_ZH[m.group(1)]),
    (re.compile(r"(-?" + _NUM + r")\s?[%％]"), lambda m: "百分之" + zh_number(m.group(1))),
    (re.compile(r"(\d+)/(\d+)(?!/)"), lambda m: zh_int(int(m.group(2))) + "分之" + zh_int(int(m.group(1)))),
    (re.compile(r"(-?" + _NUM + r")\s?(" + _ZH_UNIT_ALT + r")(?![A-Za-z])"),
     lambda m: zh_number(m.group(1)) + _ZH_UNITS[m.group(2)]),
    (re.compile(r"(?<![\d.])-?" + _NUM), _zh_plain),
    (re.compile(r"\s*[~～]\s*"), "到"),
]


def normalize_chinese(text: str) -> str:
    for pattern, repl in _ZH_RULES:
        text = pattern.sub(repl, text)
    return text


# ------------------------------------------------------------------------------------------ together

def normalize_text(text: str, language: str | None = None, numbers: bool = True) -> str:
    """Markdown and emoji removed; with ``numbers``, digits spelled out in ``language``
    ("zh", "en" or a voice code such as "cmn", "en-us"; None detects zh or en; other languages
    keep their digits). Voices that read digits well (Edge) pass ``numbers=False``,
    so their word timings keep the digits the subtitles show."""
    text = strip_emoji(strip_markdown(text))
    if numbers:
        lang = (language or language_of(text)).lower()
        if lang.startswith(("zh", "cmn", "yue")):
            text = normalize_chinese(text)
        elif lang.startswith("en"):
            text = normalize_english(text)
        # other languages: the voice reads digits in its own language better than English words
    return re.sub(r"[ \t]+", " ", text).strip()


# a sentence ends at CJK end punctuation, or at Latin punctuation followed by a space
_SENTENCE_END = re.compile(r"(?<=[。！？；…])|(?<=[.!?;])(?=\s)|\n+")


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Sentences, each short enough to synthesize quickly; over-long ones split at commas."""
    out: list[str] = []
    for part in _SENTENCE_END.split(text):
        part = part.strip()
        if not part:
            continue
        while len(part) > max_chars:
            cut = max(part.rfind(c, 0, max_chars) for c in ",，、:：")
            if cut <= 0:
                cut = part.rfind(" ", 0, max_chars)
            if cut <= 0:
                cut = max_chars - 1
            out.append(part[:cut + 1].strip())
            part = part[cut + 1:].strip()
        if part:
            out.append(part)
    # a sentence of punctuation alone ("...") has nothing to say
    return [s for s in out if re.search(r"\w", s)]
