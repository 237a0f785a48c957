"""Ids of one lane waiting for capacity: futures woken by one timer, oldest first.

No polling: one timer is armed for the earliest due id, and when it fires the ids
due by then are woken in the order they first waited (`Waitlist`). Each woken id
decides and, if it sends, takes its capacity before the next one resumes (asyncio
resumes them in the order their futures were resolved), so the oldest waiting id
gets the next token.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from banditlb.attempts import AttemptLoop
from banditlb.waitlist import Waitlist


class Holding:
    def __init__(self, max_waiting: int, clock: Callable[[], float]):
        self.waitlist: Waitlist[AttemptLoop] = Waitlist(max_waiting)
        self.clock = clock
        self._futures: dict[AttemptLoop, asyncio.Future] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    @property
    def waiting(self) -> int:
        return len(self._futures)

    async def hold(self, loop: AttemptLoop, until: float) -> bool:
        """Wait until `until` (or a little later, in turn); False when the list is full."""
        if not self.waitlist.add(loop, until):
            return False
        future = asyncio.get_running_loop().create_future()
        self._futures[loop] = future
        self._arm()
        try:
            await future
        finally:
            self._futures.pop(loop, None)
        return True

    def forget(self, loop: AttemptLoop) -> None:
        """The id is answered: it gives up its place in the queue."""
        self.waitlist.forget(loop)

    def _arm(self) -> None:
        due = self.waitlist.next_due()
        if due is None or due >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due - self.clock()),
                                                            self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        for loop in self.waitlist.due(self.clock()):
            future = self._futures.get(loop)
            if future is not None and not future.done():
                future.set_result(None)
        self._arm()
