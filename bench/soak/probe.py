"""What a process holds, read from /proc: resident memory, open descriptors, CPU time.

The long runs sample the balancer once a second and judge growth after warm-up, so a
leak shows as a trend rather than hiding in start-up allocations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from statistics import median


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    """Seconds since the run started."""
    rss_kb: int
    fds: int
    cpu_s: float


def sample(pid: int, t: float) -> Sample:
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return Sample(t, rss, len(os.listdir(f"/proc/{pid}/fd")), cpu)


def growth(samples: list[Sample], warmup_s: float) -> dict:
    """RSS and descriptors after warm-up: first value, last, the extremes, growth in %, and
    the median descriptor count of each half (pooled connections come and go; a leak
    shows as a second half above the first)."""
    steady = [s for s in samples if s.t >= warmup_s] or samples[-1:]
    first, last = steady[0], steady[-1]
    half = len(steady) // 2
    return {
        "rss_mb_after_warmup": round(first.rss_kb / 1024, 1),
        "rss_mb_end": round(last.rss_kb / 1024, 1),
        "rss_mb_max": round(max(s.rss_kb for s in steady) / 1024, 1),
        "rss_growth_pct": round(100 * (last.rss_kb - first.rss_kb) / first.rss_kb, 1),
        "rss_max_growth_pct": round(100 * (max(s.rss_kb for s in steady) - first.rss_kb)
                                    / first.rss_kb, 1),
        "fds_after_warmup": first.fds,
        "fds_min": min(s.fds for s in steady),
        "fds_max": max(s.fds for s in steady),
        "fds_end": last.fds,
        "fds_median_first_half": median(s.fds for s in steady[:half] or steady),
        "fds_median_second_half": median(s.fds for s in steady[half:]),
        "cpu_s": round(last.cpu_s - samples[0].cpu_s, 1),
        "rss_mb_every_10s": [round(s.rss_kb / 1024, 1) for s in samples[::10]],
    }
