"""CSV export of a run's attempts, in the columns of the original challenge write-up."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from typing import TextIO

CSV_COLUMNS = ("session_id", "config_target", "request_number", "attempt_number", "request_id",
               "strategy", "timestamp", "server_port", "success", "latency_ms",
               "request_complete", "request_success", "rate_limited")


def write_attempts_csv(out: TextIO, run: dict, attempts: list[dict]) -> int:
    """Write one line per attempt of `run` (a dict from Store.run); return the line count."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for a in attempts:
        writer.writerow((
            run["session_id"], run["scenario"] or "", a["request_number"], a["attempt_number"],
            a["request_id"], run["strategy"],
            datetime.fromtimestamp(a["ts"], UTC).isoformat(timespec="milliseconds"),
            a["port"], a["outcome"] == "accepted", round(a["latency_ms"], 3),
            a["request_complete"], a["request_success"], a["outcome"] == "rate_limited",
        ))
    return len(attempts)
