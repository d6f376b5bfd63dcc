"""One server-wide limit on turns rendering at once, shared by every tab, the API and real-time sessions.

Rendering (TTS and the talking head, on one GPU) is what runs out; the limit is ``server.concurrency``.
A turn takes a ``Ticket`` and waits, first come first served, seeing its place in the line as it
moves ("busy: you are number 2"); more than ``limits.queue`` waiting turns are refused at once with
``BusyError`` rather than left to wait for ever.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from app_modules.errors import BusyError


class RenderSlots:
    """``capacity`` turns at once; at most ``max_waiting`` more wait for a slot."""

    def __init__(self, capacity: int = 1, max_waiting: int = 16):
        self.capacity = max(1, capacity)
        self.max_waiting = max(0, max_waiting)
        self._cond = threading.Condition()
        self._running = 0
        self._line: list[Ticket] = []  # waiting, in arrival order

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._line)

    def full(self) -> bool:
        """Whether a new turn would be refused now."""
        with self._cond:
            return len(self._line) >= self.max_waiting and self._running >= self.capacity

    def ticket(self) -> Ticket:
        """A place at the end of the line, or ``BusyError`` when the line is full."""
        with self._cond:
            if len(self._line) >= self.max_waiting and self._running >= self.capacity:
                raise BusyError(f"the server is busy: {self._running} turn(s) rendering and {len(self._line)} "
                                "waiting, the most it takes; try again in a minute")
            t = Ticket(self)
            self._line.append(t)
            self._grant()
            return t

    def _grant(self) -> None:
        """Give free slots to the first in line (called with the lock held)."""
        while self._line and self._running < self.capacity:
            t = self._line.pop(0)
            t.holding = True
            self._running += 1
        self._cond.notify_all()

    def _position(self, t: Ticket) -> int:
        return 0 if t.holding else self._line.index(t) + 1

    def _leave(self, t: Ticket) -> None:
        with self._cond:
            if t.holding:
                t.holding = False
                self._running -= 1
            elif t in self._line:
                self._line.remove(t)
            t.done = True
            self._grant()


class Ticket:
    """A turn's place: ``wait`` until it holds a slot, then ``release`` (or use it as a context manager)."""

    def __init__(self, slots: RenderSlots):
        self._slots = slots
        self.holding = False
        self.done = False

    def positions(self, cancel: threading.Event | None = None, poll: float = 0.5) -> Iterator[int]:
        """Yield the place in line (1 = next) each time it changes while waiting; returns once the slot is
        held (or ``cancel`` is set: check ``holding``)."""
        cond, last = self._slots._cond, None
        while True:
            with cond:
                if self.done:
                    return
                pos = self._slots._position(self)
                if pos == 0:
                    return
                if pos == last:
                    cond.wait(poll)
                    pos = self._slots._position(self)
            if cancel is not None and cancel.is_set():
                return
            if pos and pos != last:
                last = pos
                yield pos

    def wait(self, cancel: threading.Event | None = None) -> bool:
        for _ in self.positions(cancel):
            pass
        return self.holding

    def release(self) -> None:
        if not self.done:
            self._slots._leave(self)

    def __enter__(self) -> Ticket:
        self.wait()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
