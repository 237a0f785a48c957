"""Where a pool's replicas share their evidence (`--shared-state`), checked at start.

Apart from the Redis link so that reading a configuration never imports a client."""

from __future__ import annotations

import os
from dataclasses import dataclass

PASSWORD_ENV = "BANDITLB_REDIS_PASSWORD"
DEFAULT_SYNC_MS = 20.0


@dataclass(frozen=True)
class SharedConfig:
    url: str
    """redis:// or rediss:// (TLS), without a password: that comes from the
    environment (PASSWORD_ENV) or the config file, never from argv."""
    pool: str = "default"
    sync_ms: float = DEFAULT_SYNC_MS
    password: str | None = None

    def __post_init__(self):
        if not self.url.startswith(("redis://", "rediss://")):
            raise ValueError(f"shared state {self.url!r}: expected redis://host:port[/db] "
                         "or rediss://...")
        if "@" in self.url.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError(f"shared state: put the password in {PASSWORD_ENV} or the "
                         "config file, not in the URL (argv is visible to every user)")
        if not 1.0 <= self.sync_ms <= 10_000.0:
            raise ValueError("sync_ms must be between 1 and 10000")
        if not self.pool or any(c in self.pool for c in " {}:"):
            raise ValueError(f"pool name {self.pool!r}: no spaces, braces or colons")

    def with_password_from_env(self) -> SharedConfig:
        password = self.password or os.environ.get(PASSWORD_ENV) or None
        return SharedConfig(self.url, self.pool, self.sync_ms, password)

    @property
    def key(self) -> str:
        return f"banditlb:{self.pool}:evidence"
