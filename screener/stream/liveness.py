"""Is the broker answering? Evidence for /readyz, and an idle wait that does not spin.

A frozen broker (a stopped process, a hung disk) keeps its TCP connections
open: nothing fails, polls just come back empty, and "no error" looked like
"ready" for as long as it lasted. Readiness therefore rests on evidence: the
worker calls :meth:`Health.broker_answered` whenever the broker answered it
(records polled, sends acknowledged, a commit confirmed), and while that
evidence is older than a fraction of ``broker_timeout_s`` a
:class:`BrokerWatch` thread asks the broker something small itself. Whichever
Kafka client is underneath, it only has to provide that question as a
:data:`Probe`: a callable that returns when the broker answered within the
timeout it is given and raises otherwise.

>>> from screener.stream.metrics import Health
>>> health = Health(broker_timeout_s=10)
>>> health.ready, health.reason = True, "ready"
>>> health.readiness()[0]   # the loop is ready, but no broker has answered yet
False
>>> health.broker_answered()
>>> health.readiness()
(True, 'ready')
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping

from .metrics import Health

log = logging.getLogger("screener.liveness")

#: Asks the broker something; returns if it answered within ``timeout_s``
#: seconds, raises otherwise.
Probe = Callable[[float], object]


def probe_interval(broker_timeout_s: float) -> float:
    """How long an idle worker's evidence may age before the watch asks the
    broker itself: a quarter of the timeout, at most a second (a request a
    second per idle process is nothing to a broker) and at least 0.25 s."""
    return min(1.0, max(0.25, broker_timeout_s / 4))


class BrokerWatch:
    """Keeps the broker evidence fresh while the worker is idle, and
    publishes readiness when it goes stale.

    The probe thread asks only when the worker itself has had no answer for
    :func:`probe_interval` (a busy worker costs the broker nothing extra)
    and gives each probe half the timeout; it never decides readiness
    itself: a probe that hangs simply produces no evidence, and /readyz
    turns 503 when the last evidence is ``broker_timeout_s`` old. A second
    thread publishes the ready gauge, so that it follows even while the
    worker loop and the probe are both stuck on a silent broker.
    """

    def __init__(self, health: Health, probe: Probe | None) -> None:
        self.health, self.probe = health, probe
        self.interval = probe_interval(health.broker_timeout_s)
        self._stop = threading.Event()
        self._failing = False

    def start(self) -> "BrokerWatch":
        threading.Thread(target=self._publish, name="readiness", daemon=True).start()
        if self.probe is not None:
            threading.Thread(target=self._probe, args=(self.probe,), name="broker-probe", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _publish(self) -> None:
        while not self._stop.wait(self.interval / 2):
            self.health.publish()

    def _probe(self, probe: Probe) -> None:
        while not self._stop.wait(self.interval / 2):
            if self.health.broker_silence() >= self.interval:
                self._probe_once(probe)

    def _probe_once(self, probe: Probe) -> None:
        try:
            probe(max(0.5, self.health.broker_timeout_s / 2))
        except Exception as exc:  # noqa: BLE001 - any failure is just "no answer"
            if not self._failing:
                log.warning("broker did not answer a liveness probe: %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("broker answers liveness probes again")
        self._failing = False
        self.health.broker_answered()


class IdleWait:
    """Keeps a poll that finds nothing from spinning a core.

    kafka-python 3.0 caps its wait inside ``poll()`` by the time to the next
    heartbeat, which is 0 while an unanswered heartbeat is overdue: against a
    frozen broker an idle worker's poll busy-waited, 60-85% of a core
    measured. So while the broker has been silent for three probe intervals
    (the watch asks after one, and checks twice an interval, so a well broker
    is never silent for more than about 1.5), or half of ``broker_timeout_s``
    if that is shorter, polls do not block and the worker waits on its own.
    Silence, not the CPU an empty poll used, is the signal: on a loaded
    machine a spinning poll gets less than half a core and looked innocent.
    A client whose poll blocks properly (librdkafka) loses nothing by it.
    """

    def __init__(self, health: Health, poll_timeout_ms: int, stop: threading.Event) -> None:
        self.health, self.poll_timeout_ms, self.stop = health, poll_timeout_ms, stop
        self.silent_after = min(health.broker_timeout_s / 2, 3 * probe_interval(health.broker_timeout_s))
        self.throttled = False

    def timeout_ms(self) -> int:
        """The timeout for the next poll."""
        silence = self.health.broker_silence()
        throttled = self.silent_after < silence < float("inf")  # before any answer, nothing to spin on yet
        if throttled != self.throttled:
            if throttled:
                log.warning("broker silent for %.1f s: waiting between polls instead of inside them", silence)
            else:
                log.info("broker answers again: polls wait normally")
            self.throttled = throttled
        return 0 if throttled else self.poll_timeout_ms

    def after(self, got_records: bool) -> None:
        """The poll just returned: a non-blocking one that found nothing waits here."""
        if self.throttled and not got_records:
            self.stop.wait(self.poll_timeout_ms / 1000)


def kafka_python_probe(bootstrap_servers: str, options: Mapping[str, Any]) -> Probe:
    """A probe for kafka-python: DescribeCluster (Metadata on older brokers)
    through an admin client of its own, with the client options that apply
    to it (security settings pass through; consumer- or producer-only ones
    are left out, since the admin client refuses unknown options). An error
    the broker sends back is an answer too: a principal without the right to
    describe the cluster must not look like a hung broker."""

    admin: list[Any] = []  # created on first use: the broker may be down at start

    def probe(timeout_s: float) -> object:
        from kafka import errors

        if not admin:
            admin.append(_admin_client(bootstrap_servers, options, int(timeout_s * 1000)))
        try:
            return admin[0].describe_cluster()
        except errors.RequestTimedOutError:  # kafka-python's own timeout, under a broker error's name
            raise
        except errors.BrokerResponseError as exc:  # refused (an ACL, say), but the broker answered
            return exc

    return probe


def _admin_client(bootstrap_servers: str, options: Mapping[str, Any], timeout_ms: int) -> Any:
    """A kafka-python admin client; one that cannot bootstrap is closed, since
    its constructor has started an IO thread by then (a thread per failed
    attempt leaked otherwise)."""
    from kafka import KafkaAdminClient
    from kafka.net.compat import KafkaNetClient

    started: list[Any] = []

    def network(**config: Any) -> Any:
        started.append(KafkaNetClient(**config))
        return started[-1]

    known = {k: v for k, v in options.items() if k in KafkaAdminClient.DEFAULT_CONFIG}
    try:
        return KafkaAdminClient(**{**known, "bootstrap_servers": bootstrap_servers, "client_id": "screener-liveness",
                                   "request_timeout_ms": timeout_ms, "bootstrap_timeout_ms": timeout_ms,
                                   "kafka_client": network})
    except BaseException:
        for client in started:
            client.close()
        raise
