"""Composition root of one ``screener run`` process: settings → screener → worker (+ metrics).

Whether one process runs or a supervisor of N is decided in
:func:`screener.stream.supervisor.start`, which imports this module (never
the other way round).
"""

from __future__ import annotations

import gc
import logging
import signal
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
    from .clients import quiet_logs

    quiet_logs()


def run_worker(settings: Settings, worker_id: str = "", on_built: Callable[[], None] = lambda: None) -> int:
    """One worker process; serves metrics itself unless it is a supervised child
    (``on_built``: told once the engine is built and the clients are made
    and subscribed, for the supervisor: a setting that fails after that is
    no first-start error)."""
    early = _StartupSignals().install()  # first: the imports and the build take seconds
    configure_logging()
    from . import metrics
    from .clients import client_of, probe
    from .liveness import BrokerWatch
    from .worker import Worker

    engine = Engine.build(settings.lexicons, settings.policy_path, settings.matcher, settings.cache_dir)
    compact.load()  # a worker folds for days: numba now, not in the first batch (screener/compact.py)
    # jieba's dictionary and its trie (~1.3 s, process-wide) too: loaded by
    # the first hit that needs a word-boundary check, they stalled that
    # batch and every record queued behind it (p99 at half load, issue 11).
    engine.posts.verifier.warm()
    engine.posts.pinyin.warm()  # and the pinyin pass's tables (~0.1 s at 50k terms)
    log.info("worker %s: %s, matcher %s, lexicon %s version %s (%d terms), policy %s version %s, input %s, group %s",
             worker_id or settings.worker_id, client_of(settings), engine.matcher_name, settings.lexicons, engine.lexicon_version,
             engine.posts.lexicons.term_count, settings.policy_path or "none", engine.policy_version,
             settings.input_topic, settings.group_id)
    for warning in engine.policy.warnings:
        log.warning("policy: %s", warning)
    # Lexicon, matcher tables and jieba's dictionary live as long as the
    # process: take them out of the cyclic GC's full passes, which otherwise
    # walk them again and again while the loop allocates per record.
    gc.collect()
    gc.freeze()
    health = metrics.Health(settings.broker_timeout_s)
    worker = Worker(settings, engine, health, on_started=on_built)
    worker.install_signals()
    if early.stop:  # asked to stop while starting: nothing consumed, nothing to commit
        log.info("stop requested during start-up: exiting before joining the group")
        return 0
    if settings.metrics_port:
        serve_metrics(settings, lambda: (health.alive(), "alive" if health.alive() else "main loop stalled"),
                      health.readiness)
    # Evidence that the broker answers while the worker idles, asked on a
    # connection of its own in the chosen client (liveness.Probe).
    watch = BrokerWatch(health, probe(settings)).start()
    try:
        return worker.run()
    finally:
        watch.stop()


class _StartupSignals:
    """Signals that arrive while the worker builds its engine (seconds, on a
    cold compile of a large lexicon). Python's defaults killed the process:
    SIGHUP, the reload signal, as -1 (in ``--workers`` mode the supervisor
    forwards it to every child) and SIGTERM as -15 with no log line (found by
    a hostile-input probe). A stop is remembered and honoured once built; a
    reload asks for nothing, the engine being built is the newest."""

    def __init__(self) -> None:
        self.stop = False

    def install(self) -> "_StartupSignals":
        def stop(*_: object) -> None:
            self.stop = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return self


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
