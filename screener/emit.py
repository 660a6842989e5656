"""Stage: emit. Build and serialise events for what the judge decided.

Event kinds (schema: ``screener/schema/event.schema.json``):

- ``post``: a flagged or recalled post;
- ``profile_flag``: a flagged or recalled account name or bio (Gejiu Art. 7);
- ``account_blacklist`` / ``account_cleared``: an account crossed the repeat
  offender threshold, or fell back below it (Yuhang Art. 15).

``event_id`` is a UUID derived from what the event is about, the lexicon
version and the action, so a message screened again (a retry after a crash,
a re-read file) produces the same id and consumers can de-duplicate.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from . import jsonio
from .decode import meta_of
from .judge import Engine, Judgement

EVENT_NAMESPACE = uuid.UUID("5b0d7a36-58c1-4b5e-9f57-3c2b8f0f6a11")


def event_id(post_id: Any, lexicon_version: str, action: str) -> str:
    """Deterministic id; 1 and "1" are different posts.

    >>> event_id(1, "v", "flag") == event_id(1, "v", "flag") != event_id("1", "v", "flag")
    True
    """
    return uuid5_str(_EVENT_NAMESPACE, jsonio.dumps([post_id, lexicon_version, action]))


_EVENT_NAMESPACE = EVENT_NAMESPACE.bytes


def uuid5_str(namespace: bytes, name: bytes) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name.decode()))`` without the
    UUID object, whose construction was most of the cost of an id, one per
    event (tests/test_emit.py checks the two agree).

    >>> uuid5_str(EVENT_NAMESPACE.bytes, b"x") == str(uuid.uuid5(EVENT_NAMESPACE, "x"))
    True
    """
    return _formatted(hashlib.sha1(namespace + name).digest(), 0x50)


def uuid4_str() -> str:
    """``str(uuid.uuid4())``, the same way (one per audit record)."""
    return _formatted(os.urandom(16), 0x40)


def _formatted(digest: bytes, version: int) -> str:
    b = bytearray(digest[:16])
    b[6] = (b[6] & 0x0F) | version
    b[8] = (b[8] & 0x3F) | 0x80  # the RFC 4122 variant
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


_last_iso: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """The time now, UTC, to the millisecond (``2026-11-24T03:21:19.123Z``).
    Formatted once per millisecond: an audit record each asks for it."""
    global _last_iso
    ms = time.time_ns() // 1_000_000
    last = _last_iso
    if last[0] == ms:
        return last[1]
    seconds, millis = divmod(ms, 1000)
    text = datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=millis * 1000)
    iso = text.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _last_iso = (ms, iso)
    return iso


def serialise(event: dict[str, Any]) -> bytes:
    return jsonio.dumps(event, newline=True)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one record may produce, so that no single post can stop a run.

    A post of 8,000 repeated terms once made a 1.07 MB event and a 1.49 MB
    audit record: over Kafka's default request size, retried for ever.
    """

    #: Hits listed per post in an event or audit record; the verdict counts all.
    max_hits: int = 100
    #: Largest serialised event or audit record, in bytes.
    max_bytes: int = 900_000


NO_LIMITS = Limits(max_hits=1 << 62, max_bytes=1 << 62)
#: Lists an event or audit record may shorten, in the order they give way.
LISTS = ("suppressed", "hits", "post_ids")


def fit(record: dict[str, Any], limits: Limits) -> bytes | None:
    """``record`` serialised within ``limits``, shortened if it must be; None
    if it cannot be (then the caller dead-letters the message with the reason).

    What was cut is said in ``record["truncated"]``: for each list or object
    shortened, how many items it had. Lists are capped at ``max_hits`` first;
    then, only while the record is too large, ``meta`` is dropped and the
    lists are halved. ``meta`` nested too deep to write is dropped too. The
    record is changed in place.

    >>> r = {"hits": list(range(5)), "meta": {"a": 1}}
    >>> len(fit(r, Limits(max_hits=2))), r["hits"], r["truncated"]
    (53, [0, 1], {'hits': 5})
    """
    cut: dict[str, int] = {}
    for name in LISTS:
        items = record.get(name)
        if isinstance(items, list) and len(items) > limits.max_hits:
            cut[name] = len(items)
            record[name] = items[:limits.max_hits]
    if cut:
        record["truncated"] = cut
    try:
        value = serialise(record)
    except TypeError:  # orjson writes at most 255 levels; JSON input may nest deeper (found by a probe)
        if not record.get("meta"):
            raise
        cut["meta"] = len(record["meta"])
        record["meta"] = {}
        record["truncated"] = cut
        value = serialise(record)
    while len(value) > limits.max_bytes:
        if record.get("meta"):
            cut["meta"] = len(record["meta"])
            record["meta"] = {}
        else:
            longest = max(LISTS, key=lambda n: len(record.get(n) or ()))
            items = record.get(longest) or []
            if not items:
                return None
            cut.setdefault(longest, len(items))
            record[longest] = items[:len(items) // 2]
        record["truncated"] = cut
        value = serialise(record)
    return value


def build_event(obj: dict[str, Any], judged: Judgement, engine: Engine, screened_at: str) -> dict[str, Any]:
    """The event of a flagged or recalled post or profile."""
    counted = judged.counted
    subject = obj["id"] if judged.kind == "post" else ["profile", obj["id"]]
    event = {
        "event_id": event_id(subject, engine.lexicon_version, judged.action),
        "kind": "post" if judged.kind == "post" else "profile_flag",
        "action": judged.action,
        ("post_id" if judged.kind == "post" else "profile_id"): obj["id"],
        "account_id": judged.account.get("id"),
        "categories": list(dict.fromkeys(h.hit.rule.category for h in counted)),
        "hits": [h.to_event() for h in counted],
        "policy_rules": judged.policy_rules,
        "lexicon_version": engine.lexicon_version,
        "policy_version": engine.policy_version,
        "screened_at": screened_at,
        "meta": meta_of(obj),
    }
    return event


def account_event(event: dict[str, Any], engine: Engine, screened_at: str) -> dict[str, Any]:
    """An offender event (from :mod:`screener.offenders`) with the versions it was decided under."""
    return {**event, "lexicon_version": engine.lexicon_version, "policy_version": engine.policy_version,
            "screened_at": screened_at}


@dataclass(frozen=True, slots=True)
class Emitted:
    kind: str  # post | profile_flag | account_blacklist | account_cleared
    action: str  # flag | recall | blacklist | cleared
    key: bytes  # the Kafka message key: the post's (or account's) id as JSON
    value: bytes
    event: dict[str, Any]
    judged: Judgement | None


def emit(engine: Engine, objects: Sequence[dict[str, Any]], judgements: Sequence[Judgement],
         account_events: Sequence[dict[str, Any]] = (), limits: Limits = NO_LIMITS,
         extra: Callable[[int], dict[str, Any] | None] | None = None) -> tuple[list[Emitted], list[tuple[int, str]]]:
    """Events for every flagged or recalled message, in batch order, then
    the batch's account events; and (batch index, reason) of the messages
    whose event cannot fit in ``limits`` even shortened.

    ``extra(index)``: fields to add to a message's event (a rescan's
    ``rescan``), or None.
    """
    screened_at = now_iso()
    out: list[Emitted] = []
    unfit: list[tuple[int, str]] = []
    for judged in judgements:
        if judged.action == "pass":
            continue
        event = build_event(objects[judged.index], judged, engine, screened_at)
        more = extra(judged.index) if extra is not None else None
        if more:
            event.update(more)
        value = fit(event, limits)
        if value is None:
            unfit.append((judged.index, f"its {judged.action} event exceeds {limits.max_bytes} bytes even shortened"))
            continue
        key = jsonio.dumps(event.get("post_id", event.get("profile_id")))
        out.append(Emitted(event["kind"], judged.action, key, value, event, judged))
    for raw in account_events:
        event = account_event(raw, engine, screened_at)
        action = "blacklist" if event["kind"] == "account_blacklist" else "cleared"
        value = fit(event, limits)
        if value is None:  # only an absurd account id can do this; the status change stays in the audit trail
            continue
        out.append(Emitted(event["kind"], action, jsonio.dumps(event["account_id"]), value, event, None))
    return out, unfit
