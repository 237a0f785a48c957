"""The robustness grid (bench/grid): its section of docs/benchmarks.md from saved results,
the cells where auto falls short, the markers both writers share, the heat map, and a
tiny real simulated run end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.grid.report import load_grid, shortfalls, write_grid_report  # noqa: E402
from bench.grid.run import main, run_grid  # noqa: E402
from bench.grid.section import (  # noqa: E402
    END,
    REPLICAS,
    START,
    SectionError,
    extract_section,
    keep_section,
    replace_section,
)
from bench.peers.report import write_report  # noqa: E402

from banditlb.arrivals import parse_arrivals  # noqa: E402

CLASSES = ["T2", "concurrency"]
MODES = ["uniform", "burst:10"]
RULES = {"free_attempts": 3, "penalty_weight": 1.0, "max_attempts": 10, "deadline_s": 5.0,
         "attempt_timeout_s": 1.0}
SIM = {
    # (class, mode): {strategy: score per 100}
    ("T2", "uniform"): {"auto": 95.0, "v4": 90.0, "random": 80.0, "oracle": 100.0},
    ("T2", "burst:10"): {"auto": 88.0, "v4": 90.0, "random": 70.0, "oracle": 95.0},
    ("concurrency", "uniform"): {"auto": 72.0, "v4": 60.0, "random": 50.0, "oracle": 90.0},
    ("concurrency", "burst:10"): {"auto": 20.0, "v4": 15.0, "random": 10.0, "oracle": 40.0},
}
"""T2 uniform: ahead, 95%: not listed. T2 burst: behind v4 by 2. concurrency uniform:
ahead but 80% of an oracle at 90: listed. concurrency burst: 50% of an oracle at 40
(below the floor of 50): not listed."""


def sim_record(strategy: str, cls: str, mode: str, score: float, oracle: float) -> dict:
    return {"strategy": strategy, "scenario": cls, "arrivals": mode, "score_per_100": score,
            "ci95": 1.0, "pct_of_oracle": 100.0 * score / oracle, "accepted_pct": score,
            "penalized_per_100": 0.0, "rate_limited_per_100": 5.0, "waited_pct": 0.0,
            "latency_p50_ms": 2.0, "latency_p99_ms": 9.0, "seeds": 5, "requests": 1000,
            "penalty_weight": 1.0, "source": "simulated"}


def live_records(peer: str, cls: str, mode: str, scores: list[float]) -> list[dict]:
    return [{"peer": peer, "config": peer, "source": "live", "scenario": cls, "arrivals": mode,
             "seed": seed, "penalty_weight": 1.0, "requests": 200, "score": score,
             "ids_seen": 200, "ids_accepted": score, "attempts": 300,
             "penalized_attempts": 0, "rate_limited": 10, "failed": 20, "client_ok": score,
             "client_no_answer": 0, "client_p50_ms": 3.0, "client_p99_ms": 40.0,
             "tries": 1, "stall_max_ms": 12.0} for seed, score in enumerate(scores)]


def write_results(folder: Path, live: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    records = [sim_record(name, cls, mode, score, scores["oracle"])
               for (cls, mode), scores in SIM.items() for name, score in scores.items()]
    meta = {"date": "today", "machine": "test", "classes": CLASSES,
            "descriptions": {"T2": "token buckets", "concurrency": "k in flight"},
            "arrivals": MODES, "strategies": ["auto", "v4", "random", "oracle"],
            "seeds": [0, 1, 2, 3, 4], "requests": 1000, "rps": 10.0, "penalty_weight": 1.0,
            "rules": RULES, "elapsed_s": 12.0}
    (folder / "simulated.json").write_text(json.dumps({"meta": meta, "records": records}))
    if not live:
        return
    # live T2 uniform: auto 96, 97, 98 of 200 -> 48.5 per 100; nginx 100, 100, 100 -> 50
    live = (live_records("auto", "T2", "uniform", [96, 97, 98])
            + live_records("nginx", "T2", "uniform", [100, 100, 100])
            + live_records("haproxy leastconn", "T2", "uniform", [80, 82, 84]))
    oracle = [{**sim_record("oracle", "T2", "uniform", 50.0, 50.0), "seeds": 3,
               "requests": 200}]
    live_meta = {"date": "today", "machine": "test", "packages": {"nginx": "1", "haproxy": "2"},
                 "classes": ["T2"], "arrivals": ["uniform"], "seeds": [0, 1, 2],
                 "requests": 200, "rps": 10.0, "elapsed_s": 120,
                 "peers": {"auto": "banditlb lb --strategy auto", "nginx": "nginx x",
                           "haproxy leastconn": "HAProxy y"}}
    (folder / "live.json").write_text(json.dumps({"meta": live_meta, "records": live,
                                                  "oracle": oracle}))


def test_shortfalls_list_the_cells_behind_a_rival_or_below_the_oracle_target(tmp_path):
    write_results(tmp_path / "results")
    misses = {(m.cls, m.mode, m.source): m for m in shortfalls(load_grid(tmp_path / "results"))}
    assert set(misses) == {("T2", "burst:10", "simulated"),
                           ("concurrency", "uniform", "simulated"), ("T2", "uniform", "live")}
    behind = misses[("T2", "burst:10", "simulated")]
    assert [m.versus for m in behind.behind] == ["v4"]
    assert behind.behind[0].margin == pytest.approx(-2.0)
    assert behind.behind[0].ci95 == pytest.approx(2 ** 0.5)  # two CIs of 1, independent
    assert not behind.below_target  # 88 / 95 = 92.6%
    short = misses[("concurrency", "uniform", "simulated")]
    assert short.behind == () and short.below_target
    assert short.pct_of_oracle == pytest.approx(80.0)
    live = misses[("T2", "uniform", "live")]
    assert [m.versus for m in live.behind] == ["nginx"]  # ahead of haproxy
    assert live.behind[0].paired and live.behind[0].margin == pytest.approx(-1.5)
    assert live.pct_of_oracle == pytest.approx(97.0)


def test_section_between_the_markers_keeps_the_rest_and_draws_the_heat_map(tmp_path):
    write_results(tmp_path / "results")
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    doc.write_text(f"# Benchmarks\n\npeers part\n\n{START}\nold grid\n{END}\n\ntail part\n")
    write_grid_report(tmp_path / "results", doc, discussion=None)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\npeers part\n\n" + START)
    assert text.endswith(END + "\n\ntail part\n")
    assert "old grid" not in text and text.count(START) == 1 and text.count(END) == 1
    section = extract_section(text)
    # rows = strategies, columns = classes, one table per arrival mode; best in bold
    assert "### Simulated, `uniform` arrivals" in section
    assert "### Simulated, `burst:10` arrivals" in section
    assert "| strategy | `T2` (token bucket) | `concurrency` (k in flight) |" in section
    assert "| **auto** | **95.0 ± 1.0 (95.0%)** | **72.0 ± 1.0 (80.0%)** |" in section
    assert "| v4 | **90.0 ± 1.0 (94.7%)** | 15.0 ± 1.0 (37.5%) |" in section
    # live: peers as rows, the oracle simulated on the live seeds, per-seed stalls
    assert "#### Live, `uniform` arrivals" in section
    assert "| **auto** | 48.5 ± 1.2 (97.0%) |" in section
    assert "| nginx | **50.0 ± 0.0 (100.0%)** |" in section
    assert "| oracle (simulated, same seeds) | 50.0 ± 1.0 |" in section
    assert "`uniform` seed 0: 12 ms" in section
    # the commands that made it
    assert "python -m bench.grid.run --seeds 5 --requests 1000 --classes T2,concurrency " \
           "--arrivals uniform,burst:10 --live-seeds 3 --live-requests 200 " in section
    assert "banditlb simulate --strategies auto,v4,random,oracle --scenarios T2,concurrency " \
           "--requests 1000 --seeds 5 --json --penalty-weight 1 --arrivals burst:10" in section
    # the shortfalls, each by how much, and the placeholder for why
    assert "- `T2` × `burst:10` (simulated, 5 seeds): behind v4 by 2.0 per 100 (± 1.4)." \
        in section
    assert "- `concurrency` × `uniform` (simulated, 5 seeds): 80.0% of the oracle (which " \
           "scores 90.0 per 100), 10.0 points short of 90%." in section
    assert "- `T2` × `uniform` (live, 3 seeds): behind nginx by 1.5 per 100 (± 1.2)." \
        in section
    assert "`concurrency` × `burst:10`" not in section.split("### Where")[1]
    assert "is to be explained" in section
    assert "![% of the holding oracle per cell and strategy](img/robustness-grid.png)" \
        in section
    png = tmp_path / "docs" / "img" / "robustness-grid.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_lead_s_discussion_replaces_the_placeholder(tmp_path):
    write_results(tmp_path / "results", live=False)
    why = tmp_path / "why.md"
    why.write_text("Concurrency: the oracle knows service times.\n")
    doc = tmp_path / "benchmarks.md"
    write_grid_report(tmp_path / "results", doc, discussion=why)
    text = doc.read_text()
    assert text.startswith(START) and text.rstrip().endswith(END)
    assert "Concurrency: the oracle knows service times." in text
    assert "is to be explained" not in text
    assert "No live results saved" in text and "--skip-live" in text


def write_peer_results(folder: Path) -> None:
    """The smallest results bench/peers/report.py writes its doc from."""
    folder.mkdir(parents=True)
    records = [{**r, "penalty_weight": w} for w in (1.0, 0.5)
               for r in live_records("auto", "T2", "uniform", [190, 192, 194])]
    sims = [{**sim_record("oracle", "T2", "uniform", 97.0, 97.0), "penalty_weight": w,
             "seeds": 3, "requests": 200} for w in (1.0, 0.5)]
    meta = {"date": "today", "machine": "test", "packages": {"nginx": "1", "haproxy": "2"},
            "scenarios": ["T2"], "seeds": [0, 1, 2], "requests": 200, "rps": 10.0,
            "arrivals": ["uniform"], "elapsed_s": 60, "peers": {"auto": "banditlb lb"}}
    (folder / "live.json").write_text(json.dumps({"meta": meta, "records": records}))
    (folder / "simulated.json").write_text(json.dumps({"requests": 200, "records": sims}))


@pytest.mark.parametrize("peers_first", [True, False])
def test_both_writers_keep_each_other_s_part_in_either_order(tmp_path, peers_first):
    write_results(tmp_path / "grid")
    write_peer_results(tmp_path / "peers")
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()

    def peers() -> None:
        write_report(tmp_path / "peers", doc)

    def grid() -> None:
        write_grid_report(tmp_path / "grid", doc, discussion=None)

    written: set[str] = set()
    for write in ([peers, grid, peers, grid, peers] if peers_first
                  else [grid, peers, grid, peers, grid]):
        write()
        written.add(write.__name__)
        text = doc.read_text()
        if "grid" in written:
            assert text.count(START) == 1 and text.count(END) == 1
            assert "## Robustness grid" in extract_section(text)
        if "peers" in written:
            assert text.startswith("# Benchmarks")
            assert "#### T2, weight 1, `uniform`" in text
    # the peers' part never leaks into the grid section, nor the grid's out of it
    section = extract_section(doc.read_text())
    assert "#### T2, weight 1" not in section
    outside = doc.read_text().replace(section, "")
    assert "Robustness grid" not in outside


def test_section_helpers_replace_append_and_refuse_broken_markers():
    assert replace_section("", "body") == f"{START}\nbody\n{END}\n"
    assert replace_section("# Doc\n", "body") == f"# Doc\n\n{START}\nbody\n{END}\n"
    old = f"a\n{START}\nx\n{END}\nb\n"
    assert replace_section(old, "y") == f"a\n{START}\ny\n{END}\nb\n"
    assert keep_section(old, "new doc\n") == f"new doc\n\n{START}\nx\n{END}\n"
    assert keep_section("no section", "new doc\n") == "new doc\n"
    for broken in (f"{END}\n{START}\n", f"{START} only", f"{START}{START}{END}"):
        with pytest.raises(SectionError):
            replace_section(broken, "y")


def test_a_tiny_real_simulated_run_end_to_end(tmp_path):
    """2 seeds x 100 requests, 2 classes, 2 arrival modes, 3 strategies (+ the oracle)."""
    results, doc = tmp_path / "results", tmp_path / "docs" / "benchmarks.md"
    run_grid(results, doc, classes=["T2", "fixed-window"],
             arrivals=[parse_arrivals("uniform"), parse_arrivals("burst:10")],
             strategies=["auto", "v4", "round-robin"], seeds=2, requests=100,
             live_classes=["T2"], live_arrivals=[parse_arrivals("uniform")],
             skip_live=True, workers=1, log=lambda text: None)
    saved = json.loads((results / "simulated.json").read_text())
    assert saved["meta"]["rules"]["deadline_s"] == 5.0
    assert saved["meta"]["strategies"] == ["auto", "v4", "round-robin", "oracle"]
    cells = {(r["scenario"], r["arrivals"], r["strategy"]) for r in saved["records"]}
    assert len(cells) == len(saved["records"]) == 2 * 2 * 4
    assert all(r["seeds"] == 2 and r["requests"] == 100 for r in saved["records"])
    oracle = [r for r in saved["records"] if r["strategy"] == "oracle"]
    assert all(r["pct_of_oracle"] == 100.0 for r in oracle)
    assert not (results / "live.json").exists()
    section = extract_section(doc.read_text())
    assert "| strategy | `T2` (token bucket) | `fixed-window` (fixed window) |" in section
    assert section.count("| round-robin | ") == 2
    assert (tmp_path / "docs" / "img" / "robustness-grid.png").stat().st_size > 10_000
    # --from-results rewrites the same section from the saved results alone
    before = doc.read_text()
    main(["--from-results", "--results", str(results), "--doc", str(doc)])
    assert doc.read_text() == before


def test_help_names_every_flag(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--from-results", "--skip-live", "--seeds", "--requests", "--live-seeds",
                 "--live-requests", "--classes", "--arrivals"):
        assert flag in text


def test_every_marked_section_survives_the_peers_rewrite():
    old = replace_section(replace_section("# old\n", "grid body"), "replicas body", REPLICAS)
    kept = keep_section(old, "# new peers doc\n")
    assert kept.startswith("# new peers doc") and "grid body" in kept
    assert extract_section(kept, REPLICAS).count("replicas body") == 1
    assert replace_section(kept, "fresh", REPLICAS).count("replicas body") == 0
