"""Running the peers: nginx, HAProxy and banditlb as foreground child processes on 127.0.0.1.

Each peer serves a set of sites (one scenario each) and hands back one URL per site.
nginx and HAProxy come from Debian's packages, installed here when missing.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers.configs import HaproxyTuning, NginxTuning, Site, haproxy_config, nginx_config

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
DEBIAN_PACKAGES = ("nginx", "haproxy")


def log(text: str) -> None:
    """A benchmark's progress line, stamped with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class PeerError(RuntimeError):
    """A peer could not be installed or started; the message says which and why."""


def ensure_installed(packages: tuple[str, ...] = DEBIAN_PACKAGES) -> dict[str, str]:
    """Install these programs (nginx and HAProxy by default) from Debian's packages when
    missing; their versions."""
    missing = [name for name in packages if shutil.which(name) is None
               and not Path(f"/usr/sbin/{name}").exists()]
    if missing:
        print(f"installing {' '.join(missing)} from Debian's packages", flush=True)
        try:
            subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                           f"apt-get install -y -qq {' '.join(packages)} >/dev/null",
                           shell=True, check=True)
        except subprocess.CalledProcessError as exc:
            raise PeerError(f"could not install {', '.join(missing)} with apt-get (exit "
                            f"{exc.returncode}); install them by hand and run again") from exc
    return {name: package_version(name) for name in packages}


def package_version(name: str) -> str:
    """The Debian package version, e.g. '2.6.12-1+deb12u4'."""
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True,
                          text=True)
    return done.stdout.strip() or "unknown"


def binary(name: str) -> str:
    found = shutil.which(name) or f"/usr/sbin/{name}"
    if not Path(found).exists():
        raise PeerError(f"{name} is not installed (apt-get install {name})")
    return found


_HANDED_OUT: set[int] = set()
_PORTS_LOCK = threading.Lock()


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free right now and never handed out before by this process.

    All are held open until all are found: the kernel may give a just-closed port again,
    and two sites of one nginx on the same port would silently share one server block.
    """
    with _PORTS_LOCK, ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            sock = held.enter_context(socket.socket())
            sock.bind((host, 0))
            port = sock.getsockname()[1]
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                ports.append(port)
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (the peer binds it a moment later)."""
    return free_ports(1, host)[0]


def sites_on_free_ports(upstreams: dict[str, list[str]]) -> list[Site]:
    """One site per scenario, each on its own free port."""
    ports = free_ports(len(upstreams))
    return [Site(name, port, servers) for (name, servers), port
            in zip(upstreams.items(), ports, strict=True)]


@dataclass
class PeerHandle:
    """A running peer: the URL of each of its sites, and how to stop it."""

    name: str
    urls: dict[str, str]
    """Scenario name -> the URL to POST ids to."""
    pids: list[int] = field(default_factory=list)
    _stop: Callable[[], None] = lambda: None

    def stop(self) -> None:
        stop, self._stop = self._stop, lambda: None
        stop()

    def __enter__(self) -> PeerHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _start_foreground(name: str, args: list[str], ports: list[int], log: Path,
                      stop_signal: signal.Signals) -> tuple[subprocess.Popen, Callable[[], None]]:
    """Start `args`, wait until every port accepts; PeerError with the log's tail if not."""
    with log.open("wb") as out:
        child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    def stop() -> None:
        if child.poll() is None:
            child.send_signal(stop_signal)
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(ports)
    while waiting:
        if child.poll() is not None or time.monotonic() > deadline:
            stop()
            tail = log.read_text(errors="replace")[-1500:]
            raise PeerError(f"{name} did not start (exit {child.returncode}):\n{tail}")
        waiting = [port for port in waiting if not _accepts(port)]
        if waiting:
            time.sleep(0.05)
    return child, stop


def start_nginx(sites: list[Site], tuning: NginxTuning) -> PeerHandle:
    """nginx in the foreground with its own prefix (pid, logs, temp paths) in a temp dir."""
    workdir = Path(tempfile.mkdtemp(prefix="banditlb-nginx-"))
    workdir.chmod(0o755)  # nginx's workers drop root privileges and must reach the prefix
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(workdir, sites, tuning))
    args = [binary("nginx"), "-p", str(workdir), "-c", str(conf),
            "-e", str(workdir / "error.log"), "-g", "daemon off;"]
    with _removed_on_error(workdir):
        child, stop = _start_foreground("nginx", args, [s.listen_port for s in sites],
                                        workdir / "stdout.log", signal.SIGQUIT)
    return PeerHandle("nginx", _urls(sites), [child.pid], _cleanup(stop, workdir))


def start_fast_upstream(port: int) -> PeerHandle:
    """One nginx worker answering every request 200 with two bytes: an upstream so fast
    that what is measured in front of it is the proxy."""
    workdir = Path(tempfile.mkdtemp(prefix="banditlb-fast-"))
    workdir.chmod(0o755)
    conf = workdir / "nginx.conf"
    temp = " ".join(f"{kind}_temp_path {workdir}/{kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"worker_processes 1; pid {workdir}/nginx.pid;\n"
                    f"events {{ worker_connections 4096; }}\n"
                    f"http {{ access_log off; {temp} keepalive_requests 1000000;\n"
                    f"  server {{ listen 127.0.0.1:{port};\n"
                    f"    location / {{ return 200 'ok'; }} }} }}\n")
    args = [binary("nginx"), "-p", str(workdir), "-c", str(conf),
            "-e", str(workdir / "error.log"), "-g", "daemon off;"]
    with _removed_on_error(workdir):
        child, stop = _start_foreground("nginx", args, [port], workdir / "stdout.log",
                                        signal.SIGQUIT)
    return PeerHandle("upstream", {"fast": f"http://127.0.0.1:{port}/"}, [child.pid],
                      _cleanup(stop, workdir))


def start_redis(port: int) -> PeerHandle:
    """A redis-server on loopback for shared state: no persistence, its own temp dir."""
    workdir = Path(tempfile.mkdtemp(prefix="banditlb-redis-"))
    args = [binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    with _removed_on_error(workdir):
        child, stop = _start_foreground("redis-server", args, [port], workdir / "redis.log",
                                        signal.SIGTERM)
    return PeerHandle("redis", {"redis": f"redis://127.0.0.1:{port}"}, [child.pid],
                      _cleanup(stop, workdir))


def start_haproxy(sites: list[Site], tuning: HaproxyTuning) -> PeerHandle:
    """HAProxy in the foreground (-db) with its config in a temp dir; checked before start."""
    workdir = Path(tempfile.mkdtemp(prefix="banditlb-haproxy-"))
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(haproxy_config(sites, tuning))
    args = [binary("haproxy"), "-f", str(cfg), "-db"]
    with _removed_on_error(workdir):
        check = subprocess.run([binary("haproxy"), "-c", "-q", "-f", str(cfg)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise PeerError(f"HAProxy rejects the generated config:\n{check.stderr}")
        child, stop = _start_foreground("haproxy", args, [s.listen_port for s in sites],
                                        workdir / "haproxy.log", signal.SIGUSR1)
    return PeerHandle("haproxy", _urls(sites), [child.pid], _cleanup(stop, workdir))


def start_banditlb(upstreams: dict[str, list[str]], *, strategy: str = "auto", seed: int = 0,
                   penalty_weight: float = 1.0) -> PeerHandle:
    """One `banditlb lb` process per scenario (a balancer learns one set of upstreams)."""
    from banditlb.balancer.runner import start_lb_process

    data_dir = Path(tempfile.mkdtemp(prefix="banditlb-lb-"))
    with ExitStack() as stack:
        urls, pids = {}, []
        for name, servers in upstreams.items():
            handle = stack.enter_context(start_lb_process(
                servers, strategy=strategy, data_dir=data_dir / name, seed=seed,
                penalty_weight=penalty_weight, scenario=name))
            urls[name] = f"{handle.url}/"
            pids.append(handle.process.pid)
        stopper = stack.pop_all()
    return PeerHandle(f"banditlb {strategy}", urls, pids, _cleanup(stopper.close, data_dir))


@contextmanager
def _removed_on_error(workdir: Path) -> Iterator[None]:
    """A peer that fails to start leaves no temp dir behind (its error carries the log)."""
    try:
        yield
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _urls(sites: list[Site]) -> dict[str, str]:
    return {site.name: f"http://127.0.0.1:{site.listen_port}/" for site in sites}


def _cleanup(stop: Callable[[], None], workdir: Path) -> Callable[[], None]:
    def stop_and_remove() -> None:
        try:
            stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    return stop_and_remove


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx's workers are children of its master)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def pin(pids: list[int], cpus: str) -> None:
    """Pin every thread of every process in the trees of `pids` to `cpus` (taskset list)."""
    for root in pids:
        for pid in process_tree(root):
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True,
                           capture_output=True)
