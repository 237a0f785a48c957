"""How much a kill -9 of the balancer loses, measured over repeated crashes.

Each trial: `banditlb lb` in front of T1 records to a fresh store while an open-loop
client sends 200 req/s; after 2 s the balancer is killed with SIGKILL. The store is
then checked (integrity_check, every stored request whole) and compared with what the
client was answered: an answered request missing from the store was lost, and its
age at the kill (kill time minus answer time) says how far back the loss reaches.
The store promises at most one flush interval (250 ms).

    .venv/bin/python bench/soak/crash.py [--trials 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from banditlb.balancer.runner import start_lb_process
from banditlb.fleet.runner import start_fleet_process
from banditlb.harness import NO_ANSWER, fire, make_ids
from banditlb.store import Store, db_path

RPS, KILL_AFTER_S = 200.0, 2.0


def stored_attempt_numbers(data_dir: Path) -> dict[str, list[int]]:
    with Store(data_dir) as store:
        (run,) = store.runs()
        numbers = defaultdict(list)
        for row in store.attempts(run["id"]):
            numbers[row["request_id"]].append(row["attempt_number"])
    return numbers


def trial(upstreams: list[str], data_dir: Path, seed: int) -> dict:
    lb = start_lb_process(upstreams, data_dir=data_dir)
    killed_at = []

    async def load():
        def kill():
            lb.process.kill()
            killed_at.append(time.time())

        asyncio.get_running_loop().call_later(KILL_AFTER_S, kill)
        fired = await fire(lb.url + "/", make_ids(int(RPS * KILL_AFTER_S * 1.5),
                                                  f"crash {seed}"), RPS, timeout_s=5)
        return fired.rows

    try:
        sent = asyncio.run(load())
    finally:
        lb.stop()
    conn = sqlite3.connect(db_path(data_dir))
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    stored = stored_attempt_numbers(data_dir)
    answered = [r for r in sent if r.status != NO_ANSWER]
    lost_ages = [killed_at[0] - (r.ts + r.latency_ms / 1000) for r in answered
                 if r.request_id not in stored]
    return {
        "integrity": integrity, "answered": len(answered), "stored_requests": len(stored),
        "partial_requests": sum(sorted(n) != list(range(1, len(n) + 1))
                                for n in stored.values()),
        "wrong_attempt_counts": sum(len(stored[r.request_id]) != r.attempts for r in answered
                                    if r.request_id in stored),
        "answered_but_lost": len(lost_ages),
        "oldest_lost_ms": round(1000 * max(lost_ages, default=0.0), 1),
    }


def run_crashes(trials: int) -> dict:
    with start_fleet_process(["T1"], seed=0) as fleet, \
            tempfile.TemporaryDirectory(prefix="crash-") as tmp:
        results = [trial(fleet.upstreams("T1"), Path(tmp) / str(n), n) for n in range(trials)]
    return {"trials": results,
            "oldest_lost_ms": max(r["oldest_lost_ms"] for r in results),
            "all_clean": all(r["integrity"] == "ok" and not r["partial_requests"]
                             and not r["wrong_attempt_counts"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    print(json.dumps(run_crashes(parser.parse_args().trials), indent=1))


if __name__ == "__main__":
    main()
