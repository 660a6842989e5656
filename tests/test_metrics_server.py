"""The metrics endpoint under idle, slow and impatient clients: real sockets."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("prometheus_client")

from screener.stream import metrics


@pytest.fixture
def server():
    """A metrics server with a short request timeout; yields (server, port)."""
    started = metrics.serve("127.0.0.1", 0, lambda: (True, "alive"), lambda: (False, "not assigned"), timeout=1.0)
    yield started, started.server_address[1]
    started.shutdown()
    started.server_close()


def _get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as answer:
            return answer.status, answer.read(), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), time.monotonic() - started


def _server_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("metrics-http"))


@pytest.mark.parametrize("path,code,body", [
    ("/metrics", 200, b"screener_posts_total"),
    ("/healthz", 200, b"alive\n"),
    ("/readyz", 503, b"not assigned\n"),
    ("/nothing", 404, b"not found\n"),
])
def test_endpoints(server, path, code, body):
    _, port = server
    status, content, _ = _get(port, path)
    assert status == code and body in content


def test_idle_connections_hold_no_threads_and_do_not_delay_a_scrape(server):
    """2,000 connections that never send a byte: ThreadingHTTPServer held a
    thread for each, for as long as they stayed open."""
    _, port = server
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2000)]
    try:
        status, content, seconds = _get(port, "/metrics")
        assert status == 200 and b"screener_posts_total" in content
        assert seconds < 3.0
        assert _server_threads() <= 1 + metrics.WORKERS
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_never_finishes_its_request_is_closed(server):
    """Slow clients wait in the accepting thread, and only until the timeout (1 s here)."""
    _, port = server
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    for sock in slow:
        sock.sendall(b"GET /metr")  # and nothing more
    try:
        assert _get(port, "/healthz")[::2] == (200, pytest.approx(0, abs=3.0))
        for sock in slow:
            sock.settimeout(5.0)
            assert sock.recv(100) == b""  # closed by the server
    finally:
        for sock in slow:
            sock.close()


def test_the_oldest_waiting_connection_makes_room():
    started = metrics.serve("127.0.0.1", 0, lambda: (True, "alive"), lambda: (True, "ready"), max_waiting=10)
    port = started.server_address[1]
    try:
        first = socket.create_connection(("127.0.0.1", port))
        later = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
        first.settimeout(5.0)
        assert first.recv(100) == b""  # the oldest was closed for the tenth newcomer
        assert _get(port, "/readyz")[:2] == (200, b"ready\n")
        for sock in [first, *later]:
            sock.close()
    finally:
        started.shutdown()
        started.server_close()


def _hang_up_hard(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a client that gave up does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_client_that_hangs_up_mid_answer_leaves_no_traceback(server, capfd, caplog):
    _, port = server
    caplog.set_level(logging.DEBUG, logger="screener.metrics")
    for _ in range(30):  # the reset races the answer: some land mid-write, some before it
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        _hang_up_hard(sock)
    # and one that hangs up for certain before the answer is written
    ours, theirs = socket.socketpair()
    theirs.close()
    server[0]._answer(metrics._Waiting(ours, ("test", 0), time.monotonic() + 1, bytearray(b"GET /metrics HTTP/1.0\r\n\r\n")))
    assert _get(port, "/healthz")[0] == 200  # still serving
    time.sleep(0.2)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert any("metrics client" in r.getMessage() for r in caplog.records)  # logged, quietly


def test_shutdown_stops_the_accepting_thread():
    started = metrics.serve("127.0.0.1", 0, lambda: (True, "alive"), lambda: (True, "ready"))
    port = started.server_address[1]
    assert _get(port, "/healthz")[0] == 200
    started.shutdown()
    started.server_close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).recv(1)


def test_health_beat_keeps_the_loop_alive():
    health = metrics.Health()
    health.heartbeat -= 120
    assert not health.alive()
    health.beat()
    assert health.alive() and not health.alive(stale_after=0.0)
