"""The nginx and HAProxy configs the peer benchmark generates: content, and the real
binaries' own syntax checks when they are installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers.configs import (  # noqa: E402
    HaproxyTuning,
    NginxTuning,
    Site,
    haproxy_config,
    nginx_config,
)
from bench.peers.processes import sites_on_free_ports  # noqa: E402
from bench.peers.tuning import NGINX_CANDIDATES  # noqa: E402

SITES = [Site("T1", 18080, ["127.0.0.1:4000", "127.0.0.1:4001"]),
         Site("drift", 18081, ["127.0.0.1:4100"])]


def test_nginx_config_has_the_honest_best_settings(tmp_path):
    conf = nginx_config(tmp_path, SITES, NginxTuning(max_fails=3, fail_timeout_s=10))
    assert "listen 127.0.0.1:18080;" in conf and "listen 127.0.0.1:18081;" in conf
    assert "server 127.0.0.1:4001 max_fails=3 fail_timeout=10s;" in conf
    for line in ("zone site_T1 64k;", "keepalive 32;", "proxy_http_version 1.1;",
                 'proxy_set_header Connection "";', "proxy_next_upstream_tries 3;",
                 "proxy_next_upstream error timeout http_500 http_502 http_503 http_504 "
                 "http_429 non_idempotent;", "proxy_read_timeout 1000ms;"):
        assert line in conf
    assert f"pid {tmp_path}/nginx.pid;" in conf
    assert "/var/" not in conf  # every path stays inside the prefix


def test_nginx_fail_timeout_must_be_whole_seconds(tmp_path):
    with pytest.raises(ValueError, match="whole seconds"):
        nginx_config(tmp_path, SITES[:1], NginxTuning(fail_timeout_s=0.5))


def test_haproxy_config_has_retries_checks_and_ejection():
    cfg = haproxy_config(SITES, HaproxyTuning(balance="leastconn", error_limit=3))
    for line in ("retries 2", "option redispatch 1",
                 "retry-on conn-failure empty-response response-timeout 500 502 503 504",
                 "balance leastconn", "option httpchk GET /health",
                 "bind 127.0.0.1:18081", "server s1 127.0.0.1:4001"):
        assert line in cfg
    assert "observe layer7 error-limit 3 on-error mark-down" in cfg
    assert "429" not in cfg.split("retry-on", 1)[1].splitlines()[0]


def test_a_config_needs_a_site(tmp_path):
    with pytest.raises(ValueError, match="at least one site"):
        nginx_config(tmp_path, [])
    with pytest.raises(ValueError, match="at least one site"):
        haproxy_config([])


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                    reason="nginx is not installed (make bench-peers installs it)")
@pytest.mark.parametrize("tuning", NGINX_CANDIDATES, ids=lambda t: t.label)
def test_nginx_accepts_every_candidate_config(tmp_path, tuning):
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(tmp_path, SITES, tuning))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    done = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf),
                           "-e", str(tmp_path / "error.log")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists(),
                    reason="HAProxy is not installed (make bench-peers installs it)")
@pytest.mark.parametrize("balance", ["random(2)", "leastconn"])
def test_haproxy_accepts_the_config(tmp_path, balance):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config(SITES, HaproxyTuning(balance=balance)))
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    done = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_sites_get_distinct_ports_never_handed_out_twice():
    upstreams = {f"s{n}": ["127.0.0.1:4000"] for n in range(50)}
    first = [site.listen_port for site in sites_on_free_ports(upstreams)]
    second = [site.listen_port for site in sites_on_free_ports(upstreams)]
    assert len(set(first + second)) == 100
