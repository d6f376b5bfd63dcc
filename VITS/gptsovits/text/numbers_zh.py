"""Arabic numbers in Chinese text -> Chinese numerals, with the TTS stage's reader (integers, decimals,
percentages, dates, times, units; years and long numbers digit by digit, as GPT-SoVITS reads them)."""

from __future__ import annotations

from TTS.text_norm import normalize_chinese


def normalize_numbers(text: str) -> str:
    return normalize_chinese(text)
