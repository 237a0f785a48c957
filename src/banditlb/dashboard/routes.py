"""The dashboard's routes, already under /dashboard, for the balancer or a viewer of its own.

Pages are static HTML files; everything they show comes from the JSON APIs (and,
on the live page, from the balancer's /events and /stats on the same origin).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from banditlb.dashboard.api import DashboardApi

HERE = Path(__file__).parent
PAGES = {"": "live.html", "/runs": "runs.html", "/compare": "compare.html",
         "/playground": "playground.html"}
NO_CACHE = {"Cache-Control": "no-cache"}
"""Revalidate pages and scripts: an upgraded package must not run yesterday's JS."""


def _page(filename: str):
    path = HERE / "pages" / filename

    async def page(request: Request) -> Response:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=NO_CACHE)

    return page


class _Static(StaticFiles):
    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(NO_CACHE)
        return response


def dashboard_routes(data_dir: str | Path, fleet_url: str | None, *,
                     live: bool = True) -> list[BaseRoute]:
    """Pages, static files and JSON APIs under /dashboard.

    `live` says whether the same app serves a balancer's /events and /stats; the
    `banditlb dashboard` viewer passes False and the live page says so.
    """
    pages: list[BaseRoute] = [Route(f"/dashboard{path}", _page(name), methods=["GET"])
                              for path, name in PAGES.items()]
    return [*pages, *DashboardApi(data_dir, fleet_url, live).routes(),
            Mount("/dashboard/static", _Static(directory=HERE / "static"), name="static")]


def dashboard_app(data_dir: str | Path, fleet_url: str | None) -> Starlette:
    """The dashboard on its own (`banditlb dashboard`): stored runs, no live balancer."""

    async def home(request: Request) -> Response:
        return RedirectResponse("/dashboard")

    return Starlette(routes=[Route("/", home, methods=["GET"]),
                             *dashboard_routes(data_dir, fleet_url, live=False)])
