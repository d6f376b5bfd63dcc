"""Talker: the parts that join the stages (settings, registry, pipeline, media, UI, CLI, API)."""
