"""banditlb.toml: every problem reported with its key and line; a good file starts the
balancer as the flags would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from banditlb.balancer import config_file
from banditlb.balancer.runner import ADMIN_PREFIX, READY_PREFIX
from banditlb.cli import app
from upstreams import Upstream, serve

BAD = """[listen]
host = "127.0.0.1"
prot = 8080

[[pools]]
upstreams = ["http://127.0.0.1:9001", "ftp://x"]
strategy = "nope"
contract = "grpc"
params = { reserve = 1.0 }

[pools.rules]
max_attempts = 0
deadline_ms = "5s"

[pools.forwarding]
host_header = "mine"
"""


def test_every_problem_of_a_file_is_reported_with_its_key_and_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    problems = config_file.check(path).problems
    assert {(p.key, p.line) for p in problems} == {
        ("listen.prot", 3), ("pools[0].upstreams", 6), ("pools[0].strategy", 7),
        ("pools[0].contract", 8), ("pools[0].rules.max_attempts", 12),
        ("pools[0].rules.deadline_ms", 13), ("pools[0].forwarding.host_header", 16)}
    assert "did you mean port?" in next(p.message for p in problems if p.key == "listen.prot")
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1 and "7 problem(s)" in result.output
    assert f"{path}:13: pools[0].rules.deadline_ms" in " ".join(result.output.split())


def test_a_syntax_error_and_a_missing_pool_are_problems_too(tmp_path):
    broken, empty = tmp_path / "broken.toml", tmp_path / "empty.toml"
    broken.write_text("[listen]\nport = = 1\n")
    empty.write_text("[listen]\nport = 8080\n")
    (syntax,) = config_file.check(broken).problems
    assert syntax.key == "(syntax)" and syntax.line == 2
    (missing,) = config_file.check(empty).problems
    assert missing.key == "pools" and "[[pools]]" in missing.message


def test_arrays_of_tables_are_located_by_their_index():
    lines = config_file.locate('[[pools]]\nname = "a"\n[[pools]]\nname = "b"\n'
                               '[pools.rules]\nmax_attempts = 2\n')
    assert lines["pools[0].name"] == 2 and lines["pools[1].name"] == 4
    assert lines["pools[1].rules.max_attempts"] == 6


def test_lb_starts_from_a_good_file_and_proxies_to_its_pool(tmp_path):
    upstream = Upstream("from-file")
    with serve(upstream) as port:
        path = tmp_path / "banditlb.toml"
        log = tmp_path / "access.jsonl"
        path.write_text(f"""[listen]
port = 0
admin_port = 0

[[pools]]
name = "api"
upstreams = ["http://127.0.0.1:{port}"]
strategy = "thompson"
access_log = "{log}"

[pools.rules]
max_attempts = 2
""")
        checked = CliRunner().invoke(app, ["config", "check", str(path)])
        assert checked.exit_code == 0 and "http contract, strategy thompson" in checked.output
        child = subprocess.Popen([sys.executable, "-m", "banditlb", "lb", "--config", str(path),
                                  "--data-dir", str(tmp_path / "data")],
                                 stdout=subprocess.PIPE, text=True)
        try:
            admin = next(line for line in child.stdout if line.startswith(ADMIN_PREFIX))
            ready = next(line for line in child.stdout if line.startswith(READY_PREFIX))
            url, admin_url = ready[len(READY_PREFIX):].strip(), admin[len(ADMIN_PREFIX):].strip()
            answer = httpx.get(url + "/through/the/file", timeout=10)
            stats = httpx.get(admin_url + "/stats", timeout=10).json()
        finally:
            child.terminate()
            child.wait(30)
            child.stdout.close()
    assert answer.status_code == 200 and answer.json()["path"] == "/through/the/file"
    assert stats["strategy"] == "v4" and upstream.answers == 1  # thompson is v4
    assert child.returncode == 0 and log.read_text().count("\n") == 1


def test_the_example_file_checks_clean():
    example = Path(__file__).resolve().parents[1] / "examples" / "banditlb.toml"
    checked = config_file.check(example)
    assert checked.problems == [] and checked.lb.port == 8080
    assert [u.name for u in checked.lb.upstreams] == ["http://127.0.0.1:9001",
                                                      "http://127.0.0.1:9002"]


def test_weights_are_one_per_upstream(tmp_path):
    path = tmp_path / "w.toml"
    base = '[[pools]]\nupstreams = ["http://127.0.0.1:9", "http://127.0.0.1:10"]\n'
    path.write_text(base + "weights = [1, 0.5, 2]\n")
    problems = config_file.check(path).problems
    assert [(p.key, p.line) for p in problems] == [("pools[0].weights", 3)]
    assert "3 given for 2 upstreams" in problems[0].message
    path.write_text(base + "weights = [0, 0]\n")
    assert "at least one above 0" in config_file.check(path).problems[0].message
    path.write_text(base + "weights = [1, 0]\n")
    assert config_file.load(path).weights == (1.0, 0.0)


def test_lb_refuses_weights_that_do_not_fit():
    result = CliRunner().invoke(app, ["lb", "--upstreams", "http://127.0.0.1:9",
                                      "--weights", "1,x"])
    assert result.exit_code != 0 and "expected numbers" in result.output
