"""One entry point for the text front end: ``phonemize(text, language)``."""

from __future__ import annotations

from dataclasses import dataclass

from app_modules.errors import BadInputError
from VITS.gptsovits.text import chinese, english
from VITS.gptsovits.text.symbols import to_ids

LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class Phonemes:
    """Phones, their v2 ids, and for Chinese the phones per character of ``norm_text`` (for BERT)."""

    phones: list[str]
    ids: list[int]
    norm_text: str
    language: str
    word2ph: list[int] | None = None


def _once(text: str, language: str) -> Phonemes:
    if language == "zh":
        norm = chinese.normalize(text)
        phones, word2ph = chinese.g2p(norm)
        return Phonemes(phones, to_ids(phones), norm, language, word2ph)
    norm = english.normalize(text)
    phones = english.g2p(norm)
    if len(phones) < 4:  # as the original: very short English gets a leading pause
        phones = [","] + phones
    return Phonemes(phones, to_ids(phones), norm, language)


def phonemize(text: str, language: str) -> Phonemes:
    """Text -> phonemes. Under 6 phones, a leading '.' is added and the text read again (as upstream),
    which gives the GPT enough context to start."""
    if language not in LANGUAGES:
        raise BadInputError(f"unsupported text language {language!r}; choose one of: {', '.join(LANGUAGES)}")
    result = _once(text, language)
    if len(result.phones) < 6:
        result = _once("." + text, language)
    if not any(p not in (",", ".", "!", "?", "…", "-") for p in result.phones):
        raise BadInputError(f"nothing to say in {text!r} for language {language!r}: no readable words")
    return result
