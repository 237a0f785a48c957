"""Ids waiting for capacity, bounded, woken oldest first: the same list live and simulated.

An id that waits is due again at the time its decision named (the earliest expected
admission). Capacity only comes back with time (an answer can take it away, never
give it), so waking ids when they are due is enough; among the ids due at once,
the one that arrived first decides first, so the oldest waiting id gets the next
token. The balancer wakes asyncio futures with it, the simulator event-heap entries.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item", bound=Hashable)

DEFAULT_MAX_WAITING = 1000


class Waitlist(Generic[Item]):
    def __init__(self, max_waiting: int = DEFAULT_MAX_WAITING):
        if max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")
        self.max_waiting = max_waiting
        self._heap: list[tuple[float, int, Item]] = []
        self._order: dict[Item, int] = {}
        self._seq = itertools.count()
        self.waits = 0
        """Waits granted so far."""
        self.turned_away = 0
        """Waits refused because the list was full."""

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, item: Item, until: float) -> bool:
        """Let `item` wait until `until`; False (and counted) when the list is full.
        An item keeps its place in the queue across waits (its first wait's number)."""
        if len(self._heap) >= self.max_waiting:
            self.turned_away += 1
            return False
        order = self._order.get(item)
        if order is None:
            order = self._order[item] = next(self._seq)
        heapq.heappush(self._heap, (until, order, item))
        self.waits += 1
        return True

    def forget(self, item: Item) -> None:
        """`item` will not wait again (it is answered): drop its place in the queue."""
        self._order.pop(item, None)

    def next_due(self) -> float | None:
        """When the next item is due, None when nothing waits."""
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[Item]:
        """Every item due by `now`, taken off the list, oldest first."""
        heap = self._heap
        taken = []
        while heap and heap[0][0] <= now:
            taken.append(heapq.heappop(heap))
        taken.sort(key=lambda entry: entry[1])
        return [item for _, _, item in taken]
