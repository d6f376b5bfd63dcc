"""Comparing a checkpoint's tensors with a network's, for load errors a user can act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def key_mismatch(own: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
    """None when ``state`` has exactly ``own``'s keys and shapes, else a short account of the
    differences: "3 missing (e.g. a, b, c), 1 with the wrong shape (e.g. w (2,) (expected (3,)))"."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        parts.append(f"{len(wrong)} with the wrong shape (e.g. {'; '.join(wrong[:2])})")
    return ", ".join(parts) or None
