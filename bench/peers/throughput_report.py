"""The throughput section of docs/benchmarks.md, from results/throughput.json."""

from __future__ import annotations

TARGET_RATIO = 0.25
"""banditlb's max req/s on one worker, as a fraction of nginx's (issue #6)."""


def _run(doc: dict, name: str) -> dict | None:
    return next((r for r in doc["runs"] if r["name"] == name), None)


def ratio_lines(doc: dict) -> list[str]:
    """banditlb against each peer: measured max rates and, where CPU was recorded, the
    ratio of CPU cost per request (what each would reach with a core to itself)."""
    ours = _run(doc, "banditlb")
    if ours is None or not ours["max_rps"]:
        return ["- banditlb has no passing step in this run."]
    lines = []
    for name in ("nginx", "haproxy"):
        peer = _run(doc, name)
        if peer is None or not peer["max_rps"]:
            continue
        ratio = ours["max_rps"] / peer["max_rps"]
        limited = " (the peer was still passing at the rig's limit: its true maximum is " \
                  "higher, so this ratio is an upper bound)" if peer["rig_limited"] else ""
        line = f"- banditlb / {name}, max req/s: {ours['max_rps']:g} / {peer['max_rps']:g} " \
               f"= **{ratio:.2f}x**{limited}"
        if ours["proxy_cpu_per_1k"] and peer["proxy_cpu_per_1k"]:
            cpu_ratio = peer["proxy_cpu_per_1k"] / ours["proxy_cpu_per_1k"]
            line += (f"; CPU per 1,000 requests {ours['proxy_cpu_per_1k'] * 1000:.0f} ms vs "
                     f"{peer['proxy_cpu_per_1k'] * 1000:.0f} ms = **{cpu_ratio:.2f}x** "
                     f"(per-core capacity ratio)")
        if name == "nginx":
            verdict = "met" if min(ratio, cpu_ratio if ours["proxy_cpu_per_1k"] and
                                   peer["proxy_cpu_per_1k"] else ratio) >= TARGET_RATIO \
                else "**missed**"
            line += f". Target >= {TARGET_RATIO:g}x nginx: {verdict}."
        lines.append(line)
    return lines


def throughput_section(doc: dict | None) -> str:
    header = "## Throughput: banditlb vs nginx vs HAProxy in front of T1\n"
    if doc is None:
        return header + "\nNo throughput results saved: run " \
                        "`.venv/bin/python -m bench.peers.throughput`.\n"
    direct = _run(doc, "direct")
    rows = ["| target | max req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | "
            "proxy CPU at max | CPU ms per 1k req |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run in doc["runs"]:
        lat = run["latency"]
        added = ("-", "-") if run is direct or direct is None else (
            f"{lat['p50_ms'] - direct['latency']['p50_ms']:+.2f}",
            f"{lat['p99_ms'] - direct['latency']['p99_ms']:+.2f}")
        best = max((s for s in run["steps"] if s["passed"]), key=lambda s: s["target_rps"],
                   default=None)
        cpu = f"{best['proxy_cpu']:.2f} cores" if best and run["proxy_cpu_per_1k"] else "-"
        per_1k = f"{run['proxy_cpu_per_1k'] * 1000:.0f}" if run["proxy_cpu_per_1k"] else "-"
        max_rps = f"{run['max_rps']:g}" + (" (rig limit)" if run["rig_limited"] else "")
        rows.append(f"| {run['name']} | {max_rps} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | "
                    f"{added[0]} | {added[1]} | {cpu} | {per_1k} |")
    steps = ["| target | rate asked | answered/s | p50 ms | p99 ms | errors % | proxy CPU | "
             "fleet CPU | generator CPU | pass |", "|---|" + "---:|" * 8 + "---|"]
    for run in doc["runs"]:
        for s in sorted(run["steps"], key=lambda s: s["target_rps"]):
            steps.append(f"| {run['name']} | {s['target_rps']:g} | {s['achieved_rps']:.0f} | "
                         f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['error_pct']:.2f} | "
                         f"{s['proxy_cpu']:.2f} | {s['fleet_cpu']:.2f} | "
                         f"{s['generator_cpu']:.2f} | {'yes' if s['passed'] else 'no'} |")
    pin = doc["pinning"]
    load = ", ".join(f"{x:.1f}" for x in doc["load_average"])
    return f"""{header}
```
make bench-peers   # or: nice .venv/bin/python -m bench.peers.throughput
```

One run, {doc['date']}, {doc['cores']} cores (load average before the run: {load}).
Pinning with `taskset`: the proxy under test alone on core {pin['proxy']}; the load
generator and the fleet share core {pin['generator']} (only two cores). One worker
each: `banditlb lb --strategy auto` (one uvicorn worker, recording to SQLite),
nginx `worker_processes 1`, HAProxy `nbthread 1`, configured as in the score
benchmark. The generator (bench/peers/openloop.py) is open loop: request i is due at
i/rate and its latency counts from that due time, so stalls show up instead of
slowing the generator down. Added latency: {doc['latency_rate']:g} req/s for
{doc['latency_s']:g} s, against direct calls to the best T1 server (number
{doc['direct_server']}, the one a good balancer mostly uses); a proxy's figure includes
its retries after upstream failures. Max req/s: steps of {doc['step_s']:g} s at rising
rates; a step passes when errors stay <= {doc['max_error_pct']:g}%, answers keep up with
at least {doc['min_keep_up']:.0%} of the rate and p99 <= {doc['p99_bound_ms']:g} ms; the
maximum is the highest passing rate ("rig limit": the peer never failed, the generator
and fleet on one core ran out first).

{chr(10).join(rows)}

{chr(10).join(ratio_lines(doc))}

Every step:

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
