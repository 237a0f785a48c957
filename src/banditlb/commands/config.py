"""`banditlb config check FILE`: every problem of a balancer config file, before a start."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from banditlb.balancer import config_file

config_app = typer.Typer(help="Balancer config files (banditlb.toml).", no_args_is_help=True)

EXAMPLE = """[listen]
host = "127.0.0.1"
port = 8080          # every path is proxied (http contract)
admin_port = 8081    # /stats, /metrics, /admin, the dashboard

[[pools]]
name = "api"
upstreams = ["http://127.0.0.1:9001", "https://api.example.com"]
strategy = "auto"    # any `banditlb lb --strategy` name
contract = "http"    # or "challenge": POST / {"id": ...} with the penalty rule
params = { reserve = 1.0 }
access_log = "access.jsonl"
retry_budget = { percent = 20, min_retries = 10 }   # or "off"

[pools.rules]
max_attempts = 10
attempt_timeout_ms = 1000
deadline_ms = 5000

[pools.forwarding]
max_retry_body = 65536
retry_unsafe = false
host_header = "upstream"
forwarded = ["for", "proto", "host", "via"]
"""


@config_app.command("check", help="Check a config file: every problem with its key and line "
                                  "(exit 1 if any), or what it would start (exit 0).\n\n"
                                  "A file of this form:\n\n" + EXAMPLE.replace("\n", "\n\n"))
def check_command(
    file: Annotated[Path, typer.Argument(help="The TOML file, e.g. banditlb.toml.")],
) -> None:
    out, err = Console(), Console(stderr=True)
    checked = config_file.check(file)
    if checked.problems:
        for problem in checked.problems:
            err.print(f"[bold red]error:[/bold red] {escape(problem.render(file))}")
        err.print(f"{len(checked.problems)} problem(s) in {escape(str(file))}")
        raise typer.Exit(1)
    lb = checked.lb
    out.print(f"ok: {escape(str(file))}: listen {lb.host}:{lb.port}")
    for pool in lb.all_pools:
        routes = [f"{r.host or ''}{r.path_prefix}" for r in lb.routes if r.pool == pool.name]
        out.print(f"  pool {escape(pool.name)}{' for ' + ', '.join(routes) if routes else ''}: "
                  f"{pool.contract} contract, strategy {pool.strategy}, "
                  f"{len(pool.upstreams)} upstream(s): "
                  f"{escape(', '.join(u.name for u in pool.upstreams))}")
