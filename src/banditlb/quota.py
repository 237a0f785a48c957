"""What an upstream's rate limit has left: the shape every limiter reports and every
rate-limit header carries (X-RateLimit-*, the IETF RateLimit fields, LLM APIs' own)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int | None = None
    """Requests the limit allows per window (or the bucket's size); None when unknown."""
    remaining: int | None = None
    """Requests it would admit right now before refusing; None when unknown."""
    reset_s: float | None = None
    """Seconds until `remaining` is back up to `limit` (the window's end, a full bucket);
    None when unknown."""
