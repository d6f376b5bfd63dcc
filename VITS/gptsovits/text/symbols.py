"""The GPT-SoVITS v2 phoneme inventory (732 symbols) and its id order.

Both networks index their phoneme embeddings by position in this list, so the order is load-bearing.
It is: the sorted union of pad, Mandarin initials, Mandarin finals x 5 tones, Japanese phonemes,
punctuation/pauses and ARPAbet; then the Japanese pitch marks "[" "]"; then the sorted Korean jamo; then
the sorted Cantonese symbols. (Built from those rules rather than listed, to keep it reviewable.)
"""

from __future__ import annotations

PAD = "_"
PUNCTUATION = ["!", "?", "…", ",", ".", "-"]
PAUSES = ["SP", "SP2", "SP3", "UNK"]

# Mandarin initials; AA/EE/OO stand in for the zero initial before a/e/o.
ZH_INITIALS = ("AA EE OO b c ch d f g h j k l m n p q r s sh t w x y z zh").split()
# Mandarin finals (opencpop "strict" set): E = the e of ye, En = the an of yan, i0 = the apical i of zi/ci/si,
# ir = the retroflex i of zhi/chi/shi/ri.
ZH_FINALS = ("E En a ai an ang ao e ei en eng er i i0 ia ian iang iao ie in ing iong ir iu o ong ou u ua uai uan "
             "uang ui un uo v van ve vn").split()
JA_SYMBOLS = ("I N U a b by ch cl d dy e f g gy h hy i j k ky m my n ny o p py r ry s sh t ts u v w y z").split()
_ARPA_VOWELS = "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split()
# ER and IH also appear without a stress digit in the original inventory.
ARPABET = ([v + s for v in _ARPA_VOWELS for s in "012"] + ["ER", "IH"]
           + "B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())
KO_SYMBOLS = "ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎㄲㄸㅃㅆㅉㅏㅓㅗㅜㅡㅣㅐㅔ空停"
_YUE_TONED = ("a aa aai aak aam aan aang aap aat aau ai ak am an ang ap at au e ei ek eng eoi eon eot g i ik im "
              "in ing ip it iu k m n o oe oek oeng oi ok on ong ot ou p t u ui uk un ung ut yu yun yut").split()
_YUE_PLAIN = "a aa ai ak au b c d e f g gw h j k kw l m n ng o oi ok on ou p s t uk w z".split()
YUE_SYMBOLS = ["Y" + s + t for s in _YUE_TONED for t in "123456"] + ["Y" + s for s in _YUE_PLAIN]

_base = {PAD, *ZH_INITIALS, *(f + t for f in ZH_FINALS for t in "12345"), *JA_SYMBOLS, *PUNCTUATION, *PAUSES,
         *ARPABET}
SYMBOLS: list[str] = sorted(_base) + ["[", "]"] + sorted(KO_SYMBOLS) + sorted(set(YUE_SYMBOLS))
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
assert len(SYMBOLS) == 732, len(SYMBOLS)


def to_ids(phones: list[str]) -> list[int]:
    """Map phones to ids; anything outside the inventory becomes UNK (as the original cleaner does)."""
    unk = SYMBOL_TO_ID["UNK"]
    return [SYMBOL_TO_ID.get(p, unk) for p in phones]
