"""Voice cloning backends (GPT-SoVITS, XTTS) and the voice library. They implement ``TTS.base.TTS``."""
