"""The balancer's pure parts: upstream specs, the admin token rule, histograms, Retry-After."""

from __future__ import annotations

import pytest

from banditlb.balancer.admin import admin_denial, bearer_ok, is_loopback
from banditlb.balancer.config import (
    ConfigError,
    read_upstreams_file,
    resolve_upstreams,
    split_upstreams,
)
from banditlb.balancer.histogram import Histogram, geometric_bounds
from banditlb.balancer.upstream import parse_retry_after


def test_upstream_ranges_expand_in_order():
    assert split_upstreams("127.0.0.1:4000-4002, localhost:80,,[::1]:9") == [
        "127.0.0.1:4000", "127.0.0.1:4001", "127.0.0.1:4002", "localhost:80", "[::1]:9"]


@pytest.mark.parametrize(("spec", "reason"), [
    ("127.0.0.1", "expected host:port"),
    (":4000", "expected host:port"),
    ("127.0.0.1:http", "not a number"),
    ("127.0.0.1:0", "not a number in 1-65535"),
    ("127.0.0.1:70000", "not a number in 1-65535"),
    ("127.0.0.1:4009-4000", "backwards"),
    ("127.0.0.1:1-2000", "more than 1024 upstreams"),
])
def test_bad_upstream_specs_say_why(spec, reason):
    with pytest.raises(ConfigError, match=reason):
        split_upstreams(spec)


def test_resolving_checks_hosts_and_duplicates():
    (up,) = resolve_upstreams(["localhost:4000"])
    assert up.name == "localhost:4000" and up.port == 4000 and up.ip in ("127.0.0.1", "::1")
    with pytest.raises(ConfigError, match="does not resolve"):
        resolve_upstreams(["no-such-host.invalid:4000"])
    with pytest.raises(ConfigError, match="listed twice"):
        resolve_upstreams(["127.0.0.1:4000", "127.0.0.1:4000"])
    with pytest.raises(ConfigError, match="no upstreams"):
        resolve_upstreams([])


def test_upstreams_file_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "upstreams.txt"
    path.write_text("# fleet T1\n127.0.0.1:4000-4001\n\n127.0.0.1:5000  # one more\n")
    assert split_upstreams(read_upstreams_file(path)) == [
        "127.0.0.1:4000", "127.0.0.1:4001", "127.0.0.1:5000"]
    with pytest.raises(ConfigError, match="cannot read upstreams file"):
        read_upstreams_file(tmp_path / "missing.txt")


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.10", False),
    ("example.org", False), ("", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_admin_token_rule():
    assert admin_denial("127.0.0.1", None, None) is None
    assert admin_denial("127.0.0.1", "s3cret", None) is None
    assert "disabled" in admin_denial("0.0.0.0", None, "Bearer anything")
    assert "Authorization: Bearer" in admin_denial("0.0.0.0", "s3cret", None)
    assert admin_denial("0.0.0.0", "s3cret", "Bearer wrong") is not None
    assert admin_denial("0.0.0.0", "s3cret", "Basic s3cret") is not None
    assert admin_denial("0.0.0.0", "s3cret", "Bearer s3cret") is None
    assert bearer_ok("bearer  s3cret ", "s3cret")
    assert not bearer_ok("Bearer s3cre", "s3cret")


def test_histogram_quantiles_stay_within_the_bucket():
    h = Histogram(geometric_bounds(0.05, 20_000.0, 1.2))
    assert h.quantile(0.5) is None
    for value in [1.0] * 98 + [100.0, 100.0]:
        h.add(value)
    assert 1.0 / 1.2 <= h.quantile(0.5) <= 1.0 * 1.2
    assert 100.0 / 1.2 <= h.quantile(0.995) <= 100.0 * 1.2
    assert h.total == 100 and sum(h.counts) == 100
    h.add(1e9)  # beyond the last bound: counted, reported as the last bound
    assert h.counts[-1] == 1 and h.quantile(1.0) == h.bounds[-1]


def test_retry_after_seconds_and_dates():
    assert parse_retry_after(b"2") == 2.0
    assert parse_retry_after(b" 0.5 ") == 0.5
    assert parse_retry_after(b"-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after(b"soon") is None
    date = b"Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after(date, now=1445412480.0) == pytest.approx(10.0)


def test_the_balancer_does_not_load_the_simulator_to_serve_requests():
    import subprocess
    import sys

    probe = ("import sys, banditlb.balancer.app, banditlb.commands.lb; "
             "print(sorted(m for m in sys.modules if m.startswith('banditlb.sim')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
