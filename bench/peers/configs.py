"""nginx and HAProxy configurations for the peer benchmark, rendered from templates/.

A config serves several sites at once: one listen port per scenario, each in front of
that scenario's servers, so one nginx (or HAProxy) process covers a whole benchmark row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Site:
    """One scenario behind one listen port of a peer."""

    name: str
    listen_port: int
    upstreams: list[str]
    """host:port of each server, in the scenario's order."""


@dataclass(frozen=True)
class NginxTuning:
    """What the benchmark tunes for nginx: how fast a failing server is taken out."""

    max_fails: int = 1
    fail_timeout_s: int = 1
    """Whole seconds: nginx rejects fail_timeout in milliseconds."""
    connect_timeout_ms: int = 300
    read_timeout_ms: int = 1000
    workers: int = 1

    @property
    def label(self) -> str:
        return f"max_fails={self.max_fails} fail_timeout={self.fail_timeout_s}s"


@dataclass(frozen=True)
class HaproxyTuning:
    """What the benchmark varies for HAProxy: the balance algorithm and passive ejection."""

    balance: str = "random(2)"
    error_limit: int = 10
    check_interval_ms: int = 1000
    connect_timeout_ms: int = 300
    server_timeout_ms: int = 1000
    threads: int = 1

    @property
    def label(self) -> str:
        return f"balance {self.balance} error-limit {self.error_limit}"


def _ms(value: int) -> str:
    return f"{value}ms"


def _render(template: str, **values: object) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(values)


def _identifier(name: str) -> str:
    """A scenario name usable as an nginx upstream or HAProxy backend name."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    return f"site_{cleaned}"


def nginx_config(prefix: Path, sites: list[Site], tuning: NginxTuning = NginxTuning()) -> str:
    """nginx.conf for `nginx -p prefix -c conf -g 'daemon off;'`: every path inside prefix."""
    if not sites:
        raise ValueError("nginx needs at least one site")
    if int(tuning.fail_timeout_s) != tuning.fail_timeout_s or tuning.fail_timeout_s < 1:
        raise ValueError(f"nginx's fail_timeout takes whole seconds >= 1, got "
                         f"{tuning.fail_timeout_s}")
    blocks = []
    for site in sites:
        servers = "\n".join(
            f"        server {upstream} max_fails={tuning.max_fails} "
            f"fail_timeout={tuning.fail_timeout_s}s;" for upstream in site.upstreams)
        blocks.append(_render("nginx-site.tmpl", name=_identifier(site.name),
                              listen_port=site.listen_port, servers=servers,
                              connect_timeout=_ms(tuning.connect_timeout_ms),
                              read_timeout=_ms(tuning.read_timeout_ms)))
    return _render("nginx.conf.tmpl", workers=tuning.workers, prefix=prefix,
                   sites="\n".join(blocks))


def haproxy_config(sites: list[Site], tuning: HaproxyTuning = HaproxyTuning()) -> str:
    """haproxy.cfg for `haproxy -f cfg -db` (foreground, no pid file, no chroot)."""
    if not sites:
        raise ValueError("HAProxy needs at least one site")
    blocks = []
    for site in sites:
        servers = "\n".join(f"    server s{index} {upstream}"
                            for index, upstream in enumerate(site.upstreams))
        blocks.append(_render("haproxy-site.tmpl", name=_identifier(site.name),
                              listen_port=site.listen_port, balance=tuning.balance,
                              check_interval=_ms(tuning.check_interval_ms),
                              error_limit=tuning.error_limit, servers=servers))
    return _render("haproxy.cfg.tmpl", threads=tuning.threads,
                   connect_timeout=_ms(tuning.connect_timeout_ms),
                   server_timeout=_ms(tuning.server_timeout_ms), sites="\n".join(blocks))
