"""Talking-head backends. The interface is in ``THG.base``."""
