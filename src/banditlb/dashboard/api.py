"""JSON (and CSV) endpoints under /dashboard/api: the store, read-only, and the fleet's truth.

Endpoints are plain functions, so Starlette runs them in its thread pool: SQLite
reads and the truth fetch never block the balancer's event loop.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from banditlb.dashboard.runstats import compare_row, request_count
from banditlb.dashboard.stored_truth import NoTruth, oracle_scores, run_rules, success_schedules
from banditlb.dashboard.truth import (
    TruthCache,
    TruthUnavailable,
    free_slots,
    oracle_expected,
    servers_on_ports,
)
from banditlb.store import Store, StoreError, db_path, write_attempts_csv

REPLAY_COLUMNS = ("request_number", "attempt_number", "upstream", "outcome", "status",
                  "latency_ms", "ts")


class ApiError(Exception):
    """An answer other than 200: status and a message the page shows as is."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _int_param(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}") from None


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"{name} must be a finite number >= 0, got {raw!r}")
    return value


class DashboardApi:
    """The dashboard's data endpoints over one data dir and one (optional) fleet URL."""

    def __init__(self, data_dir: str | Path, fleet_url: str | None, live: bool):
        self.data_dir = Path(data_dir)
        self.fleet_url = fleet_url
        self.live = live
        self._truth = TruthCache(fleet_url)

    def routes(self) -> list[Route]:
        endpoints: list[tuple[str, Callable[[Request], Response | dict]]] = [
            ("/info", self.info), ("/sessions", self.sessions), ("/runs", self.runs),
            ("/runs/{run_id:int}/replay", self.replay), ("/runs/{run_id:int}/csv", self.csv),
            ("/compare", self.compare), ("/truth", self.truth)]
        return [Route(f"/dashboard/api{path}", _answering(handler), methods=["GET"])
                for path, handler in endpoints]

    def info(self, request: Request) -> dict:
        return {"live": self.live, "fleet_url": self.fleet_url is not None,
                "data_dir": str(self.data_dir)}

    def sessions(self, request: Request) -> dict:
        with self._store() as store:
            if store is None:
                return {"sessions": [], "note": self._empty_note()}
            return {"sessions": store.sessions()}

    def runs(self, request: Request) -> dict:
        session_id = _int_param(request, "session")
        with self._store() as store:
            if store is None:
                return {"runs": [], "note": self._empty_note()}
            return {"runs": store.runs(session_id)}

    def replay(self, request: Request) -> dict:
        """A run, its attempts (columnar) and what is known of the truth behind it."""
        run_id = request.path_params["run_id"]
        with self._store() as store:
            run = self._run(store, run_id)
            attempts = store.attempts(run_id)
        upstreams = sorted({a["upstream"] for a in attempts})
        index = {name: i for i, name in enumerate(upstreams)}
        rows = [[a["request_number"], a["attempt_number"], index[a["upstream"]], a["outcome"],
                 a["status"], round(a["latency_ms"], 3), a["ts"]] for a in attempts]
        ports = {a["upstream"]: a["port"] for a in attempts}
        rules = run_rules(run)
        doc = {"run": run, "columns": REPLAY_COLUMNS, "rows": rows,
               "upstreams": [{"name": name, "port": ports[name]} for name in upstreams],
               "penalty_weight": rules.penalty_weight, "free_attempts": rules.free_attempts,
               "truth": None, "truth_note": None, "oracle": None, "oracle_note": None}
        try:
            doc["truth"] = {str(port): schedule for port, schedule in
                            success_schedules(run, set(ports.values())).items()}
        except NoTruth as exc:
            doc["truth_note"] = str(exc)
        try:
            doc["oracle"] = oracle_scores(run, request_count(run, attempts))
        except NoTruth as exc:
            doc["oracle_note"] = str(exc)
        return doc

    def csv(self, request: Request) -> Response:
        """The run's attempts in the columns of `banditlb runs export`."""
        run_id = request.path_params["run_id"]
        with self._store() as store:
            run = self._run(store, run_id)
            attempts = store.attempts(run_id)
        out = io.StringIO()
        write_attempts_csv(out, run, attempts)
        return Response(out.getvalue(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="banditlb-run-{run_id}.csv"'})

    def compare(self, request: Request) -> dict:
        """Every run of a session (the latest session by default) as a compare-table row."""
        session_id = _int_param(request, "session")
        with self._store() as store:
            if store is None:
                return {"session": None, "sessions": [], "rows": [],
                        "note": self._empty_note()}
            sessions = store.sessions()
            if session_id is None and sessions:
                session_id = sessions[-1]["id"]
            session = next((s for s in sessions if s["id"] == session_id), None)
            if session is None and session_id is not None:
                raise ApiError(404, f"no session {session_id} in {self.data_dir}")
            runs = store.runs(session_id) if session is not None else []
            rows = [compare_row(run, store.attempts(run["id"]), store.requests(run["id"]))
                    for run in runs]
        return {"session": session, "sessions": sessions, "rows": rows}

    def truth(self, request: Request) -> dict:
        """The fleet's truth for the given ports and the oracle's expected score per request.

        Always 200: when the truth cannot be had, {"available": false, "reason": ...}.
        """
        ports_param = request.query_params.get("ports", "")
        try:
            ports = {int(p) for p in ports_param.split(",") if p.strip()} or None
        except ValueError:
            raise ApiError(400, "ports must be comma-separated integers") from None
        free_attempts = _int_param(request, "free_attempts", 3)
        rps = _float_param(request, "rps")
        try:
            truth = self._truth.get()
        except TruthUnavailable as exc:
            return {"available": False, "reason": str(exc)}
        servers = servers_on_ports(truth, ports)
        if not servers:
            return {"available": False, "reason": "the fleet serves none of these ports"}
        return {"available": True,
                "servers": [{"port": s["port"], "success": s["success"],
                             "available": free_slots(s, 1) > 0} for s in servers],
                "oracle_per_request": oracle_expected(servers, free_attempts, rps),
                "free_attempts": free_attempts, "rps": rps}

    def _store(self) -> _MaybeStore:
        return _MaybeStore(self.data_dir)

    def _run(self, store: Store | None, run_id: int) -> dict:
        run = store.run(run_id) if store is not None else None
        if run is None:
            raise ApiError(404, f"no run {run_id} in {self.data_dir}")
        return run

    def _empty_note(self) -> str:
        return (f"no runs recorded in {self.data_dir} yet (run `banditlb harness` or "
                f"`banditlb demo`, or pass --data-dir)")


class _MaybeStore:
    """The store if its file exists (a viewer must not create an empty one), else None."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.store: Store | None = None

    def __enter__(self) -> Store | None:
        if db_path(self.data_dir).exists():
            self.store = Store(self.data_dir)
        return self.store

    def __exit__(self, *exc) -> None:
        if self.store is not None:
            self.store.close()


def _answering(handler: Callable[[Request], Response | dict]) -> Callable[[Request], Response]:
    """A sync endpoint: dicts become JSON, ApiError and StoreError become JSON errors."""

    def endpoint(request: Request) -> Response:
        try:
            answer = handler(request)
        except ApiError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        except StoreError as exc:
            return JSONResponse({"error": str(exc)}, 503)
        return answer if isinstance(answer, Response) else JSONResponse(_finite(answer))

    return endpoint


def _finite(value):
    """The document with NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
