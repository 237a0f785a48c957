"""`banditlb fleet`: help, clear errors with exit code 2, clean stop on SIGTERM and Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from typer.testing import CliRunner

from banditlb.cli import app
from banditlb.commands.fleet import port_ranges
from banditlb.fleet.live import PortInUse, check_free
from banditlb.fleet.runner import READY_PREFIX, start_fleet_process


def run_fleet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "banditlb", "fleet", *args],
                          capture_output=True, text=True, timeout=60)


def test_help_explains_every_option():
    result = CliRunner().invoke(app, ["fleet", "--help"])
    assert result.exit_code == 0
    for option in ("--scenario", "--seed", "--host", "--control-port", "--port-offset",
                   "--id-ttl"):
        assert option in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--scenario", "T9"], "unknown scenario 'T9'"),
    (["--scenario", "missing.toml"], "scenario file not found"),
    (["--scenario", "T1", "--scenario", "t1"], "given twice"),
    (["--port-offset", "60000"], "out of range"),
])
def test_scenario_errors_exit_2_with_a_clear_message(args, message):
    result = CliRunner().invoke(app, ["fleet", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_overlapping_scenarios_are_refused(tmp_path):
    clash = tmp_path / "clash.toml"
    clash.write_text('name = "clash"\n[[servers]]\nport = 4005\nsuccess = 0.5\n')
    result = CliRunner().invoke(app, ["fleet", "--scenario", "T1", "--scenario", str(clash)])
    assert result.exit_code == 2
    assert "both use port 4005" in result.output


def free_offset(ports: list[int]) -> int:
    """An offset at which every one of `ports` can be bound right now."""
    for offset in range(11000, 26000, 97):
        try:
            check_free("127.0.0.1", [port + offset for port in ports])
        except PortInUse:
            continue
        return offset
    raise AssertionError("no free port range")


@pytest.mark.parametrize("which", ["server", "control"])
def test_a_port_in_use_exits_2_naming_the_port(which):
    offset = free_offset(list(range(4000, 4011)))
    port = 4003 + offset if which == "server" else 4010 + offset
    with socket.create_server(("127.0.0.1", port)):
        result = run_fleet("--scenario", "T1", "--port-offset", str(offset),
                           "--control-port", str(4010 + offset))
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_ranges_are_compact():
    assert port_ranges([4002, 4000, 4001, 4005]) == "4000-4002,4005"


def test_the_command_prints_its_ports_and_stops_cleanly_on_ctrl_c():
    offset = free_offset(list(range(4000, 4010)) + list(range(4200, 4210)))
    child = subprocess.Popen([sys.executable, "-m", "banditlb", "fleet", "--scenario", "T1",
                              "--scenario", "faults", "--port-offset", str(offset),
                              "--control-port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = child.stdout.readline()
        ready = child.stdout.readline()
        assert ready.startswith(READY_PREFIX)
        control_url = ready.removeprefix(READY_PREFIX).strip()
        assert f"T1 {4000 + offset}-{4009 + offset}" in banner
        assert f"faults {4200 + offset}-{4209 + offset}" in banner
        assert f"{control_url}/score" in banner
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0
    assert "Traceback" not in err


def test_start_fleet_process_serves_and_stops_with_sigterm():
    with start_fleet_process(["T2"], seed=4) as fleet:
        with urllib.request.urlopen(f"{fleet.control_url}/truth", timeout=5) as response:
            truth = json.loads(response.read())["scenarios"]["T2"]
        assert truth["seed"] == 4
        assert [s["port"] for s in truth["servers"]] == fleet.ports["T2"]
        assert fleet.upstreams("T2")[0] == f"127.0.0.1:{fleet.ports['T2'][0]}"
    assert fleet.process.returncode == 0
