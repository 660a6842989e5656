"""The offender state's changelog topic: durable, compacted, partitioned like the input.

Each batch's changes are written to the changelog partition with the input
partition's number, keyed by account id (a tombstone when an account has
nothing left to keep), so a compacted topic holds the latest state of every
account. A worker assigned an input partition reads the changelog partition
from the beginning to its end offset and so restores exactly the state the
previous owner had acknowledged before it committed its offsets.
"""

from __future__ import annotations

import logging
from typing import Sequence

from ..settings import Settings
from . import clients

log = logging.getLogger("screener.changelog")


def restore(settings: Settings, partitions: Sequence[int]) -> tuple[dict[int, list[tuple[bytes, bytes | None]]], list[int]]:
    """(key, value) records of each changelog partition, oldest first; and
    the partitions the changelog topic lacks (their state is not written:
    a send to a partition that does not exist fails for ever)."""
    consumer = clients.consumer(settings, group=False)
    try:
        known = consumer.partitions(settings.offenders_topic)
        missing = sorted(set(partitions) - known)
        if missing:
            log.error("changelog topic %s has no partition(s) %s: offender state of those partitions starts "
                      "empty and is not durable; create it with as many partitions as %s (cleanup.policy=compact)",
                      settings.offenders_topic, missing, settings.input_topic)
        out: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in partitions}
        present = [p for p in partitions if p in known]
        if not present:
            return out, missing
        for records, _ in clients.read_range(consumer, settings.offenders_topic, ("offset", 0), 10000, partitions=present):
            for r in records:
                if r.key is not None:
                    out[r.partition].append((r.key, r.value))
        return out, missing
    finally:
        consumer.close()

