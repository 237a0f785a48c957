"""The dashboard in a real Chromium: pages load cleanly, live data flows, replays scrub,
compare lists every run, the playground learns, and user text never becomes markup."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from banditlb.balancer.runner import start_lb_thread
from banditlb.fleet.runner import start_fleet_thread
from banditlb.harness.loadgen import make_ids
from banditlb.shared.config import SharedConfig
from banditlb.store import CSV_COLUMNS, Store
from lb_from_file import lb_from_file
from redis_server import redis_server
from test_dashboard_support import MARKUP, fill_store, serve_dashboard
from upstreams import Upstream, serve

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: `make system-deps` (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh page that records console errors and uncaught exceptions in page.problems."""
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: m.type == "error" and tab.problems.append(m.text))
    tab.on("pageerror", lambda exc: tab.problems.append(str(exc)))
    yield tab
    context.close()


def counter(page, name: str) -> float | None:
    text = page.locator(f'[data-counter="{name}"] .value').text_content().replace(",", "")
    return None if text == "–" else float(text)


def chart_pixels(page, name: str) -> str:
    return page.eval_on_selector(f'canvas[data-chart="{name}"]', "c => c.toDataURL()")


def post_ids(url: str, ids: list[str]) -> None:
    for request_id in ids:
        request = urllib.request.Request(f"{url}/", data=json.dumps({"id": request_id}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:  # 502/503 are answers too
            exc.read()


@pytest.fixture
def stored(tmp_path) -> dict:
    filled = fill_store(tmp_path, requests=80)
    other = fill_store(tmp_path, session="second", strategies=("v6",), scenarios=("T1",),
                       requests=30)
    return {"dir": tmp_path, **filled, "other": other}


def test_every_page_loads_without_console_errors(page, stored):
    with serve_dashboard(stored["dir"]) as url:
        page.goto(f"{url}/dashboard")
        page.wait_for_selector("#connection[data-state=offline]", timeout=WAIT_MS)
        assert "banditlb dashboard` alone" in page.locator("#notice").text_content()
        page.goto(f"{url}/dashboard/runs")
        page.wait_for_selector("#runs tbody tr", timeout=WAIT_MS)
        assert page.locator("#runs tbody tr").count() == 5
        page.goto(f"{url}/dashboard/compare")
        page.wait_for_selector("#table tbody tr", timeout=WAIT_MS)
        page.goto(f"{url}/dashboard/playground")
        page.wait_for_selector(".arm", timeout=WAIT_MS)
    assert page.problems == []


def test_live_page_shows_the_replicas_sharing_the_pool(page, tmp_path):
    with redis_server() as redis, start_fleet_thread(["T1"], seed=0) as fleet, \
            start_lb_thread(fleet.upstreams("T1"), data_dir=tmp_path / "a",
                            shared=SharedConfig(redis.url, "pageview")) as a, \
            start_lb_thread(fleet.upstreams("T1"), data_dir=tmp_path / "b",
                            shared=SharedConfig(redis.url, "pageview")):
        page.goto(f"{a.url}/dashboard")
        page.wait_for_function("document.getElementById('facts').textContent"
                               ".includes('2 replicas of pool pageview; connected')",
                               timeout=WAIT_MS)
        post_ids(a.url, make_ids(5, "shared-page"))
        assert page.problems == []


def test_live_page_shows_pools_and_routes(page, tmp_path):
    a, b = Upstream("a"), Upstream("b")
    with serve(a) as pa, serve(b) as pb:
        path = tmp_path / "banditlb.toml"
        path.write_text(f"""
[listen]
port = 0
admin_port = 0
[[pools]]
name = "chat"
upstreams = ["http://127.0.0.1:{pa}"]
[[pools]]
name = "files"
upstreams = ["http://127.0.0.1:{pb}"]
[[routes]]
pool = "files"
path_prefix = "/files/"
host = "static.local"
[[routes]]
pool = "chat"
""")
        with lb_from_file(path, tmp_path / "data") as lb:
            for k in range(3):
                httpx.get(f"{lb.url}/files/{k}", headers={"Host": "static.local"})
            page.goto(f"{lb.admin}/dashboard")
            page.wait_for_function("document.getElementById('facts').textContent"
                                   ".includes('files: static.local/files/')", timeout=WAIT_MS)
            facts = page.locator("#facts").text_content()
    assert "▸ chat: any host/ → 1 upstream (auto)" in facts
    assert "files: static.local/files/ → 1 upstream (auto); 3 requests, score 3" in facts
    assert page.problems == []


def test_live_page_follows_a_real_balancer(page, tmp_path):
    ids = make_ids(60, "dashboard-live")
    with start_fleet_thread(["T1"], seed=0) as fleet, \
            start_lb_thread(fleet.upstreams("T1"), strategy="v4", data_dir=tmp_path,
                            scenario="T1", fleet_url=fleet.control_url) as lb:
        page.clock.install()
        page.goto(f"{lb.url}/dashboard")
        page.wait_for_function("document.getElementById('connection').textContent "
                               "=== 'connected'", timeout=WAIT_MS)
        post_ids(lb.url, ids[:20])
        page.wait_for_function("+document.querySelector('[data-counter=requests] .value')"
                               ".textContent >= 20", timeout=WAIT_MS)
        first = counter(page, "requests")
        post_ids(lb.url, ids[20:])
        page.wait_for_function("+document.querySelector('[data-counter=requests] .value')"
                               ".textContent >= 60", timeout=WAIT_MS)
        assert counter(page, "requests") > first
        assert counter(page, "accepted") > 0
        facts = page.locator("#facts").text_content()
        assert "v4 (thompson)" in facts and "T1" in facts
        # v4 never waits: nothing waits now, none waited, the bound is the balancer's
        assert "0 now (at most 1000); 0 waited" in facts and "0 turned away" in facts
        assert "off (this process learns alone)" in facts
        # The fleet's truth reaches the page: true rates and the oracle's regret.
        page.wait_for_function("document.querySelector('[data-counter=regret] .value')"
                               ".textContent !== '–'", timeout=WAIT_MS)
        assert page.problems == []

        # No heartbeat for 3 s means stale: jump the page's clock past that.
        page.evaluate("""() => {
            window.__states = [];
            new MutationObserver(() => window.__states.push(
                document.getElementById('connection').dataset.state))
              .observe(document.getElementById('connection'), {attributes: true,
                                                               childList: true});
        }""")
        page.clock.fast_forward(4000)
        page.wait_for_function("window.__states.includes('stale')", timeout=WAIT_MS)
        page.wait_for_function("document.getElementById('connection').textContent "
                               "=== 'connected'", timeout=WAIT_MS)
    # The balancer is gone: the stream is down and the page says it is reconnecting.
    page.wait_for_function("document.getElementById('connection').dataset.state "
                           "=== 'reconnecting'", timeout=WAIT_MS)


def test_replay_scrubbing_changes_the_charts(page, stored):
    run_id = stored["run_ids"][0]
    with serve_dashboard(stored["dir"]) as url:
        page.goto(f"{url}/dashboard/runs?run={run_id}")
        page.wait_for_function("document.getElementById('clock').textContent.includes('/')",
                               timeout=WAIT_MS)
        assert counter(page, "requests") == 80
        assert counter(page, "regret") is not None  # harness run of T1: oracle known
        end = {name: chart_pixels(page, name) for name in ("success", "score", "servers",
                                                           "latency")}
        page.eval_on_selector("#scrub", "s => { s.value = 250; "
                                        "s.dispatchEvent(new Event('input')); }")
        assert 0 < counter(page, "requests") < 80
        for name, pixels in end.items():
            assert chart_pixels(page, name) != pixels, name

        before = page.locator("#clock").text_content()
        page.select_option("#speed", "100")
        page.click("#play")
        page.wait_for_function(f"document.getElementById('clock').textContent !== '{before}'",
                               timeout=WAIT_MS)

        with page.expect_download() as download:
            page.click(f'#runs tr[data-run="{run_id}"] a')
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0].split(",") == list(CSV_COLUMNS) and len(lines) > 80

        with page.expect_download() as download:
            page.click('section.panel:has(canvas[data-chart="score"]) button')
        assert download.value.suggested_filename == "replay-score.png"
        assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.problems == []


def test_compare_lists_every_run_of_a_session(page, stored, tmp_path):
    jsonl = tmp_path / "simulate.jsonl"
    rows = [{"strategy": s, "scenario": sc, "score_per_100": score, "ci95": 1.5,
             "pct_of_oracle": 90.0, "accepted_pct": 95.0, "penalized_per_100": 0.1,
             "rate_limited_per_100": 3.0, "seeds": 20, "requests": 1000}
            for sc in ("T1", "T2") for s, score in (("v4", 80.0), ("v6", 85.0), ("oracle", 99.0))]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    with serve_dashboard(stored["dir"]) as url:
        page.goto(f"{url}/dashboard/compare?session={stored['session_id']}")
        page.wait_for_selector("#table tbody tr", timeout=WAIT_MS)
        shown = page.eval_on_selector_all("#table tbody tr", "rows => rows.map(r => "
                                          "+r.dataset.run)")
        assert sorted(shown) == stored["run_ids"]
        titles = page.eval_on_selector_all("#table th", "ths => ths.map(t => t.title)")
        assert titles and all(titles)
        best = page.eval_on_selector_all("#table tr.best", "rows => rows.map(r => "
                                         "r.cells[0].textContent)")
        assert set(best) == {"T1", "T2"}
        assert page.locator('canvas[data-chart="compare-scores"]').count() == 1
        assert page.locator('canvas[data-chart^="compare-regret-"]').count() == 2

        page.select_option("#session", str(stored["other"]["session_id"]))
        page.wait_for_function("document.querySelectorAll('#table tbody tr').length === 1",
                               timeout=WAIT_MS)

        page.set_input_files("#jsonl", str(jsonl))
        page.wait_for_selector("#sim-table tbody tr", timeout=WAIT_MS)
        assert page.locator("#sim-table tbody tr").count() == 6
        assert "line 7 is not JSON" in page.locator("#simulated-notice").text_content()
        best = page.eval_on_selector_all("#sim-table tr.best", "rows => rows.map(r => "
                                         "r.cells[1].textContent)")
        assert best == ["v6", "v6"]  # the oracle is the yardstick, not a contender
    assert page.problems == []


def test_playground_curves_move_after_a_round(page, tmp_path):
    with serve_dashboard(tmp_path) as url:
        page.goto(f"{url}/dashboard/playground")
        page.wait_for_selector(".arm", timeout=WAIT_MS)
        assert page.locator(".arm").count() == 5
        before = chart_pixels(page, "density")
        page.click("#round")
        assert page.locator("[data-stat=rounds]").text_content() == "rounds: 1"
        assert chart_pixels(page, "density") != before

        page.select_option("#arms", "8")
        assert page.locator(".arm").count() == 8
        page.click('.arm[data-arm="0"] [data-action=success]')
        assert "1 successes, 0 failures" in page.locator('.arm[data-arm="0"]').text_content()

        page.click("#autoplay")
        page.wait_for_function("+document.querySelector('[data-stat=rounds]').textContent"
                               ".split(': ')[1] >= 5", timeout=WAIT_MS)
        page.click("#autoplay")
    assert page.problems == []


def test_markup_in_names_and_params_renders_as_text(page, tmp_path):
    filled = fill_store(tmp_path, session=MARKUP, strategies=(MARKUP,), scenarios=("T1",),
                        requests=10, params={"note": MARKUP})
    run_id = filled["run_ids"][0]
    with Store(tmp_path) as store:
        assert store.run(run_id)["strategy"] == MARKUP
    with serve_dashboard(tmp_path) as url:
        for path in (f"/dashboard/runs?run={run_id}",
                     f"/dashboard/compare?session={filled['session_id']}"):
            page.goto(url + path)
            page.wait_for_selector("tbody tr", timeout=WAIT_MS)
            page.wait_for_timeout(200)
            assert MARKUP in page.locator("tbody").text_content()
            assert page.locator("#pwned").count() == 0
            assert page.evaluate("window.__pwned") is None
        assert MARKUP in page.locator("#session").text_content()
    assert page.problems == []
