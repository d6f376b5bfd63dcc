"""One blink schedule for the real-time idle face and the lite talking head."""

import numpy as np
import pytest

from app_modules.blink import BlinkSchedule
from app_modules.realtime.idle import IdleMotion, IdleOptions


def test_blinks_close_and_open_smoothly_every_few_seconds():
    s = BlinkSchedule(every_s=4.0, length_s=0.16, seed=3)
    t = np.arange(0, 60, 0.01)
    amount = np.array([s.amount(x) for x in t])
    assert amount.min() == 0 and amount.max() > 0.99
    closed = amount > 0.5
    starts = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    assert 8 <= len(starts) <= 25  # about one every 4 s, jittered
    gaps = np.diff(t[starts])
    assert gaps.min() >= 0.5 * 4.0 - 0.2 and gaps.std() > 0.3  # never twice at once, never like a clock
    assert (amount[t < 1.0] == 0).all()  # nothing before start_s


def test_a_first_gap_lets_short_clips_blink_too():
    firsts = [BlinkSchedule(4.0, 0.16, seed=k, start_s=1.0, first_gap=(0.0, 1.0)).times[0] for k in range(50)]
    assert min(firsts) >= 1.0 and max(firsts) <= 5.0 and np.mean(firsts) < 3.5


def test_nonsense_timings_are_refused():
    with pytest.raises(ValueError):
        BlinkSchedule(every_s=0.2, length_s=0.16)


def test_idle_face_uses_the_schedule_and_can_leave_a_backends_own_blinks_alone():
    idle = IdleMotion(np.full((64, 48, 3), 200, np.uint8), IdleOptions(sway_degrees=0, sway_pixels=0),
                      eyes=[(8, 20, 12, 8), (28, 20, 12, 8)])
    t = idle.blinks.times[0] + idle.options.blink_s / 2
    assert idle.blink_amount(t) == idle.blinks.amount(t) > 0.9
    assert idle.frame(t)[24, 14].sum() < idle.frame(t + 1.0)[24, 14].sum()  # blinked
    assert np.array_equal(idle.apply(idle.base, t, blink=False), idle.frame(t + 1.0))  # not blinked over
