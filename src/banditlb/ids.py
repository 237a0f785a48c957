"""The request id contract: 24 ASCII alphanumeric characters, as raw text or JSON."""

from __future__ import annotations

import json

ID_LENGTH = 24
MAX_BODY_BYTES = 1024


class BadId(ValueError):
    """A body that does not carry a valid id; the message is the reason for the client."""


def check_id(value: object) -> str:
    """Return the id if it is 24 ASCII letters or digits, else raise BadId with the reason."""
    if not isinstance(value, str):
        raise BadId("id must be a string")
    if len(value) != ID_LENGTH:
        raise BadId(f"id must be {ID_LENGTH} characters, got {len(value)}")
    if not (value.isascii() and value.isalnum()):
        raise BadId("id must be ASCII letters and digits only")
    return value


def parse_id_body(body: bytes, *, allow_raw: bool = True) -> str:
    """Extract the id from a JSON body {"id": ...} or, if allowed, from the raw text."""
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise BadId("body is not valid UTF-8") from exc
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadId(f"bad JSON: {exc.msg}") from exc
        if not isinstance(doc, dict) or "id" not in doc:
            raise BadId('JSON body must be an object with an "id" field')
        return check_id(doc["id"])
    if not allow_raw:
        raise BadId('body must be JSON {"id": "..."}')
    return check_id(text)
