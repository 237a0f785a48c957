"""Rate-limit fields as real APIs send them: each style written and read back, every bad
value refused and named, and the fleet's answers read by the balancer's client."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from email.utils import formatdate

import pytest

from banditlb.balancer.config import resolve_upstreams
from banditlb.balancer.upstream import UpstreamClient
from banditlb.fleet.http import HttpProtocol
from banditlb.fleet.runner import start_fleet_thread
from banditlb.fleet.scenario import ServerSpec, parse_scenario
from banditlb.fleet.server import LiveScenario, server_handler
from banditlb.outcomes import Outcome
from banditlb.quota import Quota
from banditlb.ratelimit import (
    EMPTY,
    MAX_RESET_S,
    NAMES,
    STYLES,
    Limits,
    format_duration,
    format_headers,
    parse_headers,
    read_retry_after,
)

NOW = 1_767_225_600.25
"""2026-01-01 00:00:00.25 UTC: a wall clock given, never read."""

QUOTAS = [Quota(10, 3, 12.3), Quota(100, 0, 59.999), Quota(5, 5, 0.0), Quota(60, 1, 0.25)]
QUOTA_STYLES = ["x-ratelimit", "x-ratelimit-epoch", "openai", "ietf"]


def parse(*headers: tuple[str, str], now: float = NOW) -> Limits:
    return parse_headers(list(headers), now)


# round trips

@pytest.mark.parametrize("style", QUOTA_STYLES)
@pytest.mark.parametrize("quota", QUOTAS)
def test_every_style_gives_the_quota_back_within_rounding(style, quota):
    limits = parse_headers(format_headers(style, quota, None, NOW), NOW)
    assert limits.problems == () and limits.retry_after_s is None
    got = limits.quota
    assert (got.limit, got.remaining) == (quota.limit, quota.remaining)
    # resets are rounded up (to the second; the millisecond in a duration), never down
    slack = 1e-3 if style == "openai" else 1.0
    assert quota.reset_s <= got.reset_s <= quota.reset_s + slack + 1e-9


@pytest.mark.parametrize("style", STYLES[1:])
@pytest.mark.parametrize("retry_after", [0.0, 1.0, 2.4, 30.0])
def test_every_style_but_none_says_when_to_come_back_on_a_429(style, retry_after):
    headers = format_headers(style, Quota(10, 0, 7.5), retry_after, NOW)
    limits = parse_headers(headers, NOW)
    assert [name for name, _ in headers].count("Retry-After") == 1
    assert limits.problems == ()
    assert retry_after <= limits.retry_after_s <= retry_after + 1.0
    if style.startswith("retry-after"):
        assert limits.quota is None
    else:
        assert limits.quota.remaining == 0


def test_the_forms_on_the_wire():
    quota = Quota(100, 50, 29.2)
    assert format_headers("none", quota, 3.0, NOW) == []
    assert format_headers("retry-after", quota, 2.2, NOW) == [("Retry-After", "3")]
    assert format_headers("retry-after-date", quota, 2.0, NOW) == [
        ("Retry-After", "Thu, 01 Jan 2026 00:00:03 GMT")]
    assert format_headers("x-ratelimit", quota, None, NOW) == [
        ("X-RateLimit-Limit", "100"), ("X-RateLimit-Remaining", "50"),
        ("X-RateLimit-Reset", "30")]
    assert format_headers("x-ratelimit-epoch", quota, None, NOW)[-1] == \
        ("X-RateLimit-Reset", str(math.ceil(NOW + 29.2)))
    assert format_headers("openai", quota, None, NOW) == [
        ("x-ratelimit-limit-requests", "100"), ("x-ratelimit-remaining-requests", "50"),
        ("x-ratelimit-reset-requests", "29.2s")]
    assert format_headers("ietf", quota, 1.0, NOW) == [
        ("Retry-After", "1"), ("RateLimit-Policy", '"default";q=100'),
        ("RateLimit", '"default";r=50;t=30')]
    assert format_headers("ietf", Quota(), None, NOW) == []
    with pytest.raises(ValueError, match="unknown rate-limit header style"):
        format_headers("github", quota, None, NOW)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0s"), (0.25, "250ms"), (0.0171, "18ms"), (1.0, "1s"), (1.5, "1.5s"),
    (17.28, "17.28s"), (360.0, "6m0s"), (3723.5, "1h2m3.5s"), (3600.0, "1h0m0s")])
def test_durations_are_written_as_llm_apis_write_them_and_read_back(seconds, text):
    assert format_duration(seconds) == text
    read = parse(("x-ratelimit-reset-requests", text)).quota.reset_s
    assert read == pytest.approx(max(seconds, math.ceil(seconds * 1000) / 1000))


def test_the_ietf_draft_examples_read_as_the_tightest_policy():
    limits = parse(("RateLimit-Policy", '"burst";q=100;w=60,"daily";q=1000;w=86400'),
                   ("RateLimit", '"burst";r=50;t=30'),
                   ("RateLimit", '"daily";r=20;t=3600'))  # a list split over two fields
    assert limits == Limits(Quota(1000, 20, 3600.0))
    keyed = parse(("RateLimit-Policy", '"peruser";q=100;w=60;pk=:cHsdsRa894==:'),
                  ("RateLimit", '"peruser";r=99;pk=:cHsdsRa894==:'))
    assert keyed == Limits(Quota(100, 99, None))
    assert parse(("RateLimit", '"default";r=50;t=30')) == Limits(Quota(None, 50, 30.0))
    assert parse(("RateLimit-Policy", "default;q=10")) == Limits(Quota(10, None, None))
    assert parse(("RateLimit", 'default;r=4;t=2')).quota == Quota(None, 4, 2.0)  # a token


def test_the_older_ietf_trio_and_several_styles_at_once():
    older = parse(("RateLimit-Limit", "100, 100;w=60"), ("RateLimit-Remaining", "7"),
                  ("RateLimit-Reset", "12"))
    assert older == Limits(Quota(100, 7, 12.0))
    both = parse(("X-RateLimit-Remaining", "40"), ("X-RateLimit-Limit", "50"),
                 ("RateLimit", '"default";r=3;t=9'), ("x-ratelimit-remaining-requests", "8"))
    assert both == Limits(Quota(None, 3, 9.0))  # the least remaining wins, no problem


# what the parser refuses

BAD = [
    # (headers, the field named, what is kept instead)
    ([("X-RateLimit-Remaining", "-1"), ("X-RateLimit-Limit", "10")],
     "x-ratelimit-remaining", Quota(10, None, None)),
    ([("X-RateLimit-Remaining", "NaN")], "x-ratelimit-remaining", None),
    ([("X-RateLimit-Limit", "abc"), ("X-RateLimit-Remaining", "4")],
     "x-ratelimit-limit", Quota(None, 4, None)),
    ([("X-RateLimit-Remaining", "inf")], "x-ratelimit-remaining", None),
    ([("X-RateLimit-Remaining", "1e3")], "x-ratelimit-remaining", None),
    ([("X-RateLimit-Limit", "10"), ("X-RateLimit-Remaining", "11")],
     "x-ratelimit-remaining", Quota(10, 10, None)),  # remaining > limit: capped
    ([("X-RateLimit-Reset", "-5")], "x-ratelimit-reset", None),
    ([("X-RateLimit-Reset", "500000")], "x-ratelimit-reset",
     Quota(None, None, MAX_RESET_S)),  # huge: capped
    ([("X-RateLimit-Reset", str(30 * 86_400))], "x-ratelimit-reset",
     Quota(None, None, MAX_RESET_S)),  # an epoch from 1970 (Jan 31): capped
    ([("X-RateLimit-Reset", str(int(NOW) - 3600))], "x-ratelimit-reset", None),  # past
    ([("X-RateLimit-Reset", str(int(NOW) + 3 * 86_400))], "x-ratelimit-reset",
     Quota(None, None, MAX_RESET_S)),  # an epoch days away: capped
    ([("RateLimit-Reset", str(int(NOW) + 30))], "ratelimit-reset",
     Quota(None, None, MAX_RESET_S)),  # seconds that look like an epoch: capped
    ([("x-ratelimit-reset-requests", "soon")], "x-ratelimit-reset-requests", None),
    ([("x-ratelimit-reset-requests", "-1s")], "x-ratelimit-reset-requests", None),
    ([("x-ratelimit-reset-requests", "30h")], "x-ratelimit-reset-requests",
     Quota(None, None, MAX_RESET_S)),
    ([("x-ratelimit-limit-requests", "10"), ("x-ratelimit-remaining-requests", "99")],
     "x-ratelimit-remaining-requests", Quota(10, 10, None)),
    ([("RateLimit", '"default";r=-1;t=5')], "ratelimit", None),
    ([("RateLimit", '"default";t=5')], "ratelimit", None),  # r is required
    ([("RateLimit", '"default";r=abc')], "ratelimit", None),
    ([("RateLimit", '"default";r=5;t=9999999')], "ratelimit", Quota(None, 5, MAX_RESET_S)),
    ([("RateLimit-Policy", '"default";q=10'), ("RateLimit", '"default";r=50')],
     "ratelimit", Quota(10, 10, None)),
    ([("X-RateLimit-Remaining", "5"), ("X-RateLimit-Remaining", "3")],
     "x-ratelimit-remaining", Quota(None, 3, None)),  # conflicting: the cautious one
    ([("X-RateLimit-Reset", "5"), ("x-ratelimit-reset", "9")],
     "x-ratelimit-reset", Quota(None, None, 9.0)),
    ([("RateLimit", '"default";r=5;t=1, "default";r=2;t=3')],
     "ratelimit", Quota(None, 2, 3.0)),
]


@pytest.mark.parametrize(("headers", "field", "kept"), BAD)
def test_a_bad_quota_field_is_ignored_or_capped_and_named(headers, field, kept):
    limits = parse_headers(headers, NOW)
    assert limits.problems == (field,)
    assert limits.quota == kept


BAD_RETRY_AFTER = [
    ("-3", None), ("NaN", None), ("abc", None), ("1e9", None),
    ("Thu, 01 Jan 1970 00:00:00 GMT", None),  # epoch 0 as an HTTP-date
    (formatdate(NOW - 3600, usegmt=True), None),  # an HTTP-date an hour ago
    ("500000", MAX_RESET_S),
    (str(int(NOW) + 30), MAX_RESET_S),  # an epoch where seconds belong
    (formatdate(NOW + 3 * 86_400, usegmt=True), MAX_RESET_S),
]


@pytest.mark.parametrize(("value", "kept"), BAD_RETRY_AFTER)
def test_a_bad_retry_after_is_ignored_or_capped_and_named(value, kept):
    limits = parse(("Retry-After", value))
    assert limits == Limits(None, kept, ("retry-after",))


def test_whole_second_rounding_and_a_little_skew_are_not_problems():
    assert parse(("Retry-After", formatdate(NOW - 1, usegmt=True))) == Limits(None, 0.0)
    assert parse(("X-RateLimit-Reset", str(int(NOW)))) == Limits(Quota(None, None, 0.0))
    assert parse(("X-RateLimit-Reset", "0")) == Limits(Quota(None, None, 0.0))
    assert parse(("X-RateLimit-Remaining", "3"), ("X-RateLimit-Remaining", "3")) == \
        Limits(Quota(None, 3, None))  # the same value twice is no conflict


def test_problems_are_named_once_each_and_good_fields_still_count():
    limits = parse(("X-RateLimit-Limit", "10"), ("X-RateLimit-Remaining", "-1"),
                   ("X-RateLimit-Remaining", "x"), ("X-RateLimit-Reset", "4"),
                   ("Retry-After", "soon"))
    assert limits == Limits(Quota(10, None, 4.0), None,
                            ("retry-after", "x-ratelimit-remaining"))


def test_names_are_case_insensitive_bytes_or_text():
    expected = Limits(Quota(10, 2, 5.0), 1.0)
    for spell in (str.lower, str.upper, str.title):
        headers = [(spell("X-RateLimit-Limit"), "10"), (spell("x-ratelimit-remaining"), "2"),
                   (spell("X-RATELIMIT-RESET"), "5"), (spell("retry-after"), "1")]
        assert parse_headers(headers, NOW) == expected
        as_bytes = [(n.encode(), v.encode()) for n, v in headers]
        assert parse_headers(as_bytes, NOW) == expected
    assert parse(("ratelimit", '"default";R=2;T=5')).quota == Quota(None, 2, 5.0)


def test_no_rate_limit_field_is_the_shared_empty_answer():
    assert parse_headers([], NOW) is EMPTY
    assert parse_headers(iter([(b"Content-Type", b"application/json"),
                               (b"Content-Length", b"21")]), NOW) is EMPTY
    assert Limits(None, None, ()) == EMPTY
    assert all(name == name.lower() for name in NAMES)


def test_the_lenient_single_value_reader_keeps_its_old_meaning():
    assert read_retry_after(b"2", NOW) == 2.0
    assert read_retry_after(b"-3", NOW) == 0.0
    assert read_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", NOW) == 0.0
    assert read_retry_after(None, NOW) is None and read_retry_after(b"soon", NOW) is None


# the fleet's answers through the balancer's client, over loopback

async def sends(port: int, count: int) -> list:
    (upstream,) = resolve_upstreams([f"127.0.0.1:{port}"])
    client = UpstreamClient(0, upstream)
    try:
        return [await client.send(f"{n:024d}", 2.0, time.monotonic) for n in range(count)]
    finally:
        client.close()


SCENARIO = """name = "{name}"
rate_limit_headers = "{style}"
rate_limit_headers_on = "{on}"

[[servers]]
port = 7000
success = 1.0
limiter = {{ kind = "token_bucket", rate = 0.05, burst = 5 }}
"""

LOADER_READY = ({"rate_limit_headers", "rate_limit_headers_on"}
                <= {f.name for f in dataclasses.fields(ServerSpec)}
                and hasattr(parse_scenario(SCENARIO.format(name="s", style="none", on="429"))
                            .build()[0].limiter, "quota"))
"""The scenario loader stores the two keys and limiters report their quota."""


@pytest.mark.parametrize("style", STYLES)
def test_the_fleet_says_when_to_come_back_in_its_style_and_the_client_reads_it(style):
    """The server side alone: its model given the style the loader will set."""

    async def run() -> list:
        loop = asyncio.get_running_loop()
        live = LiveScenario(parse_scenario(SCENARIO.format(name="s", style=style, on="429")),
                            0, loop.time)
        model = live.models[0]
        model.rate_limit_headers, model.rate_limit_headers_on = style, "429"
        server = await loop.create_server(lambda: HttpProtocol(server_handler(live, 0), set()),
                                          "127.0.0.1", 0)
        try:
            return await sends(server.sockets[0].getsockname()[1], 7)
        finally:
            server.close()

    attempts = asyncio.run(run())
    assert [a.status for a in attempts] == [200] * 5 + [429] * 2
    assert all(a.limits is EMPTY for a in attempts[:5])  # on 429s only
    for limited in attempts[5:]:
        if style == "none":
            assert limited.limits is EMPTY and limited.retry_after_s is None
        else:  # 1 token back at 0.05/s: 20 s (a date: to the second, from a wall clock)
            assert limited.limits.problems == ()
            assert 18.0 <= limited.retry_after_s <= 21.0
            assert limited.retry_after_s == limited.limits.retry_after_s


@pytest.mark.xfail(not LOADER_READY, strict=True,
                   reason="the scenario loader does not yet store rate_limit_headers / "
                          "rate_limit_headers_on on ServerSpec, or limiters have no quota()")
def test_a_github_style_server_counts_down_to_zero_before_its_429(tmp_path):
    path = tmp_path / "paced.toml"
    path.write_text(SCENARIO.format(name="paced", style="x-ratelimit-epoch", on="all"))
    with start_fleet_thread([str(path)], seed=0) as fleet:
        attempts = asyncio.run(sends(fleet.ports["paced"][0], 8))
    assert [a.status for a in attempts] == [200] * 5 + [429] * 3
    assert all(a.limits.problems == () for a in attempts)
    assert [a.limits.quota.remaining for a in attempts] == [4, 3, 2, 1, 0, 0, 0, 0]
    assert {a.limits.quota.limit for a in attempts} == {5}
    # a full bucket is 100 s of refill away at 0.05/s; the reset grows as tokens go
    resets = [a.limits.quota.reset_s for a in attempts]
    assert all(0.0 < r <= 102.0 for r in resets) and resets[4] > resets[0]
    assert [a.outcome for a in attempts[5:]] == [Outcome.RATE_LIMITED] * 3
    assert all(a.retry_after_s is not None and a.retry_after_s >= 1 for a in attempts[5:])
    assert all(a.retry_after_s is None for a in attempts[:5])
