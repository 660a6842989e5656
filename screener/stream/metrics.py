"""Prometheus metrics and the /metrics, /healthz, /readyz HTTP endpoints.

Naming follows Prometheus conventions: base units (seconds), ``_total`` for
counters, ``_info`` for versions, and no unbounded labels (never a post id,
an account id or a term; categories and partitions are bounded by
configuration). With ``--workers N`` every process writes to
prometheus-client's multiprocess directory and the supervisor serves the sum;
each gauge says how processes combine.
"""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Sub-millisecond buckets: one batch of a few thousand posts screens in ~1-20 ms.
BATCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

POSTS_CONSUMED = Counter("screener_posts_consumed_total", "Records consumed from the input topic")
POSTS = Counter("screener_posts_total", "Posts by outcome", ["outcome"])
HITS = Counter("screener_hits_total", "Kept hits by lexicon category", ["category"])
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

    def alive(self, stale_after: float = 60.0) -> bool:
        return time.monotonic() - self.heartbeat < stale_after


def serve(host: str, port: int, is_alive: Callable[[], tuple[bool, str]], is_ready: Callable[[], tuple[bool, str]]) -> ThreadingHTTPServer:
    """Start the HTTP server in a daemon thread; returns it (``server_address`` has the port)."""
    served = registry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
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

        def log_message(self, *args: object) -> None:  # scrapes are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
