"""The arrival processes: each form's defining property, and bad specs refused clearly."""

from __future__ import annotations

import statistics

import pytest

from banditlb.arrivals import FORMS, UNIFORM, ArrivalsError, parse_arrivals


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_uniform_sends_one_id_every_1_over_rps():
    times = parse_arrivals("uniform").send_times(50, rps=10)
    assert times[0] == 0.0 and len(times) == 50
    assert all(gap == pytest.approx(0.1) for gap in gaps(times))
    assert UNIFORM.send_times(50, 10) == times and str(UNIFORM) == "uniform"


def test_poisson_is_seeded_and_keeps_the_mean_rate():
    poisson = parse_arrivals("poisson")
    times = poisson.send_times(4000, rps=10, seed=1)
    assert times == poisson.send_times(4000, rps=10, seed=1)
    assert times != poisson.send_times(4000, rps=10, seed=2)
    assert times == sorted(times) and times[0] == 0.0
    spacing = gaps(times)
    # exponential gaps: mean 1/rps and a standard deviation as large as the mean
    assert statistics.fmean(spacing) == pytest.approx(0.1, rel=0.05)
    assert statistics.stdev(spacing) == pytest.approx(0.1, rel=0.1)
    assert len(times) / times[-1] == pytest.approx(10, rel=0.05)


def test_burst_sends_groups_of_n_at_once_at_the_same_mean_rate():
    times = parse_arrivals("burst:10").send_times(95, rps=10)
    groups: dict[float, int] = {}
    for t in times:
        groups[t] = groups.get(t, 0) + 1
    assert list(groups.values()) == [10] * 9 + [5]
    assert all(gap == pytest.approx(1.0) for gap in gaps(list(groups)))  # 10 ids / 10 req/s
    assert parse_arrivals("burst:1").send_times(5, 10) == UNIFORM.send_times(5, 10)


def test_closed_loop_staggers_its_clients_then_waits_for_answers_and_the_rate():
    closed = parse_arrivals("closed:4")
    assert closed.closed and not parse_arrivals("burst:4").closed
    assert closed.send_times(100, rps=10) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert closed.send_times(2, rps=10) == pytest.approx([0.0, 0.1])
    # a fast answer waits for previous send + N/rps; a slow one sends right away
    assert closed.next_send(previous_sent=1.0, answered=1.05, rps=10) == pytest.approx(1.4)
    assert closed.next_send(previous_sent=1.0, answered=2.5, rps=10) == 2.5
    assert closed.count(100) == 100


def test_trace_reads_times_shifts_them_to_zero_and_caps_the_count(tmp_path):
    trace = tmp_path / "sends.txt"
    trace.write_text("# captured at the gateway\n100.5\n\n100.0  # first\n101.25\n")
    arrivals = parse_arrivals(f"trace:{trace}")
    assert arrivals.send_times(10, rps=10) == [0.0, 0.5, 1.25]
    assert arrivals.send_times(2, rps=10) == [0.0, 0.5]
    assert arrivals.count(10) == 3 and arrivals.count(2) == 2


@pytest.mark.parametrize(("text", "error"), [
    ("0.0\n0.1\nsoon\n", "line 3: 'soon' is not a time in seconds"),
    ("0.0\n\n# none\ninf\n", "line 4: 'inf' is not finite"),
    ("# only a comment\n\n", "holds no send time"),
])
def test_trace_errors_name_the_line(tmp_path, text, error):
    trace = tmp_path / "bad.txt"
    trace.write_text(text)
    with pytest.raises(ArrivalsError, match=error):
        parse_arrivals(f"trace:{trace}")


def test_missing_trace_file_is_an_arrivals_error(tmp_path):
    with pytest.raises(ArrivalsError, match="cannot read trace"):
        parse_arrivals(f"trace:{tmp_path / 'nowhere.txt'}")


@pytest.mark.parametrize("spec", ["", "zigzag", "uniform:3", "poisson:2", "burst", "burst:",
                                  "burst:0", "burst:-2", "burst:2.5", "closed:x", "closed:²",
                                  "trace:", "trace"])
def test_bad_specs_are_refused_with_the_accepted_forms(spec):
    with pytest.raises(ArrivalsError) as caught:
        parse_arrivals(spec)
    assert FORMS in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_labels_are_normalised():
    assert parse_arrivals(" Burst:10 ").label == "burst:10"
    assert parse_arrivals("CLOSED:3").label == "closed:3"
    assert parse_arrivals("Poisson").label == "poisson"


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError, match="rps"):
        UNIFORM.send_times(3, rps=0)
