"""Slowloris: a request head trickled in too slowly gets 408 and its connection closes."""

from __future__ import annotations

import socket

from banditlb.balancer import protocol
from banditlb.balancer.runner import start_lb_thread


def test_a_head_not_complete_in_time_gets_408_and_is_closed(fleet_t1, tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT_S", 0.5)
    with start_lb_thread(fleet_t1.upstreams("T1"), data_dir=tmp_path) as lb:
        port = int(lb.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(b"POST / HTTP/1.1\r\nHost: lb\r\nX-Slow: ")
            answer = b""
            while chunk := slow.recv(4096):  # without the deadline: socket.timeout here
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ")
        # A client that finishes its head in time is served as usual.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as quick:
            quick.sendall(b"GET /health HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
            assert quick.recv(4096).startswith(b"HTTP/1.1 200 ")
