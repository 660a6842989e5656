"""A hung broker is seen, an idle worker does not spin, probes that hang up
leave no traceback, and a first join is no rebalance (issue 11, item 4).

The freeze is real: the Tansu broker process gets SIGSTOP, so it keeps its
connections open and answers nothing, as a hung broker does. It has a broker
of its own, so that the other tests' broker is never frozen.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time

import pytest

from .conftest import Broker, consume, create_topics, posts, produce

pytestmark = pytest.mark.integration

BROKER_TIMEOUT_S = 5
FREEZE_S = 15


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_frozen_broker_turns_readyz_503_and_the_idle_worker_does_not_spin(workers):
    broker = Broker()
    try:
        topics = create_topics(broker.bootstrap)
        worker = workers(topics, "--broker-timeout-s", str(BROKER_TIMEOUT_S)).start()
        produce(topics.bootstrap, topics.input, posts([(1, "你个傻逼")]))
        worker.wait_metric("screener_posts_consumed_total", lambda v: v == 1)

        # Idle for longer than the timeout: the probe is the evidence, still ready.
        idle_until = time.monotonic() + 1.6 * BROKER_TIMEOUT_S
        while time.monotonic() < idle_until:
            assert worker.get("/readyz") == (200, "ready\n")
            time.sleep(0.5)

        os.kill(broker.process.pid, signal.SIGSTOP)
        frozen, cpu = time.monotonic(), cpu_seconds(worker.process.pid)
        status, why = worker.get("/readyz")
        while status == 200 and time.monotonic() - frozen < BROKER_TIMEOUT_S + 5:
            time.sleep(0.25)
            status, why = worker.get("/readyz")
        seen_after = time.monotonic() - frozen
        assert (status, why) == (503, f"broker has not answered for over {BROKER_TIMEOUT_S} s\n"), worker.log()
        assert seen_after <= BROKER_TIMEOUT_S + 1.5

        while time.monotonic() - frozen < FREEZE_S:
            assert worker.get("/readyz")[0] == 503
            time.sleep(0.5)
        share = (cpu_seconds(worker.process.pid) - cpu) / (time.monotonic() - frozen)
        assert share < 0.3, f"the idle worker used {share:.0%} of a core while the broker was frozen"
        print(f"503 after {seen_after:.1f} s of freeze; worker CPU {share:.1%} of a core over {FREEZE_S} s")

        os.kill(broker.process.pid, signal.SIGCONT)
        worker.wait_ready(60)
        produce(topics.bootstrap, topics.input, posts([(2, "你个傻逼")]))
        events = consume(topics.bootstrap, topics.events, lambda r: len(r) >= 2)
        assert len(events) == 2
        assert worker.terminate() == 0
        assert "Traceback" not in worker.log()
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
        broker.stop()


def _hang_up_hard(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a client that gave up does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_probes_that_hang_up_early_leave_no_traceback(topics, workers):
    worker = workers(topics).start()
    address = ("127.0.0.1", worker.metrics_port)
    socket.create_connection(address).close()  # connects, says nothing
    partial = socket.create_connection(address)
    partial.sendall(b"GET /readyz HTTP/1.1\r\nHost: worker")  # headers never finished
    partial.close()
    partial = socket.create_connection(address)
    partial.sendall(b"GET /rea")
    _hang_up_hard(partial)
    for path in ("/metrics", "/readyz", "/healthz") * 10:  # gone before the answer is read
        sock = socket.create_connection(address)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: worker\r\n\r\n".encode())
        _hang_up_hard(sock)
    half = socket.create_connection(address)
    half.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    half.shutdown(socket.SHUT_RDWR)
    half.close()
    time.sleep(1)
    assert worker.get("/readyz") == (200, "ready\n")  # still serving
    assert worker.terminate() == 0
    log = worker.log()
    assert "Traceback" not in log and "Exception" not in log and "ERROR" not in log, log


def test_the_first_join_is_no_revocation(topics, workers):
    revoked, assigned = 'screener_rebalances_total{kind="revoked"}', 'screener_rebalances_total{kind="assigned"}'
    first = workers(topics).start()
    assert (first.metric(revoked), first.metric(assigned)) == (0, 1)
    second = workers(topics).start()
    first.wait_metric(revoked, lambda v: v == 1)  # it gave partitions to the newcomer
    first.wait_metric(assigned, lambda v: v == 2)
    second.wait_metric(assigned, lambda v: v == 1)
    assert second.metric(revoked) == 0  # its first join revoked nothing
    assert first.terminate() == 0 and second.terminate() == 0
