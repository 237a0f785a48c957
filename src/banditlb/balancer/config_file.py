"""`banditlb.toml`: the balancer's settings in a file, checked whole before anything starts.

The file holds what the `lb` flags hold, and more: a `[listen]` table, one or more
`[[pools]]` (each with its upstreams, strategy, parameters, contract, rules, retry
budget and forwarding), `[[routes]]` that send a path prefix and/or a Host to a
pool (first match wins), and `[shared_state]` (Redis, shared by pool name).
Every problem is reported at once, each with its key and line, so one round of edits
fixes them all. TOML parsers give no positions for keys, so lines are found by
reading the file's table headers and assignments (`locate`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from banditlb.balancer.config import (
    DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_MAX_RETRY_AFTER_S,
    HTTP,
    ConfigError,
    Forwarding,
    LbConfig,
    PoolRoute,
    checked_contract,
    checked_weights,
    default_contract,
    resolve_upstreams,
    retry_budget_for,
    split_upstreams,
)
from banditlb.retry_budget import DEFAULT_MIN_RETRIES
from banditlb.rules import Rules
from banditlb.shared.config import DEFAULT_SYNC_MS, SharedConfig
from banditlb.strategies import canonical_name, make_strategy
from banditlb.waitlist import DEFAULT_MAX_WAITING

LISTEN_KEYS = {"host": str, "port": int, "admin_port": int, "max_head_bytes": int}
POOL_KEYS = {"name": str, "upstreams": list, "weights": list, "strategy": str,
             "params": dict, "seed": int, "contract": str, "max_waiting": int,
             "max_retry_after_s": float,
             "access_log": str, "rules": dict, "retry_budget": (dict, str),
             "forwarding": dict}
RULE_KEYS = {"free_attempts": int, "penalty_weight": float, "max_attempts": int,
             "attempt_timeout_ms": float, "deadline_ms": float}
BUDGET_KEYS = {"percent": float, "min_retries": int}
FORWARDING_KEYS = {"max_retry_body": int, "retry_unsafe": bool, "host_header": str,
                   "forwarded": list, "ca_bundle": str, "max_body_bytes": int}
SHARED_KEYS = {"url": str, "sync_ms": float, "password": str}
ROUTE_KEYS = {"pool": str, "path_prefix": str, "host": str}
TOP_KEYS = {"listen": dict, "pools": list, "shared_state": dict, "routes": list}


@dataclass
class Problem:
    key: str
    """Dotted path of the key, e.g. pools[0].rules.max_attempts."""
    message: str
    line: int | None = None

    def render(self, path: Path) -> str:
        where = f"{path}:{self.line}" if self.line else str(path)
        return f"{where}: {self.key}: {self.message}"


@dataclass
class FileConfig:
    """A checked file: what `banditlb lb` starts from."""

    lb: LbConfig | None
    problems: list[Problem] = field(default_factory=list)


class ConfigFileError(ConfigError):
    def __init__(self, path: Path, problems: list[Problem]):
        self.path, self.problems = path, problems
        super().__init__("\n".join(p.render(path) for p in problems))


def load(path: Path, *, data_dir: Path = Path(".banditlb"), fleet_url: str | None = None,
         admin_token: str | None = None) -> LbConfig:
    """The LbConfig a file describes; ConfigFileError listing every problem."""
    checked = check(path, data_dir=data_dir, fleet_url=fleet_url, admin_token=admin_token)
    if checked.problems:
        raise ConfigFileError(path, checked.problems)
    return checked.lb


def check(path: Path, *, data_dir: Path = Path(".banditlb"), fleet_url: str | None = None,
          admin_token: str | None = None) -> FileConfig:
    """Read and check a file; every problem found, each with its key and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        return FileConfig(None, [Problem("(file)", f"cannot read it: {exc.strerror or exc}")])
    except UnicodeDecodeError:
        return FileConfig(None, [Problem("(file)", "not UTF-8 text")])
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        return FileConfig(None, [Problem("(syntax)", str(exc), int(line[1]) if line else None)])
    lines = locate(text)
    problems: list[Problem] = []
    report = _Reporter(problems, lines)
    report.keys(doc, TOP_KEYS, "")
    listen = doc.get("listen", {}) if isinstance(doc.get("listen", {}), dict) else {}
    report.keys(listen, LISTEN_KEYS, "listen")
    pools = doc.get("pools")
    if not isinstance(pools, list) or not pools:
        report.add("pools", "one [[pools]] table is needed (its upstreams, strategy, ...)")
        return FileConfig(None, problems)
    tables = [pool if isinstance(pool, dict) else {} for pool in pools]
    names = _pool_names(tables, report)
    shared = _shared(doc.get("shared_state"), report)
    built = []
    for k, (pool, name) in enumerate(zip(tables, names, strict=True)):
        lb = _pool(pool, listen, report, data_dir, fleet_url, admin_token, f"pools[{k}]")
        if lb is not None:
            built.append(dataclasses.replace(lb, name=name, shared=None if shared is None else
                                             dataclasses.replace(shared, pool=name)))
    routes = _routes(doc.get("routes"), names, report)
    if len(tables) > 1:
        if not routes:
            report.add("routes", "several pools need [[routes]] (a path_prefix and/or host "
                                 "per pool) to say which requests go where")
        for k, lb in enumerate(built):
            if lb.contract != HTTP:
                report.add(f"pools[{k}].contract", "only http-contract pools can share a "
                                                   "listener (the challenge contract is POST /)")
    lb = None
    if len(built) == len(tables):
        lb = dataclasses.replace(built[0], routes=routes, pools=tuple(built[1:]))
    if lb is not None:
        lb = dataclasses.replace(lb, source=path)
    return FileConfig(None if problems else lb, problems)


class _Reporter:
    def __init__(self, problems: list[Problem], lines: dict[str, int]):
        self.problems, self.lines = problems, lines

    def add(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message, self.line_of(key)))

    def line_of(self, key: str) -> int | None:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return None

    def keys(self, table: dict, allowed: dict, prefix: str) -> None:
        """Unknown keys (with the closest known one) and values of the wrong type."""
        for key, value in table.items():
            where = f"{prefix}.{key}" if prefix else key
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]}?" if close else \
                    f"; known: {', '.join(sorted(allowed))}"
                self.add(where, f"unknown key{hint}")
            elif not _is(value, allowed[key]):
                self.add(where, f"expected {_kind(allowed[key])}, got {type(value).__name__} "
                                f"{value!r}")

    def value(self, key: str, build, table: dict | None = None):
        """build() or None, its ValueError reported at `key`, or at the key of `table`
        that the message names."""
        try:
            return build()
        except (ValueError, TypeError, OverflowError) as exc:
            message = str(exc)
            named = [k for k in (table or {}) if k in message or k.replace("_", " ") in message]
            self.add(f"{key}.{named[0]}" if named else key, message)
            return None


def _is(value, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def _typed(table: dict, allowed: dict) -> dict:
    """The known keys of `table` whose values have their type (the others are reported
    already, and their defaults stand in, so the remaining values are checked too)."""
    return {k: v for k, v in table.items() if k in allowed and _is(v, allowed[k])}


def _kind(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "an array", dict: "a table"}
    return " or ".join(names[k] for k in kinds)


def _pool_names(pools: list[dict], report: _Reporter) -> list[str]:
    """Each pool's name: given (unique, a word), or "default" for a lone pool."""
    names = []
    for k, pool in enumerate(pools):
        name = pool.get("name", "default" if len(pools) == 1 else None)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            report.add(f"pools[{k}].name" if "name" in pool else f"pools[{k}]",
                       "each of several pools needs a name: letters, digits, _ . - (at "
                       "most 64)" if name is None else "a name is letters, digits, _ . - "
                       "(at most 64)")
            name = f"pool{k}"
        elif name in names:
            report.add(f"pools[{k}].name", f"pool name {name!r} is used twice")
        names.append(name)
    return names


def _shared(doc, report: _Reporter) -> SharedConfig | None:
    if not isinstance(doc, dict):
        return None
    report.keys(doc, SHARED_KEYS, "shared_state")
    if "url" not in doc:
        report.add("shared_state.url", "the Redis URL is needed, e.g. redis://127.0.0.1:6379")
    typed = _typed(doc, SHARED_KEYS)
    return report.value("shared_state", lambda: SharedConfig(
        typed.get("url", "redis://"), "default", float(typed.get("sync_ms", DEFAULT_SYNC_MS)),
        typed.get("password")), doc)


def _routes(doc, names: list[str], report: _Reporter) -> tuple[PoolRoute, ...]:
    if doc is None:
        return ()
    if not isinstance(doc, list):
        report.add("routes", "routes are [[routes]] tables")
        return ()
    routes = []
    for k, route in enumerate(doc):
        key = f"routes[{k}]"
        if not isinstance(route, dict):
            report.add(key, "a route is a table: pool, path_prefix, host")
            continue
        report.keys(route, ROUTE_KEYS, key)
        pool = route.get("pool")
        if pool not in names:
            report.add(f"{key}.pool" if "pool" in route else key,
                       f"a route names its pool, one of: {', '.join(names)}")
            continue
        typed = _typed(route, ROUTE_KEYS)
        built = report.value(key, lambda t=typed, p=pool: PoolRoute(
            p, t.get("path_prefix", "/"), t.get("host")), route)
        if built is not None:
            routes.append(built)
    return tuple(routes)


def _pool(pool: dict, listen: dict, report: _Reporter, data_dir: Path,
          fleet_url: str | None, admin_token: str | None, key: str) -> LbConfig | None:
    report.keys(pool, POOL_KEYS, key)
    names = pool.get("upstreams")
    resolved = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        report.add(f"{key}.upstreams", "an array of upstreams is needed, e.g. "
                                       "[\"http://127.0.0.1:9001\", \"https://api.example\"]")
        names = []
    else:
        resolved = report.value(f"{key}.upstreams", lambda: resolve_upstreams(
            [n for spec in names for n in split_upstreams(spec)]))
    contract = report.value(f"{key}.contract", lambda: checked_contract(
        pool.get("contract", default_contract(names)), names)) or HTTP
    strategy = pool.get("strategy", "auto")
    params = pool.get("params", {}) if isinstance(pool.get("params", {}), dict) else {}
    rules_doc = _table(pool, "rules", report, key, RULE_KEYS)
    rules = report.value(f"{key}.rules", lambda: _rules(rules_doc), rules_doc)
    forwarding_doc = _table(pool, "forwarding", report, key, FORWARDING_KEYS)
    forwarding = report.value(f"{key}.forwarding", lambda: _forwarding(
        _typed(forwarding_doc, FORWARDING_KEYS), _typed(listen, LISTEN_KEYS)), forwarding_doc)
    budget = pool.get("retry_budget")
    if isinstance(budget, dict):
        report.keys(budget, BUDGET_KEYS, f"{key}.retry_budget")
        budget_config = report.value(f"{key}.retry_budget", lambda: retry_budget_for(
            str(budget.get("percent", 20.0)), int(budget.get("min_retries", DEFAULT_MIN_RETRIES)),
            contract))
    else:
        budget_config = report.value(f"{key}.retry_budget", lambda: retry_budget_for(
            budget, DEFAULT_MIN_RETRIES, contract))
    seed = pool.get("seed", 0)
    if _is(seed, int) and _is(strategy, str):
        report.value(f"{key}.strategy", lambda: _strategy_check(
            strategy, max(1, len(names)), seed, params, rules or Rules()))
    max_retry_after = pool.get("max_retry_after_s", DEFAULT_MAX_RETRY_AFTER_S)
    if _is(max_retry_after, float) and not (0 <= max_retry_after < math.inf):
        report.add(f"{key}.max_retry_after_s", "must be >= 0 seconds")
    max_waiting = pool.get("max_waiting", DEFAULT_MAX_WAITING)
    if _is(max_waiting, int) and max_waiting < 0:
        report.add(f"{key}.max_waiting", "must be >= 0")
    port = listen.get("port", 8000)
    if _is(port, int) and not 0 <= port <= 65535:
        report.add("listen.port", "must be 0-65535")
    if report.problems or resolved is None or rules is None or forwarding is None:
        return None
    weights = report.value(f"{key}.weights", lambda: checked_weights(
        pool.get("weights"), len(resolved)))
    if report.problems:
        return None
    access_log = pool.get("access_log")
    return LbConfig(resolved, strategy, dict(params), seed, rules, None,
                    listen.get("host", "127.0.0.1"), port, data_dir, fleet_url, admin_token,
                    max_waiting, float(max_retry_after), contract, forwarding, budget_config,
                    None if access_log is None else Path(access_log),
                    listen.get("max_head_bytes", DEFAULT_MAX_HEAD_BYTES), weights=weights)


def _table(pool: dict, name: str, report: _Reporter, key: str, allowed: dict) -> dict:
    table = pool.get(name, {})
    if not isinstance(table, dict):
        return {}
    report.keys(table, allowed, f"{key}.{name}")
    return table


def _rules(doc: dict) -> Rules:
    doc = _typed(doc, RULE_KEYS)
    deadline = doc.get("deadline_ms", 5000.0)
    return Rules(free_attempts=doc.get("free_attempts", 3),
                 penalty_weight=doc.get("penalty_weight", 1.0),
                 max_attempts=doc.get("max_attempts", 10),
                 attempt_timeout_s=doc.get("attempt_timeout_ms", 1000.0) / 1000.0,
                 deadline_s=deadline / 1000.0)


def _forwarding(doc: dict, listen: dict) -> Forwarding:
    defaults = Forwarding()
    forwarded = doc.get("forwarded", list(defaults.forwarded))
    bundle = doc.get("ca_bundle")
    if bundle is not None and not Path(bundle).is_file():
        raise ValueError(f"ca_bundle {bundle!r} is not a file")
    port = listen.get("port", 8000)
    admin_port = listen.get("admin_port", 0 if port == 0 else port + 1)
    return Forwarding(doc.get("max_retry_body", defaults.max_retry_body),
                      doc.get("retry_unsafe", False), doc.get("host_header", "upstream"),
                      tuple(str(f).lower() for f in forwarded),
                      None if bundle is None else Path(bundle), admin_port,
                      doc.get("max_body_bytes", 0))


def _strategy_check(name: str, n: int, seed: int, params: dict, rules: Rules) -> None:
    """The strategy and its parameters, built once and thrown away."""
    canonical = canonical_name(name)
    if canonical == "oracle":
        raise ValueError("the oracle exists only in the simulator; pick a learning strategy")
    make_strategy(canonical, n, seed=seed, params=params, free_attempts=rules.free_attempts)


_HEADER = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.\-\s\"']+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def locate(text: str) -> dict[str, int]:
    """Dotted key -> the line that sets it (tables: their header's line), e.g.
    {"pools[0]": 4, "pools[0].rules.max_attempts": 9}. Arrays of tables are numbered
    in order; keys inside inline tables share their parent's line."""
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    for number, raw in enumerate(text.splitlines(), 1):
        header = _HEADER.match(raw)
        if header:
            parts = [p.strip().strip("\"'") for p in header[2].split(".")]
            table = _numbered(parts, counts, lines, bool(header[1]))
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(raw)
        if assign:
            key = f"{table}.{assign[1]}" if table else assign[1]
            lines.setdefault(key, number)
    return lines


def _numbered(parts: list[str], counts: dict[str, int], lines: dict[str, int],
              array: bool) -> str:
    """The dotted path of a table header: [[pools]] -> pools[k] (the k-th), and
    [pools.rules] -> pools[k].rules inside the latest [[pools]]."""
    path = ""
    for i, part in enumerate(parts):
        plain = f"{path}.{part}" if path else part
        last = i == len(parts) - 1
        if last and array:
            counts[plain] = counts.get(plain, -1) + 1
            path = f"{plain}[{counts[plain]}]"
        elif plain in counts:
            path = f"{plain}[{counts[plain]}]"
        else:
            path = plain
    return path
