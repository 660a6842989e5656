"""The worker records end-to-end latencies in bulk (one increment per bucket):
the histogram must come out exactly as observe() per value makes it."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from screener.stream.clients import Record
from screener.stream.metrics import LATENCY_BUCKETS
from screener.stream.worker import _latencies, _observe_all


def samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value for metric in histogram.collect() for s in metric.samples
            if not s.name.endswith("_created")}


def test_bulk_observation_equals_one_observe_per_value():
    rng = random.Random(7)
    values = [0.0, 0.001, 0.0010001, 0.1, 60.0, 61.0, *[rng.expovariate(20) for _ in range(500)]]
    one, bulk = (Histogram("lat", "", buckets=LATENCY_BUCKETS, registry=CollectorRegistry()) for _ in range(2))
    for v in values:
        one.observe(v)
    _observe_all(bulk, values)
    a, b = samples(one), samples(bulk)
    assert a.keys() == b.keys() and a[("lat_count", "")] == len(values)
    for key in a:
        assert abs(a[key] - b[key]) < 1e-9, key


def test_bulk_observation_falls_back_to_observe():
    class Plain:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, v: float) -> None:
            self.seen.append(v)

    plain = Plain()
    _observe_all(plain, [0.5, 1.5])
    assert plain.seen == [0.5, 1.5]


def test_latency_from_each_record_timestamp_and_none_without_one():
    """A record without a timestamp (-1) is no latency of 56 years; one
    stamped ahead of this clock is no negative latency."""
    now_ms = 1_800_000_000_000
    records = [Record("t", 0, i, ts, None, b"{}", []) for i, ts in
               enumerate([now_ms - 250, -1, now_ms + 5_000, 0, now_ms - 60_000])]
    assert _latencies(records, now_ms) == [0.25, 0.0, 60.0]
