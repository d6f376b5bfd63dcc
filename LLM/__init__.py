"""Chat backends. The interface is in ``LLM.base``."""
