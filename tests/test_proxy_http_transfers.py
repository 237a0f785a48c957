"""Big transfers through the http contract, byte for byte: a 50 MB download from a real
nginx serving a file, a 10 MB upload to a uvicorn app, with httpx, curl and aiohttp."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from banditlb.balancer.runner import start_lb_thread
from upstreams import serve

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DOWNLOAD_BYTES = 50 * 1024 * 1024
UPLOAD_BYTES = 10 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def nginx_files():
    """nginx on 127.0.0.1 serving one 50 MB file of random bytes; (port, sha256)."""
    root = Path(tempfile.mkdtemp(prefix="banditlb-files-"))
    root.chmod(0o755)
    blob = os.urandom(DOWNLOAD_BYTES)
    (root / "big.bin").write_bytes(blob)
    (root / "big.bin").chmod(0o644)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(f"""daemon off; pid {root}/nginx.pid; error_log stderr warn;
events {{ worker_connections 256; }}
http {{ access_log off; client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
    child = subprocess.Popen([NGINX, "-p", str(root), "-c", str(conf)])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or child.poll() is not None:
                child.kill()
                raise RuntimeError("nginx did not start") from None
            time.sleep(0.05)
    try:
        yield port, hashlib.sha256(blob).hexdigest()
    finally:
        child.terminate()
        child.wait(10)
        shutil.rmtree(root, ignore_errors=True)


async def hashing_app(scope, receive, send):
    """Answers with the sha256 and length of the request body it read."""
    if scope["type"] != "http":
        return
    digest, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        digest.update(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    out = f"{digest.hexdigest()} {size}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(out))]})
    await send({"type": "http.response.body", "body": out})


def test_a_50_mb_download_arrives_byte_for_byte_with_curl_httpx_and_aiohttp(nginx_files,
                                                                              tmp_path):
    port, expected = nginx_files
    with start_lb_thread([f"http://127.0.0.1:{port}"], data_dir=tmp_path) as proxy:
        url = proxy.url + "/big.bin"
        out = tmp_path / "curl.bin"
        subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True, timeout=60)
        by_curl = hashlib.sha256(out.read_bytes()).hexdigest()
        digest = hashlib.sha256()
        with httpx.stream("GET", url, timeout=60) as answer:
            for chunk in answer.iter_raw():
                digest.update(chunk)
            length = int(answer.headers["content-length"])

        async def with_aiohttp() -> str:
            h = hashlib.sha256()
            async with aiohttp.ClientSession() as session, session.get(url) as answer:
                async for chunk in answer.content.iter_chunked(1 << 16):
                    h.update(chunk)
            return h.hexdigest()

        by_aiohttp = asyncio.run(with_aiohttp())
    assert length == DOWNLOAD_BYTES
    assert by_curl == digest.hexdigest() == by_aiohttp == expected


def test_a_10_mb_upload_arrives_byte_for_byte(tmp_path):
    blob = os.urandom(UPLOAD_BYTES)
    expected = f"{hashlib.sha256(blob).hexdigest()} {len(blob)}"
    with serve(hashing_app) as port, \
            start_lb_thread([f"http://127.0.0.1:{port}"], data_dir=tmp_path) as proxy:
        # with a length (streams: larger than max_retry_body) and chunked (a generator)
        sized = httpx.put(proxy.url + "/up", content=blob, timeout=60)
        chunked = httpx.put(proxy.url + "/up", timeout=60,
                            content=(blob[i:i + (1 << 20)] for i in range(0, len(blob), 1 << 20)))
        src = tmp_path / "up.bin"
        src.write_bytes(blob)
        by_curl = subprocess.run(["curl", "-sS", "--fail", "-T", str(src), proxy.url + "/up"],
                                 check=True, capture_output=True, timeout=60).stdout.decode()
    assert sized.text == chunked.text == by_curl == expected
