"""Composition root of ``screener run``: settings → screener → worker (+ metrics)."""

from __future__ import annotations

import gc
import logging
import sys
from typing import Callable

from .. import compact
from ..errors import ConfigError
from ..judge import Engine
from ..settings import Settings

log = logging.getLogger("screener.run")


def configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
    # kafka-python logs every failed reconnect (10 per second while a broker is
    # down); the worker reports connection state itself, once per change.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def run_worker(settings: Settings, worker_id: str = "") -> int:
    """One worker process; serves metrics itself unless it is a supervised child."""
    configure_logging()
    from . import metrics
    from .liveness import BrokerWatch, kafka_python_probe
    from .worker import Worker

    engine = Engine.build(settings.lexicons, settings.policy_path, settings.matcher, settings.cache_dir)
    compact.load()  # a worker folds for days: numba now, not in the first batch (screener/compact.py)
    log.info("worker %s: matcher %s, lexicon %s version %s (%d terms), policy %s version %s, input %s, group %s",
             worker_id or settings.worker_id, engine.matcher_name, settings.lexicons, engine.lexicon_version,
             engine.posts.lexicons.term_count, settings.policy_path, engine.policy_version,
             settings.input_topic, settings.group_id)
    for warning in engine.policy.warnings:
        log.warning("policy: %s", warning)
    # Lexicon, matcher tables and jieba's dictionary live as long as the
    # process: take them out of the cyclic GC's full passes, which otherwise
    # walk them again and again while the loop allocates per record.
    gc.collect()
    gc.freeze()
    health = metrics.Health(settings.broker_timeout_s)
    worker = Worker(settings, engine, health)
    worker.install_signals()
    if settings.metrics_port:
        serve_metrics(settings, lambda: (health.alive(), "alive" if health.alive() else "main loop stalled"),
                      health.readiness)
    # Evidence that the broker answers while the worker idles; the client
    # seam may offer a probe on its own connection instead (liveness.Probe).
    watch = BrokerWatch(health, kafka_python_probe(settings.bootstrap_servers, settings.kafka)).start()
    try:
        return worker.run()
    finally:
        watch.stop()


def serve_metrics(settings: Settings, alive: Callable[[], tuple[bool, str]],
                  ready: Callable[[], tuple[bool, str]]) -> None:
    """Start /metrics, /healthz and /readyz; a port that cannot be bound is a
    clear error before any record is consumed."""
    from . import metrics

    try:
        server = metrics.serve(settings.metrics_host, settings.metrics_port, alive, ready)
    except OSError as exc:
        raise ConfigError(f"metrics_port: cannot serve on {settings.metrics_host}:{settings.metrics_port}: "
                          f"{exc.strerror or exc} (another process? --metrics-port 0 turns it off)") from None
    log.info("metrics on %s:%d", *server.server_address[:2])


def run(settings: Settings) -> int:
    if settings.workers > 1:
        configure_logging()
        from .supervisor import run_supervised

        return run_supervised(settings)
    return run_worker(settings)
