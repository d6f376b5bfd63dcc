"""When a face blinks: one schedule for every place that closes the eyes.

The real-time idle face (``app_modules.realtime.idle``) and the ``lite`` talking head both ask this
schedule how far the eyes are closed at a time ``t``, so they blink at the same rate and with the
same lid motion. Blinks come every few seconds, jittered so they do not tick like a clock.
"""

from __future__ import annotations

import math

import numpy as np


class BlinkSchedule:
    """Blink start times drawn once from ``seed``; ``amount(t)`` is 0 (open) .. 1 (closed).

    ``every_s`` is the mean gap between blinks (each gap is 0.5-1.5 times it), ``length_s`` how long
    the lids take to close and open again. No blink starts before ``start_s``; the first one comes one
    gap after it, or ``first_gap`` (a range, in multiples of ``every_s``) when given. The schedule repeats after
    ``count`` blinks."""

    def __init__(self, every_s: float = 4.0, length_s: float = 0.16, seed: int = 0, start_s: float = 1.0,
                 first_gap: tuple[float, float] | None = None, count: int = 64):
        if every_s <= 0 or length_s <= 0 or length_s >= every_s * 0.5:
            raise ValueError(f"a blink of {length_s} s every {every_s} s is not a blink")
        self.length_s = length_s
        rng = np.random.default_rng(seed)
        gaps = rng.uniform(0.5, 1.5, count) * every_s
        if first_gap is not None:
            gaps[0] = rng.uniform(*first_gap) * every_s
        self.times = np.cumsum(gaps) + start_s

    def amount(self, t: float) -> float:
        """How closed the eyes are at ``t`` seconds: a smooth close-and-open over ``length_s``."""
        period = float(self.times[-1])
        if t > period:
            t = t % period
        i = int(np.searchsorted(self.times, t, side="right"))
        if i == 0:
            return 0.0
        dt = t - float(self.times[i - 1])
        if 0 <= dt <= self.length_s:
            return math.sin(math.pi * dt / self.length_s)
        return 0.0
