"""The throughput section of docs/benchmarks.md, from results/throughput.json."""

from __future__ import annotations

TARGET_RATIO = 0.25
"""banditlb's max req/s on one worker, as a fraction of nginx's (issue #6)."""
PROXIES = ("banditlb", "nginx", "haproxy")


def _run(doc: dict, name: str) -> dict | None:
    return next((r for r in doc["runs"] if r["name"] == name), None)


def _passed(run: dict) -> list[dict]:
    return [s for s in run["steps"] if s["passed"]]


def common_rate(doc: dict) -> float | None:
    """The highest rate every proxy passed: where their CPU per request compares like
    with like (per-request cost falls as the rate rises and batching kicks in)."""
    runs = [r for name in PROXIES if (r := _run(doc, name)) is not None]
    shared = set.intersection(*({s["target_rps"] for s in _passed(r)} for r in runs)) \
        if runs else set()
    return max(shared) if shared else None


def _cost_at(run: dict, rate: float | None) -> float | None:
    """CPU ms per 1,000 requests of the proxy at `rate` (a passing step), or None."""
    return next((s["proxy_ms_per_1k"] for s in _passed(run) if s["target_rps"] == rate), None)


def ratio_lines(doc: dict) -> list[str]:
    """banditlb against each peer: measured max rates, and CPU per request at the common
    rate (what each would reach on a core of its own). When the peer's own CPU was not
    what ran out, the measured ratio is only an upper bound and the CPU ratio decides."""
    ours = _run(doc, "banditlb")
    if ours is None or not ours["max_rps"]:
        return ["- banditlb has no passing step in this run."]
    rate = common_rate(doc)
    lines = []
    for name in PROXIES[1:]:
        peer = _run(doc, name)
        if peer is None or not peer["max_rps"]:
            continue
        measured = ours["max_rps"] / peer["max_rps"]
        own_limit = peer["limit"] == "proxy CPU"
        line = f"- banditlb / {name}, max req/s: {ours['max_rps']:g} / {peer['max_rps']:g} " \
               f"= **{measured:.2f}x**"
        if not own_limit:
            line += f" (upper bound: {name} stopped on \"{peer['limit']}\", not its own CPU)"
        per_core = []
        ours_cost, peer_cost = _cost_at(ours, rate), _cost_at(peer, rate)
        if ours_cost and peer_cost:
            per_core.append(peer_cost / ours_cost)
            line += (f"; CPU per 1,000 requests at {rate:g} req/s: {ours_cost:.0f} ms vs "
                     f"{peer_cost:.0f} ms = **{per_core[-1]:.2f}x** per core")
        if ours["proxy_ms_per_1k"] and peer["proxy_ms_per_1k"]:
            per_core.append(peer["proxy_ms_per_1k"] / ours["proxy_ms_per_1k"])
            line += (f"; at each one's max rate: {ours['proxy_ms_per_1k']:.0f} ms vs "
                     f"{peer['proxy_ms_per_1k']:.0f} ms = **{per_core[-1]:.2f}x**")
        if name == "nginx":
            ratio, basis = (measured, "measured max rates") if own_limit or not per_core \
                else (min(per_core), "the lower CPU-per-request ratio")
            verdict = "met" if ratio >= TARGET_RATIO else "**missed**"
            line += f". Target >= {TARGET_RATIO:g}x nginx ({basis}): {verdict}."
        lines.append(line)
    return lines


def throughput_section(doc: dict | None) -> str:
    header = "## Throughput: banditlb vs nginx vs HAProxy in front of T1\n"
    if doc is None:
        return header + "\nNo throughput results saved: run " \
                        "`.venv/bin/python -m bench.peers.throughput`.\n"
    direct = _run(doc, "direct")
    rate = common_rate(doc)
    rows = ["| target | max req/s | what ran out | p50 ms | p99 ms | added p50 ms | "
            f"added p99 ms | CPU ms per 1k req at max | at {rate or '-'} req/s |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for run in doc["runs"]:
        lat = run["latency"]
        added = ("-", "-") if run is direct or direct is None else (
            f"{lat['p50_ms'] - direct['latency']['p50_ms']:+.2f}",
            f"{lat['p99_ms'] - direct['latency']['p99_ms']:+.2f}")
        at_max = f"{run['proxy_ms_per_1k']:.0f}" if run["proxy_ms_per_1k"] else "-"
        common = _cost_at(run, rate) if run is not direct else None
        rows.append(f"| {run['name']} | {run['max_rps']:g} | {run['limit']} | "
                    f"{lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | {added[0]} | {added[1]} | "
                    f"{at_max} | {f'{common:.0f}' if common else '-'} |")
    steps = ["| target | rate asked | answered/s | p50 ms | p99 ms | errors % | 200s % | "
             "proxy CPU | fleet CPU | generator CPU | pass |", "|---|" + "---:|" * 9 + "---|"]
    for run in doc["runs"]:
        for s in sorted(run["steps"], key=lambda s: s["target_rps"]):
            steps.append(f"| {run['name']} | {s['target_rps']:g} | {s['achieved_rps']:.0f} | "
                         f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['error_pct']:.2f} | "
                         f"{s['ok_pct']:.1f} | {s['proxy_cpu']:.2f} | {s['fleet_cpu']:.2f} | "
                         f"{s['generator_cpu']:.2f} | {'yes' if s['passed'] else 'no'} |")
    pin = doc["pinning"]
    load = ", ".join(f"{x:.1f}" for x in doc["load_average"])
    return f"""{header}
```
make bench-peers   # or: .venv/bin/python -m bench.peers.throughput (then --from-results)
```

One run, {doc['date']}, {doc['cores']} cores (load average at the end: {load}).
Pinning with `taskset`: the proxies on core {pin['proxy']}, all running, taking turns at
each rate (an idle proxy costs nothing), so that whatever else the shared machine does
falls on all of them alike; the load generator and the fleet share core
{pin['generator']} (there are only two). Other work on the machine is not pinned and may
run on either core. One worker each: `banditlb lb
--strategy auto` (one uvicorn worker, recording attempts to SQLite), nginx
`worker_processes 1`, HAProxy `nbthread 1`, configured as in the score benchmark except
that nginx's passive ejection is off (`max_fails=0`): at 1,000+ req/s T1's failures
would put every server out and nginx would answer 502 without proxying anything.

The generator (bench/peers/openloop.py) is open loop: request i is due at i/rate and
its latency counts from that due time, so stalls show up instead of slowing the
generator down. Added latency: {doc['latency_rate']:g} req/s for {doc['latency_s']:g} s,
against direct calls to the best T1 server (number {doc['direct_server']}, the one a good
balancer mostly uses); a proxy's figure includes its retries after upstream failures.
That p99 rests on the 10 slowest of 1,000 requests, so one stall of the shared machine
moves it by a hundred milliseconds: read a negative or very large added p99 as noise.
Max req/s: steps of {doc['step_s']:g} s at rising rates; a step passes when requests
without an answer stay <= {doc['max_error_pct']:g}%, answers keep up with at least
{doc['min_keep_up']:.0%} of the rate, p99 <= {doc['p99_bound_ms']:g} ms and at least
{doc['min_ok_pct']:g}% of the answers are 200. A failing step is tried again,
{doc['step_tries']} tries in all, before it counts (other work on the machine stalls a
step now and then); the tables show the try that counted. "What ran out" looks at the
first failing rate: the proxy's core (>= {doc['busy_core']:g} of a core busy), the rig's
core (fleet + generator), or neither (a stall, or a limit that is not CPU). CPU columns
are cores busy during the step; "CPU ms per 1k req" is the proxy's CPU time per 1,000
answered requests, the figure that says what each proxy would reach on a core of its own.

{chr(10).join(rows)}

{chr(10).join(ratio_lines(doc))}

Every counted step:

{chr(10).join(steps)}

**More workers.** One banditlb worker learns from every request it routes. Several
workers (processes, to use more cores) would each learn from a fraction of the
traffic and keep separate views of the upstreams' rate limits, so each would hit 429s
the others already learned about. Scaling out needs the learning state shared: the
per-server posteriors (successes/failures) and the availability estimates (token
rates, block-until times) in shared memory or a small state server, updated with
cheap atomic increments and read on every decision; the decision itself stays local.
Until then, run one worker per balancer and scale by sharding ids across balancers.
"""
