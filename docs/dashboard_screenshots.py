"""Screenshots of the dashboard for the README: docs/img/dashboard-*.png.

Starts a fleet and a balancer on free loopback ports, records a small harness session
(3 strategies x T1/T2/T3 at 10 requests/s), feeds the balancer while the live page
is open, and drives Debian's Chromium through every page. About two minutes:

    .venv/bin/python docs/dashboard_screenshots.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from banditlb.fleet.runner import start_fleet_thread
from banditlb.harness.control import BalancerControl
from banditlb.harness.loadgen import make_ids
from banditlb.harness.live_runs import MatrixConfig, run_matrix
from banditlb.balancer.runner import start_lb_thread

OUT = Path(__file__).parent / "img"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STRATEGIES = ["v4", "v6", "random"]
SCENARIOS = ["T1", "T2", "T3"]


def feed(url: str, ids: list[str], stop: threading.Event, interval_s: float = 0.1) -> None:
    """Send ids one after the other, about 1/interval_s per second, until told to stop."""
    for request_id in ids:
        if stop.wait(interval_s):
            return
        request = urllib.request.Request(f"{url}/", data=json.dumps({"id": request_id}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.read()


def simulated_jsonl(path: Path) -> None:
    with path.open("w") as out:
        subprocess.run([sys.executable, "-m", "banditlb", "simulate", "--strategies",
                        ",".join(STRATEGIES), "--scenarios", ",".join(SCENARIOS),
                        "--requests", "500", "--seeds", "8", "--json"],
                       stdout=out, check=True)


def shoot(base: str, page, jsonl: Path, replay_run: int) -> None:
    page.goto(f"{base}/dashboard")
    page.wait_for_function("document.getElementById('connection').textContent === 'connected'")
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(base, make_ids(5000, "shots"), stop))
    feeder.start()
    try:
        page.wait_for_timeout(20_000)
        page.screenshot(path=OUT / "dashboard-live.png", full_page=True)
    finally:
        stop.set()
        feeder.join()

    page.goto(f"{base}/dashboard/runs?run={replay_run}")
    page.wait_for_function("document.getElementById('clock').textContent.includes('/')")
    page.eval_on_selector("#scrub", "s => { s.value = 800; s.dispatchEvent(new Event('input')); }")
    page.screenshot(path=OUT / "dashboard-runs.png", full_page=True)

    page.goto(f"{base}/dashboard/compare")
    page.wait_for_selector("#table tbody tr")
    page.set_input_files("#jsonl", str(jsonl))
    page.wait_for_selector("#sim-table tbody tr")
    page.screenshot(path=OUT / "dashboard-compare.png", full_page=True)

    page.goto(f"{base}/dashboard/playground")
    page.wait_for_selector(".arm")
    for _ in range(120):
        page.click("#round")
    page.screenshot(path=OUT / "dashboard-playground.png", full_page=True)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, \
            start_fleet_thread(SCENARIOS, seed=0) as fleet, \
            start_lb_thread(fleet.upstreams("T1"), data_dir=tmp, fleet_url=fleet.control_url,
                            scenario="T1") as lb:
        jsonl = Path(tmp) / "simulate.jsonl"
        simulated_jsonl(jsonl)
        results = run_matrix(MatrixConfig(STRATEGIES, SCENARIOS, fleet.control_url, lb.url,
                                          requests=80, rps=10.0, session="screenshots",
                                          data_dir=Path(tmp)))
        replay_run = next(r.run_id for r in results if (r.strategy, r.scenario) == ("v6", "T3"))
        BalancerControl(lb.url).switch("v6", fleet.upstreams("T2"), "T2", None, 0)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            shoot(lb.url, page, jsonl, replay_run)
            browser.close()
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
