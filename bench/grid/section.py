"""The parts of docs/benchmarks.md that other benchmarks write, each between two markers.

Several writers share that file: bench/peers/report.py writes everything else and keeps
every marked block as it finds it (`keep_section`); bench/grid/report.py (the robustness
grid) and bench/replicas.py (replicas sharing through Redis) each replace only their
own block (`replace_section`). Any of them can run first without losing the others'.
"""

from __future__ import annotations

GRID, REPLICAS = "robustness-grid", "replicas"
NAMES = (GRID, REPLICAS)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


START, END = markers(GRID)


class SectionError(ValueError):
    """The doc holds one marker without the other, or them in the wrong order."""


def _span(text: str, name: str) -> tuple[int, int] | None:
    """(start, end) offsets of the block, markers included; None when there is none."""
    first, last = markers(name)
    start, end = text.find(first), text.find(last)
    if start < 0 and end < 0:
        return None
    if start < 0 or end < start:
        raise SectionError(f"the doc holds {last!r} without {first!r} before it: fix the "
                           f"markers by hand (the {name} section sits between them)")
    if text.find(first, start + 1) >= 0:
        raise SectionError(f"the doc holds {first!r} twice: keep one {name} section")
    return start, end + len(last)


def extract_section(text: str, name: str = GRID) -> str | None:
    """The block with its markers, or None."""
    span = _span(text, name)
    return None if span is None else text[span[0]:span[1]]


def replace_section(text: str, body: str, name: str = GRID) -> str:
    """`text` with its block's body replaced by `body` (the block appended if absent)."""
    first, last = markers(name)
    block = f"{first}\n{body.strip()}\n{last}"
    span = _span(text, name)
    if span is None:
        return f"{text.rstrip()}\n\n{block}\n" if text.strip() else f"{block}\n"
    return text[:span[0]] + block + text[span[1]:]


def keep_section(old: str, new: str) -> str:
    """`new` (a doc written without the marked blocks) with each block of `old` that it
    lacks at its end, in the order of NAMES."""
    for name in NAMES:
        block = extract_section(old, name)
        if block is not None and extract_section(new, name) is None:
            new = f"{new.rstrip()}\n\n{block}\n"
    return new
