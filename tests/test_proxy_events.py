"""The SSE hub: bounded queues, slow clients dropped, a cap on clients, streams end on close."""

from __future__ import annotations

import asyncio

from banditlb.balancer.events import QUEUE_SIZE, EventHub, encode


async def collect(hub: EventHub, client) -> list[bytes]:
    return [chunk async for chunk in hub.stream(client)]


async def test_events_reach_every_client_in_order():
    hub = EventHub()
    first, second = hub.subscribe(b"hello\n\n"), hub.subscribe()
    hub.publish("attempt", {"n": 1})
    hub.publish("attempt", {"n": 2})
    hub.close()
    assert await collect(hub, first) == [b"hello\n\n", encode("attempt", {"n": 1}),
                                         encode("attempt", {"n": 2})]
    assert await collect(hub, second) == [encode("attempt", {"n": 1}),
                                          encode("attempt", {"n": 2})]
    assert not hub.listening


async def test_a_client_that_falls_behind_is_dropped_not_waited_for():
    hub = EventHub()
    slow, fast = hub.subscribe(), hub.subscribe()
    fast_reader = asyncio.create_task(collect(hub, fast))
    for n in range(QUEUE_SIZE + 5):
        hub.publish("attempt", {"n": n})
        await asyncio.sleep(0)  # the fast reader keeps up
    assert hub.dropped == 1
    assert await collect(hub, slow) == []
    hub.close()
    assert len(await fast_reader) == QUEUE_SIZE + 5


async def test_at_most_max_clients():
    hub = EventHub(max_clients=3)
    clients = [hub.subscribe() for _ in range(3)]
    assert all(clients) and hub.subscribe() is None
    hub.close()
    await collect(hub, clients[0])
    assert hub.subscribe() is not None


async def test_publishing_without_listeners_is_free():
    hub = EventHub()
    hub.publish("attempt", {"n": 1})
    assert not hub.listening and hub.dropped == 0
