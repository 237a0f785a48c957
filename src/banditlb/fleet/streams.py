"""Stable, independent random streams derived from a seed and a name."""

from __future__ import annotations

import hashlib
import random


def stream_seed(*parts: object) -> int:
    """A 64-bit seed that depends only on the parts, never on PYTHONHASHSEED."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def stream(*parts: object) -> random.Random:
    """A private RNG for one purpose of one server, so draws never interfere."""
    return random.Random(stream_seed(*parts))
