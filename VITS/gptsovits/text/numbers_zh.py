"""Arabic numbers in Chinese text -> Chinese numerals (a small subset of the original's normaliser:
integers, decimals and percentages; no dates, phone numbers or units)."""

from __future__ import annotations

import re

_DIGITS = "零一二三四五六七八九"
_UNITS = ["", "十", "百", "千"]
_BIG = ["", "万", "亿", "兆"]


def _four(n: int) -> str:
    """0 < n < 10000, with inner zeros read once (一千零五)."""
    out, zero = "", False
    for pos in range(3, -1, -1):
        d = n // 10 ** pos % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[d] + _UNITS[pos]
    return out


def integer(n: int) -> str:
    if n == 0:
        return "零"
    groups, out = [], ""
    while n:
        groups.append(n % 10000)
        n //= 10000
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if g == 0:
            continue
        if out and g < 1000:
            out += "零"
        out += _four(g) + _BIG[i]
    out = out.lstrip("零")
    return out[1:] if out.startswith("一十") else out  # 10-19 read 十X, not 一十X


def number(text: str) -> str:
    whole, _, frac = text.partition(".")
    out = integer(int(whole)) if whole else "零"
    return out + ("点" + "".join(_DIGITS[int(d)] for d in frac) if frac else "")


def normalize_numbers(text: str) -> str:
    text = re.sub(r"(\d+(?:\.\d+)?)%", lambda m: "百分之" + number(m.group(1)), text)
    return re.sub(r"\d+(?:\.\d+)?", lambda m: number(m.group()), text)
