"""``screener run --workers N``: N worker processes in one consumer group.

Kafka partitions give the parallelism: each process is an ordinary group
member, so N processes here and M on other machines share the partitions.
The supervisor serves the metrics of all of them (prometheus-client's
multiprocess mode), answers /healthz and /readyz for the set, forwards
SIGTERM/SIGINT/SIGHUP, and restarts a process that dies (with backoff).

A process that fails on its first start, before its engine and clients are
made, with a problem the operator must fix (exit 2: a bad lexicon, policy,
client option or setting; every restart would fail the same way) stops the
set with exit 2, as ``screener run`` without ``--workers``
does. On a later restart the same failure is retried instead: its siblings
still serve the version they built, and the operator may be mid-edit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from dataclasses import fields
from typing import Any, Mapping

from ..errors import USAGE, report
from ..settings import Settings

log = logging.getLogger("screener.supervisor")


def start(settings: Settings) -> int:
    """``screener run``: one worker process, or N under this supervisor."""
    from .run import configure_logging, run_worker

    if settings.workers > 1:
        configure_logging()
        return run_supervised(settings)
    return run_worker(settings)


def _settings_dict(settings: Settings) -> dict[str, Any]:
    return {f.name: (dict(v) if isinstance(v, Mapping) else v)  # the [kafka*] tables: picklable
            for f in fields(settings) for v in [getattr(settings, f.name)]}


def _child(settings: dict[str, Any], index: int, parent: int, built: Any) -> None:
    os.environ["SCREENER_WORKER_CHILD"] = "1"
    _stop_with(parent)
    from .run import run_worker

    # Each child names itself in audit records: the parent's id plus its index.
    settings.update(workers=1, metrics_port=0, worker_id=f"{settings['worker_id']}/{index}")
    try:
        code = run_worker(Settings(**settings), worker_id=settings["worker_id"], on_built=built.set)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group, children included
        code = 130
    except Exception as exc:  # noqa: BLE001 - one line, as the command line reports it; the exit status says which
        code = report(exc, "run")
    raise SystemExit(code)


def _stop_with(parent: int) -> None:
    """Be sent SIGTERM when the supervisor dies, ``kill -9`` included (Linux's
    ``PR_SET_PDEATHSIG``): its children kept consuming as orphans, and a
    restarted supervisor added N more group members (found by a
    hostile-input probe). Elsewhere nothing is done."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1
#: A child that ran this long before it died is restarted after the shortest back-off again.
HEALTHY_S = 60.0


def restart_backoff(restarts: int, lived_s: float) -> tuple[float, int]:
    """Seconds to wait before restarting a child that died after ``lived_s``
    seconds, having been restarted ``restarts`` times in a row; and the new
    count. 1 s, 2 s, ... up to 10 s for a child that keeps dying; a child
    that had run healthily for :data:`HEALTHY_S` starts over at 1 s (the
    back-off never came down again before).

    >>> restart_backoff(0, 5.0), restart_backoff(3, 5.0), restart_backoff(30, 5.0), restart_backoff(30, 3600.0)
    ((1.0, 1), (4.0, 4), (10.0, 31), (1.0, 1))
    """
    if lived_s >= HEALTHY_S:
        restarts = 0
    return min(10.0, 1.0 + restarts), restarts + 1


def run_supervised(settings: Settings) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="screener-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from prometheus_client import multiprocess

    from . import metrics

    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited client sockets
    config = _settings_dict(settings)
    processes: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = {"flag": False}
    restarts: dict[int, int] = {}  # restarts in a row per child (restart_backoff); none yet: its first start
    started: dict[int, float] = {}
    built: dict[int, Any] = {}  # set by the child once its engine and clients are made

    def start(index: int) -> None:
        built[index] = context.Event()
        process = context.Process(target=_child, args=(config, index, os.getpid(), built[index]),
                                  name=f"screener-worker-{index}")
        process.start()
        processes[index] = process
        started[index] = time.monotonic()
        log.info("worker %d started (pid %d)", index, process.pid)

    def forward(signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping["flag"] = True
        for process in processes.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)

    def ready() -> tuple[bool, str]:
        total = _gauge_sum(metrics.registry(), "screener_worker_ready")
        return total >= settings.workers, f"{int(total)}/{settings.workers} workers ready"

    def alive() -> tuple[bool, str]:
        up = sum(1 for p in processes.values() if p.is_alive())
        return up == settings.workers, f"{up}/{settings.workers} workers running"

    if settings.metrics_port:
        from .run import serve_metrics

        serve_metrics(settings, alive, ready)
    for index in range(settings.workers):
        start(index)
    codes: dict[int, int] = {}
    fatal = False
    try:
        while True:
            for index, process in list(processes.items()):
                if process.is_alive() or index in codes:
                    continue
                multiprocess.mark_process_dead(process.pid)
                if index not in restarts and process.exitcode == USAGE and not built[index].is_set():
                    log.error("worker %d could not start (exit 2: see its message above); stopping", index)
                    fatal = stopping["flag"] = True
                    forward(signal.SIGTERM, None)
                if stopping["flag"]:
                    codes[index] = process.exitcode or 0
                    continue
                log.error("worker %d (pid %d) exited with %s; restarting", index, process.pid, process.exitcode)
                wait, restarts[index] = restart_backoff(restarts.get(index, 0), time.monotonic() - started[index])
                backoff = time.monotonic() + wait
                while time.monotonic() < backoff and not stopping["flag"]:
                    time.sleep(0.1)
                if stopping["flag"]:  # a stop during the back-off: a child started now would never hear of it
                    codes[index] = process.exitcode or 0
                    continue
                start(index)
            if stopping["flag"] and len(codes) == len(processes):
                break
            time.sleep(0.2)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if fatal:
        return USAGE
    return 0 if all(code == 0 for code in codes.values()) else 1


def _gauge_sum(registry: Any, name: str) -> float:
    return sum(
        sample.value
        for family in registry.collect() if family.name == name
        for sample in family.samples if sample.name == name
    )
