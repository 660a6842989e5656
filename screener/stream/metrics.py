"""Prometheus metrics and the /metrics, /healthz, /readyz HTTP endpoints.

Naming follows Prometheus conventions: base units (seconds), ``_total`` for
counters, ``_info`` for versions, and no unbounded labels (never a post id,
an account id or a term; categories and partitions are bounded by
configuration). With ``--workers N`` every process writes to
prometheus-client's multiprocess directory and the supervisor serves the sum;
each gauge says how processes combine.
"""

from __future__ import annotations

import io
import logging
import os
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Sub-millisecond buckets: one batch of a few thousand posts screens in ~1-20 ms.
BATCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

POSTS_CONSUMED = Counter("screener_posts_consumed_total", "Records consumed from the input topic")
POSTS = Counter("screener_posts_total", "Posts by outcome", ["outcome"])
HITS = Counter("screener_hits_total", "Kept hits by lexicon category", ["category"])
#: The label is bounded: one of screener.lexicon.model.VARIANT_KINDS.
HITS_BY_VARIANT = Counter("screener_hits_by_variant_total", "Kept hits by how the author wrote them", ["variant"])
EVENTS = Counter("screener_events_produced_total", "Events acknowledged by the broker, by action", ["action"])
BATCH_SECONDS = Histogram("screener_batch_screening_seconds", "Time to screen one poll batch", buckets=BATCH_BUCKETS)
LATENCY = Histogram(
    "screener_end_to_end_latency_seconds",
    "From the record's timestamp to its outcome being acknowledged", buckets=LATENCY_BUCKETS,
)
LAG = Gauge("screener_consumer_lag", "Records behind the partition's high watermark", ["topic", "partition"],
            multiprocess_mode="livesum")
COMMITS = Counter("screener_commits_total", "Offset commits that succeeded")
COMMIT_FAILURES = Counter("screener_commit_failures_total", "Offset commits that failed")
PRODUCE_FAILURES = Counter("screener_produce_failures_total", "Sends that failed and were retried")
REBALANCES = Counter("screener_rebalances_total", "Partition revocations and assignments", ["kind"])
LEXICON_INFO = Gauge("screener_lexicon_info", "The lexicon version in use (value 1)", ["version"],
                     multiprocess_mode="liveall")
LEXICON_TERMS = Gauge("screener_lexicon_terms", "Terms in the lexicon in use", multiprocess_mode="max")
RELOADS = Counter("screener_lexicon_reloads_total", "Lexicon versions loaded after start-up")
RELOAD_FAILURES = Counter("screener_lexicon_reload_failures_total", "Lexicon versions rejected")
OFFENDER_ACCOUNTS = Gauge("screener_offender_accounts", "Accounts with violations in the window, on owned partitions",
                          multiprocess_mode="livesum")
BLACKLISTED = Gauge("screener_blacklisted_accounts", "Blacklisted accounts on owned partitions", multiprocess_mode="livesum")
STATE_RESTORED = Counter("screener_offender_state_restored_total", "Changelog records read to restore offender state")
AUDIT_RECORDS = Counter("screener_audit_records_total", "Audit records acknowledged by the broker")
RESCANS = Counter("screener_rescans_total", "Rescans started after a new lexicon or policy version", ["outcome"])
UP = Gauge("screener_worker_up", "Worker processes running", multiprocess_mode="livesum")
READY = Gauge("screener_worker_ready", "Worker processes ready (assigned and connected)", multiprocess_mode="livesum")


def set_lexicon(version: str, terms: int, previous: str | None) -> None:
    if previous:
        LEXICON_INFO.labels(version=previous).set(0)
    LEXICON_INFO.labels(version=version).set(1)
    LEXICON_TERMS.set(terms)


def registry() -> CollectorRegistry:
    """The registry to serve: the process's own, or the multiprocess sum."""
    from prometheus_client import REGISTRY, multiprocess

    if "PROMETHEUS_MULTIPROC_DIR" in os.environ and not os.environ.get("SCREENER_WORKER_CHILD"):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return combined
    return REGISTRY


class Health:
    """What /healthz and /readyz answer; set by the worker loop."""

    def __init__(self) -> None:
        self.ready = False
        self.heartbeat = time.monotonic()
        self.reason = "starting"

    def beat(self) -> None:
        """The loop is alive: called once per turn, and from inside waits
        that may last (retrying a broker), so that they do not look stalled."""
        self.heartbeat = time.monotonic()

    def alive(self, stale_after: float = 60.0) -> bool:
        return time.monotonic() - self.heartbeat < stale_after


log = logging.getLogger("screener.metrics")

#: Threads that answer requests: a scrape takes milliseconds, so a few serve
#: any number of Prometheus servers and probes.
WORKERS = 4
#: Seconds a connection may take to send its request, and a socket operation
#: of the answer may take.
TIMEOUT_S = 5.0
#: Connections waiting for their request; beyond it the oldest is closed.
MAX_WAITING = 256
#: Bytes a request (line and headers) may have.
MAX_REQUEST_BYTES = 16 << 10


@dataclass(eq=False)
class _Waiting:
    """An accepted connection whose request is not complete yet."""

    sock: socket.socket
    address: Any
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class _Writer(io.RawIOBase):
    """The answer's stream: ``sendall``, which ``makefile`` does not promise."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(data)


class _RequestHandler(BaseHTTPRequestHandler):
    """A handler of a request already read in full: ``request`` is (socket, bytes)."""

    def setup(self) -> None:
        self.connection, head = self.request
        self.rfile = io.BytesIO(head)
        self.wfile = _Writer(self.connection)  # type: ignore[assignment]  # writes straight to the socket

    def finish(self) -> None:  # nothing is buffered
        pass

    def log_message(self, *args: object) -> None:  # scrapes are not news
        pass


class MetricsServer:
    """A small HTTP server that idle or slow clients cannot exhaust.

    ``ThreadingHTTPServer`` gave every connection a thread for as long as the
    client kept it open: 2,000 idle connections held 2,000 threads. Here one
    thread accepts connections and reads requests without blocking (a
    selector); only a complete request goes to one of ``workers`` threads,
    which answer it. A connection that has not sent its request within
    ``timeout`` seconds is closed, and so is the oldest one waiting when
    ``max_waiting`` are. A client that goes away mid-answer is not an error.
    """

    def __init__(self, address: tuple[str, int], handler: type[_RequestHandler], *, workers: int = WORKERS,
                 timeout: float = TIMEOUT_S, max_waiting: int = MAX_WAITING) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.create_server(address, family=family, backlog=128)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.handler, self.timeout, self.max_waiting = handler, timeout, max_waiting
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metrics-http-worker")
        self._selector = selectors.DefaultSelector()
        self._waiting: dict[socket.socket, _Waiting] = {}  # in the order accepted, so in deadline order
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(self._until_next_deadline()):
                    if key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._wake_r.recv(64)
                    else:
                        self._read(key.data)
                self._expire()
        finally:
            for waiting in list(self._waiting.values()):
                self._close(waiting)
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving; returns when the accepting thread has stopped."""
        self._stopping.set()
        self._wake_w.send(b"x")
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the accepting thread --------------------------------------------------------------
    def _until_next_deadline(self) -> float:
        if not self._waiting:
            return 1.0
        first = next(iter(self._waiting.values()))
        return min(1.0, max(0.0, first.deadline - time.monotonic()))

    def _accept(self) -> None:
        while True:
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: make room, try later
                log.warning("metrics server cannot accept a connection: %s", exc)
                if self._waiting:
                    self._close(next(iter(self._waiting.values())))
                return
            if len(self._waiting) >= self.max_waiting:
                self._close(next(iter(self._waiting.values())))
            sock.setblocking(False)
            waiting = _Waiting(sock, address, time.monotonic() + self.timeout)
            self._waiting[sock] = waiting
            self._selector.register(sock, selectors.EVENT_READ, waiting)

    def _read(self, waiting: _Waiting) -> None:
        try:
            data = waiting.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data or len(waiting.data) + len(data) > MAX_REQUEST_BYTES:
            self._close(waiting)
            return
        waiting.data += data
        if b"\r\n\r\n" in waiting.data or b"\n\n" in waiting.data:  # a GET ends with its headers
            self._selector.unregister(waiting.sock)
            del self._waiting[waiting.sock]
            self._pool.submit(self._answer, waiting)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._waiting:
            first = next(iter(self._waiting.values()))
            if first.deadline > now:
                return
            self._close(first)

    def _close(self, waiting: _Waiting) -> None:
        if self._waiting.pop(waiting.sock, None) is not None:
            self._selector.unregister(waiting.sock)
        waiting.sock.close()

    # -- the workers ---------------------------------------------------------------------
    def _answer(self, waiting: _Waiting) -> None:
        """Answer one complete request. A client that hung up or stalled is
        the client's business: logged at debug level, without a traceback."""
        sock = waiting.sock
        try:
            sock.setblocking(True)
            sock.settimeout(self.timeout)
            self.handler((sock, bytes(waiting.data)), waiting.address, self)  # type: ignore[arg-type]  # our own request shape
        except OSError as exc:  # BrokenPipeError, ConnectionResetError, TimeoutError
            log.debug("metrics client %s: %s", waiting.address, exc)
        except Exception:
            log.exception("metrics request from %s failed", waiting.address)
        finally:
            sock.close()


def serve(host: str, port: int, is_alive: Callable[[], tuple[bool, str]], is_ready: Callable[[], tuple[bool, str]],
          **options: Any) -> MetricsServer:
    """Start the HTTP server in a daemon thread; returns it (``server_address``
    has the port). ``options``: :class:`MetricsServer`'s ``workers``,
    ``timeout`` and ``max_waiting``."""
    served = registry()

    class Handler(_RequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, generate_latest(served), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ok, why = is_alive()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
            elif self.path.startswith("/readyz"):
                ok, why = is_ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = MetricsServer((host, port), Handler, **options)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
