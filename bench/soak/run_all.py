"""`make soak`: every long reliability run, its verdicts, and the figures of docs/reliability.md.

Runs, in order: the 1,000 req/s burst (60 s; it first waits for the shared machine to
quieten down and runs again if the machine starved it), the 10 req/s live soak (5 min),
the 24-hour virtual soak (864,000 ids per run), repeated kill -9 crashes and a slowloris
hold. Saves everything to bench/soak/results.json and prints one line of figures per
row of the table in docs/reliability.md, then the verdicts. About 12 minutes on a
quiet machine.

    .venv/bin/python bench/soak/run_all.py [--scale 0.1]   # --scale shortens every run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from crash import run_crashes
from live import PRESETS, run_live
from slowloris import run_slowloris
from virtual import DAY_REQUESTS, run_all

RESULTS = Path(__file__).with_name("results.json")
RSS_GROWTH_LIMIT_PCT = 10.0
FLUSH_INTERVAL_MS = 250.0
QUIET_LOAD, QUIET_WAIT_S = 1.5, 600.0
"""The burst waits (up to QUIET_WAIT_S) for the 1-minute load average to drop below this."""
SATURATED_LAG_MS, BURST_TRIES = 1000.0, 3
"""A burst whose client loop stalled longer than this measured the machine, not the
balancer: it is kept in the results but run again, up to BURST_TRIES times."""


def wait_for_quiet_machine() -> float:
    """Seconds waited for the shared machine's load to drop below QUIET_LOAD."""
    started = time.monotonic()
    while time.monotonic() - started < QUIET_WAIT_S:
        with open("/proc/loadavg") as loadavg:
            if float(loadavg.read().split()[0]) < QUIET_LOAD:
                break
        time.sleep(5)
    return round(time.monotonic() - started)


def burst_on_a_quiet_machine(scale: float) -> list[dict]:
    """Burst runs until one was not starved by the rest of the machine (the last one)."""
    runs = []
    for _ in range(BURST_TRIES):
        waited = wait_for_quiet_machine()
        (run,) = run_live(**scaled("burst", scale))
        runs.append({**run, "waited_for_quiet_s": waited})
        if run["client_loop_lag_max_ms"] <= SATURATED_LAG_MS:
            break
    return runs


def scaled(preset: str, scale: float) -> dict:
    settings = dict(PRESETS[preset])
    settings["duration_s"] *= scale
    settings["warmup_s"] *= scale
    return settings


def live_line(name: str, r: dict) -> str:
    return (f"{name} {r['strategy']} on {r['scenario']}: {r['sent']:,} requests at "
            f"{r['rps']:g} req/s for {r['duration_s']:g} s; 200: {r['ok_200']:,}, 502: "
            f"{r['gave_up_502']:,}, 503: {r['unavailable_503']:,}; balancer errors "
            f"{r['balancer_errors']} {r['no_answer'] or ''}; over the deadline: balancer's "
            f"own timing {r['balancer_over_deadline']}, client's {r['deadline_misses']}; "
            f"p50/p99 balancer {r['balancer_p50_ms']}/{r['balancer_p99_ms']} ms, client "
            f"{r['p50_ms']}/{r['p99_ms']} ms; RSS {r['rss_mb_after_warmup']} -> "
            f"{r['rss_mb_end']} MB after warm-up ({r['rss_growth_pct']:+}%, max "
            f"{r['rss_max_growth_pct']:+}%); fds {r['fds_min']}-{r['fds_max']} (medians "
            f"{r['fds_median_first_half']} -> {r['fds_median_second_half']}), client "
            f"connections left after close {r['client_connections_left']}; CPU s balancer "
            f"{r['cpu_s']}, fleet {r['fleet_cpu_s']}, client {r['client_cpu_s']}; machine "
            f"load max {r['load_1min_max']}, client loop lag max {r['client_loop_lag_max_ms']} "
            f"ms")


def live_verdicts(name: str, r: dict, steady: bool) -> list[tuple[str, bool]]:
    """Steady runs (the 10 req/s soak) must also hold their descriptor count flat; under a
    burst the count follows the client's open connections, so what must hold is that none
    is left once the client closed them."""
    label = f"{name} {r['strategy']}/{r['scenario']}"
    fds_first, fds_second = r["fds_median_first_half"], r["fds_median_second_half"]
    fds_ok = r["client_connections_left"] == 0
    if steady:
        fds_ok = fds_ok and fds_second <= fds_first * 1.1 + 5
    return [
        (f"{label}: no balancer-caused errors", r["balancer_errors"] == 0),
        (f"{label}: no request over the deadline in the balancer",
         r["balancer_over_deadline"] == 0),
        (f"{label}: every request counted by the balancer", r["balancer_counted"] == r["sent"]),
        (f"{label}: RSS growth after warm-up <= {RSS_GROWTH_LIMIT_PCT:g}%",
         r["rss_max_growth_pct"] <= RSS_GROWTH_LIMIT_PCT),
        (f"{label}: descriptors {'flat, ' if steady else ''}no connection left open", fds_ok),
        (f"{label}: recorded everything", r["recording"] and r["dropped"] == 0),
    ]


def virtual_line(r: dict) -> str:
    blocks = ", ".join(f"{share:.3f}" for share in r["accepted_share_by_block"])
    return (f"virtual {r['strategy']} on {r['scenario']}: {r['requests']:,} ids = "
            f"{r['virtual_hours']:g} h at 10 req/s in {r['cpu_s']} s CPU; RSS "
            f"{r['rss_before_mb']} -> peak {r['peak_rss_mb']} MB (score list "
            f"{r['score_list_mb']} MB); accepted {r['accepted_share']:.4f}, by 4 h block: "
            f"{blocks}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every duration and count (smoke runs; not the docs)")
    scale = parser.parse_args().scale
    started = time.monotonic()
    results = {
        "scale": scale,
        "burst_tries": burst_on_a_quiet_machine(scale),
        "soak": run_live(**scaled("soak", scale)),
        "virtual": run_all(int(DAY_REQUESTS * scale)),
        "crash": run_crashes(max(2, round(5 * scale))),
        "slowloris": run_slowloris(max(50, int(500 * scale)), max(20.0, 60.0 * scale)),
    }
    results["burst"] = results["burst_tries"][-1:]
    results["wall_s"] = round(time.monotonic() - started)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")

    print(f"\n## Figures (scale {scale:g}, {results['wall_s']} s; saved to {RESULTS})\n")
    verdicts = []
    for r in results["burst_tries"][:-1]:
        print(f"- burst run set aside, the machine was saturated: load max "
              f"{r['load_1min_max']}, client loop lag max {r['client_loop_lag_max_ms']} ms "
              f"(balancer errors {r['balancer_errors']}, client p99 {r['p99_ms']} ms)")
    if results["burst"][0]["client_loop_lag_max_ms"] > SATURATED_LAG_MS:
        verdicts.append((f"burst: a run on a machine quiet enough (client loop lag <= "
                         f"{SATURATED_LAG_MS:g} ms) in {BURST_TRIES} tries", False))
    for name in ("burst", "soak"):
        for r in results[name]:
            print("- " + live_line(name, r))
            verdicts += live_verdicts(name, r, steady=name == "soak")
    for r in results["virtual"]:
        print("- " + virtual_line(r))
    crash = results["crash"]
    print(f"- kill -9: {len(crash['trials'])} crashes at 200 req/s; answered but lost per "
          f"crash: {[t['answered_but_lost'] for t in crash['trials']]} of "
          f"{[t['answered'] for t in crash['trials']]}; oldest lost answer "
          f"{crash['oldest_lost_ms']} ms before the kill; integrity ok, whole requests and "
          f"attempt counts matching: {crash['all_clean']}")
    verdicts += [("kill -9: store clean, nothing partial", crash["all_clean"]),
                 (f"kill -9: loss within one flush interval ({FLUSH_INTERVAL_MS:g} ms)",
                  crash["oldest_lost_ms"] <= FLUSH_INTERVAL_MS)]
    loris = results["slowloris"]
    print(f"- slowloris: {loris['slow_connections']} connections trickling a header for "
          f"{loris['held_s']:g} s: closed by the balancer {loris['closed_by_balancer']}; fds "
          f"{loris['fds_before']} -> {loris['fds_during']}; RSS {loris['rss_mb_before']} -> "
          f"{loris['rss_mb_during']} MB; valid requests meanwhile {loris['valid_statuses']}, "
          f"p99 {loris['valid_p99_ms']} ms")
    verdicts += [("slowloris: valid requests still served",
                  set(loris["valid_statuses"]) <= {"200", "502"}),
                 ("slowloris: slow connections cut off (a header timeout)",
                  loris["closed_by_balancer"] == loris["slow_connections"])]
    print("\n## Verdicts\n")
    for label, ok in verdicts:
        print(f"- {'PASS' if ok else 'FAIL'} {label}")


if __name__ == "__main__":
    main()
