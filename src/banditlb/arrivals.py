"""When ids are sent: the arrival processes every run (simulated or live) can use.

`parse_arrivals("burst:10")` gives an `Arrivals`; `send_times(n, rps, seed)` gives the
open-loop schedule, seconds from the run's start, so the simulator and the live load
generator send one seed's ids at the very same times. A closed loop has no schedule
of its own (a client sends when its previous id is answered): `next_send` says when.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

FORMS = "uniform, poisson, burst:N, closed:N or trace:FILE"
_WHOLE = re.compile(r"[0-9]+")


class ArrivalsError(ValueError):
    """An --arrivals value that is not one of the accepted forms; the message lists them."""


@dataclass(frozen=True)
class Arrivals:
    kind: str
    """"uniform", "poisson", "burst", "closed" or "trace"."""
    size: int = 1
    """Ids per burst (burst:N) or clients (closed:N)."""
    trace: tuple[float, ...] = ()
    """Send times read from the trace file (trace:FILE), sorted, from 0."""
    label: str = "uniform"

    def __str__(self) -> str:
        return self.label

    @property
    def closed(self) -> bool:
        return self.kind == "closed"

    def send_times(self, n: int, rps: float, seed: int = 0) -> list[float]:
        """Open-loop send times of `n` ids at a mean of `rps` (a trace: its first n times).

        For closed:N, the first send of each client (staggered by 1/rps); the rest
        follow answers (`next_send`)."""
        if rps <= 0:
            raise ValueError("rps must be positive")
        gap = 1.0 / rps
        if self.kind == "uniform":
            return [i * gap for i in range(n)]
        if self.kind == "poisson":
            rng = random.Random(f"arrivals-{seed}")
            times, t = [], 0.0
            for _ in range(n):
                times.append(t)
                t += rng.expovariate(rps)
            return times
        if self.kind == "burst":
            return [(i // self.size) * self.size * gap for i in range(n)]
        if self.kind == "closed":
            return [i * gap for i in range(min(n, self.size))]
        return list(self.trace[:n])

    def count(self, n: int) -> int:
        """How many ids a run of `n` requested sends (a trace may hold fewer)."""
        return min(n, len(self.trace)) if self.kind == "trace" else n

    def next_send(self, previous_sent: float, answered: float, rps: float) -> float:
        """closed:N: a client sends its next id once the previous one is answered, and
        not before its previous send + N/rps (so the mean rate is at most rps)."""
        return max(answered, previous_sent + self.size / rps)


def parse_arrivals(spec: str) -> Arrivals:
    """"uniform" | "poisson" | "burst:N" | "closed:N" | "trace:FILE"; ArrivalsError else."""
    text = spec.strip()
    kind, sep, arg = text.partition(":")
    kind = kind.lower()
    if kind in ("uniform", "poisson") and not sep:
        return Arrivals(kind, label=kind)
    if kind in ("burst", "closed") and sep:
        if not _WHOLE.fullmatch(arg.strip()) or int(arg) < 1:
            raise ArrivalsError(f"bad arrivals {spec!r}: {kind}:N needs a whole number "
                                f"N >= 1, e.g. {kind}:10 (accepted: {FORMS})")
        size = int(arg)
        return Arrivals(kind, size, label=f"{kind}:{size}")
    if kind == "trace" and sep and arg.strip():
        return Arrivals("trace", trace=read_trace(Path(arg.strip())), label=text)
    raise ArrivalsError(f"bad arrivals {spec!r}: expected {FORMS}")


UNIFORM = Arrivals("uniform")
"""One id every 1/rps seconds: the default everywhere."""


def read_trace(path: Path) -> tuple[float, ...]:
    """Send times, one per line, in seconds (any origin: shifted to start at 0);
    '#' starts a comment. ArrivalsError for an unreadable file or a bad line."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ArrivalsError(f"cannot read trace {path}: {exc.strerror or exc}") from exc
    times = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise ArrivalsError(f"trace {path} line {number}: {text!r} is not a time in "
                                f"seconds") from None
        if not math.isfinite(value):
            raise ArrivalsError(f"trace {path} line {number}: {text!r} is not finite")
        times.append(value)
    if not times:
        raise ArrivalsError(f"trace {path} holds no send time")
    times.sort()
    return tuple(t - times[0] for t in times)
