"""The grid's own part of docs/benchmarks.md, between two markers.

Two writers share that file: bench/peers/report.py writes everything else and keeps this
block as it finds it (`keep_section`); bench/grid/report.py replaces only the block
(`replace_section`). Either can run first without losing the other's part.
"""

from __future__ import annotations

START = "<!-- robustness-grid:start -->"
END = "<!-- robustness-grid:end -->"


class SectionError(ValueError):
    """The doc holds one marker without the other, or them in the wrong order."""


def _span(text: str) -> tuple[int, int] | None:
    """(start, end) offsets of the block, markers included; None when there is none."""
    start, end = text.find(START), text.find(END)
    if start < 0 and end < 0:
        return None
    if start < 0 or end < start:
        raise SectionError(f"the doc holds {END!r} without {START!r} before it: fix the "
                           f"markers by hand (the grid section sits between them)")
    if text.find(START, start + 1) >= 0:
        raise SectionError(f"the doc holds {START!r} twice: keep one grid section")
    return start, end + len(END)


def extract_section(text: str) -> str | None:
    """The block with its markers, or None."""
    span = _span(text)
    return None if span is None else text[span[0]:span[1]]


def replace_section(text: str, body: str) -> str:
    """`text` with its block's body replaced by `body` (the block appended if absent)."""
    block = f"{START}\n{body.strip()}\n{END}"
    span = _span(text)
    if span is None:
        return f"{text.rstrip()}\n\n{block}\n" if text.strip() else f"{block}\n"
    return text[:span[0]] + block + text[span[1]:]


def keep_section(old: str, new: str) -> str:
    """`new` (a doc written without the block) with the block of `old` at its end, if any."""
    block = extract_section(old)
    if block is None or extract_section(new) is not None:
        return new
    return f"{new.rstrip()}\n\n{block}\n"
