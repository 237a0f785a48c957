"""Rate-limit fields through the live balancer: absurd ones are ignored and counted."""

from __future__ import annotations

import http.server
import threading

import httpx

from banditlb.balancer.runner import start_lb_thread


class AbsurdFields(http.server.BaseHTTPRequestHandler):
    """Accepts every id, and says it has -5 requests left, resetting in 1970."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (the http.server naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("X-RateLimit-Remaining", "-5")
        self.send_header("X-RateLimit-Reset", "Thu, 01 Jan 1970 00:00:00 GMT")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_absurd_fields_are_ignored_and_counted_in_metrics(tmp_path):
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AbsurdFields)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"127.0.0.1:{upstream.server_address[1]}"
        with start_lb_thread([address], strategy="auto", data_dir=tmp_path) as lb, \
                httpx.Client(base_url=lb.url, timeout=10) as client:
            answers = [client.post("/", json={"id": f"absurd{n:018d}"}) for n in range(5)]
            metrics = client.get("/metrics").text
            beliefs = client.get("/stats").json()["beliefs"]
    finally:
        upstream.shutdown()
        upstream.server_close()
    # ignored: the upstream keeps admitting and auto keeps sending to it
    assert [a.status_code for a in answers] == [200] * 5
    assert beliefs["budget_left"] == [None]
    counted = [line for line in metrics.splitlines()
               if line.startswith("banditlb_rate_limit_field_problems_total")]
    assert counted and all(line.endswith(" 5.0") for line in counted)
    assert any('field="x-ratelimit-remaining"' in line for line in counted)
