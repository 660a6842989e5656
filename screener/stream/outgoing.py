"""What a Kafka front end sends for one screened batch, in the order it must be acknowledged.

The worker and ``rescan --topic`` turn a :class:`screener.batch.BatchResult`
into records for the producer here. Dead letters and audit records come
first (:attr:`Sends.first`): they are acknowledged before the batch's events
are sent (:attr:`Sends.then`), so no event is ever out while the audit
record that explains it could still be lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .. import audit, jsonio
from ..batch import BatchResult, DeadLetter
from ..emit import now_iso
from ..settings import Settings
from ..sinks import short_ids


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ cost 4x (three per violating post)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (an account the changelog forgets)
    headers: list[tuple[str, bytes]]
    action: str  # flag | recall | blacklist | cleared | dead_letter | audit | state
    partition: int | None = None  # the changelog's partition is the input's


@dataclass(slots=True)
class Sends:
    first: list[Outgoing] = field(default_factory=list)  # dead letters and audit records
    then: list[Outgoing] = field(default_factory=list)  # events


def dead_letter(record: Any, reason: str, topic: str, letter: DeadLetter | None = None,
                max_bytes: int = 1 << 62) -> Outgoing:
    """The record as it came, with where it came from and why, in headers
    (and whose it is, when that could be read).

    At most ``max_bytes`` (``max_record_bytes``) of key, value and headers:
    a record near the broker's limit plus our headers is over the producer's,
    and a send refused as too large is refused for ever: one such input
    record wedged the worker (found by a hostile-input probe). A longer
    one keeps the head of its value (and of a key over a quarter of the
    limit), and ``screener.truncated`` gives their original lengths.
    """
    headers = [
        ("screener.reason", reason.encode()),
        ("screener.source.topic", record.topic.encode()),
        ("screener.source.partition", str(record.partition).encode()),
        ("screener.source.offset", str(record.offset).encode()),
        ("screener.source.timestamp", str(record.timestamp).encode()),
        ("screener.dead_lettered_at", now_iso().encode()),
    ]
    if letter is not None:  # ids too long to carry are left out, with their length (as in the file sink)
        post_id, account_id, omitted = short_ids(letter.post_id, letter.account_id, max_bytes // 4)
        if post_id is not None:
            headers.append(("screener.post_id", jsonio.dumps(post_id)))
        if account_id is not None:
            headers.append(("screener.account_id", jsonio.dumps(account_id)))
        if omitted:
            headers.append(("screener.omitted", jsonio.dumps(omitted)))
    key, value = record.key, record.value if record.value is not None else b""
    budget = max(0, max_bytes - sum(len(k) + len(v) for k, v in headers) - _TRUNCATED_HEADER)
    if len(key or b"") + len(value) > budget:
        headers.append(("screener.truncated", jsonio.dumps({"key": len(key or b""), "value": len(value)})))
        if key is not None and len(key) > budget // 4:
            key = key[:budget // 4]
        value = value[:max(0, budget - len(key or b""))]
    return Outgoing(topic, key, value, headers, "dead_letter")


#: Room kept for the ``screener.truncated`` header itself.
_TRUNCATED_HEADER = 128


def audit_record(record: dict[str, Any], topic: str) -> Outgoing:
    return Outgoing(topic, audit.key_of(record), jsonio.dumps(record), [], "audit")


def sends_of(result: BatchResult, records: Sequence[Any], settings: Settings) -> Sends:
    """The batch's records for the producer: ``records[i]`` is the Kafka
    record of batch index ``i``."""
    sends = Sends()
    sends.first = [dead_letter(records[d.index], d.reason, settings.dead_letter_topic, d, settings.max_record_bytes)
                   for d in result.dead]
    if settings.audit_topic:
        sends.first += [audit_record(r, settings.audit_topic) for r in result.audit]
    sends.then = [Outgoing(settings.topic_for(e.action), e.key, e.value, [], e.action) for e in result.emitted]
    return sends


def source_of(record: Any) -> dict[str, Any]:
    """Where a Kafka record came from, as the audit trail names it."""
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
