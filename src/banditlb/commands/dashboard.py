"""`banditlb dashboard`: the dashboard alone, over the runs stored in a data dir."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
import uvicorn
from rich.console import Console

from banditlb.balancer.runner import bind
from banditlb.commands.common import fail
from banditlb.dashboard.routes import dashboard_app
from banditlb.services import url_of
from banditlb.store import DEFAULT_DATA_DIR, db_path


def dashboard_command(
    data_dir: Annotated[Path, typer.Option(help="Directory holding banditlb.sqlite3.")]
    = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")]
    = 8080,
    fleet_url: Annotated[str | None, typer.Option(
        help="The fleet's control URL (e.g. http://127.0.0.1:7000), for true success "
             "rates.")] = None,
) -> None:
    """Serve the dashboard for stored runs (runs, compare, playground) without a balancer."""
    if fleet_url is not None and urlsplit(fleet_url).scheme not in ("http", "https"):
        fail(f"--fleet-url must be an http:// URL, got {fleet_url!r}")
    if data_dir.exists() and not data_dir.is_dir():
        fail(f"--data-dir {data_dir} is not a directory")
    try:
        sock = bind(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (pick another --port, "
             f"or 0 for any free one)")
    console = Console(stderr=True, soft_wrap=True)
    stored = "" if db_path(data_dir).exists() else " (no runs recorded there yet)"
    console.print(f"[bold]banditlb dashboard[/bold] {url_of(sock)}/dashboard  "
                  f"runs from {data_dir}{stored}; Ctrl-C stops")
    logging.basicConfig(level=logging.WARNING)
    config = uvicorn.Config(dashboard_app(data_dir, fleet_url), log_level="warning",
                            access_log=False, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
