"""The balancer's own JSON answers, written straight to ASGI (the hot path skips Starlette)."""

from __future__ import annotations

import json

from starlette.types import Send

JSON_HEADERS = [(b"content-type", b"application/json")]


async def send_json(send: Send, status: int, doc: dict, headers=()) -> int:
    """Write the answer; the bytes of its body."""
    body = json.dumps(doc, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", b"%d" % len(body)), *headers]})
    await send({"type": "http.response.body", "body": body})
    return len(body)


async def send_answer(send: Send, answer) -> int:
    """A balancer Answer: its status, JSON body and headers; the bytes of its body."""
    return await send_json(send, answer.status_code, answer.body,
                    [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()])
