"""Speech synthesis backends. The interface is in ``TTS.base``."""
