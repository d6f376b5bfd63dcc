"""Speech recognition backends. The interface is in ``ASR.base``."""
