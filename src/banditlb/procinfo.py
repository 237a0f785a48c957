"""What a running process holds, read from /proc (Linux): for the soak runs and the
reliability tests, which check that a server closes the connections it accepted."""

from __future__ import annotations

import os
from contextlib import suppress


def accepted_connections(pid: int, port: int) -> int:
    """Sockets `pid` holds for connections accepted on `port` (any TCP state but LISTEN)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                count += local_port == port and fields[3] != "0A" and fields[9] in inodes
    return count
