"""Text front end: Mandarin and English text -> v2 phoneme ids (see ``frontend.phonemize``)."""
