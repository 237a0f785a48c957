"""Hot reload: read the config file again and apply it, on SIGHUP or POST /admin/reload.

The file is checked whole first (every problem with its key and line, as
`banditlb config check` reports them); an invalid file, or one that changes what
only a restart can (listeners, contract, store, shared state), is refused with
the reason and the running configuration stays. What the command line gave
instead of the file (data dir, fleet URL, admin token) is kept.
"""

from __future__ import annotations

import asyncio
import logging

from banditlb.balancer import config_file
from banditlb.balancer.core import ReloadError
from banditlb.balancer.pools import Pools

log = logging.getLogger("banditlb.reload")


async def reload_from_file(pools: Pools) -> dict:
    """Apply the file the balancer started from; ReloadError (nothing applied) if not."""
    running = pools.main.config
    if running.source is None:
        raise ReloadError("started without --config: there is no file to reload")
    checked = await asyncio.to_thread(
        config_file.check, running.source, data_dir=running.data_dir,
        fleet_url=running.fleet_url, admin_token=running.admin_token)
    if checked.problems:
        raise ReloadError("the file has problems (the running configuration stays):\n" +
                          "\n".join(p.render(running.source) for p in checked.problems))
    return await pools.reload(checked.lb)


async def reload_logged(pools: Pools) -> None:
    """SIGHUP's reload: its result, or why it was refused, goes to the log."""
    try:
        done = await reload_from_file(pools)
    except ReloadError as exc:
        log.error("reload refused: %s", exc)
        return
    for name, pool in done["pools"].items():
        log.warning("reloaded %s, pool %s: upstreams %s, learning %s",
                    pools.main.config.source, name, ", ".join(pool["upstreams"]),
                    pool["learning"])
