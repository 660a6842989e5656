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

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

import orjson

from .decode import meta_of
from .judge import Engine, Judgement

EVENT_NAMESPACE = uuid.UUID("5b0d7a36-58c1-4b5e-9f57-3c2b8f0f6a11")


def event_id(post_id: Any, lexicon_version: str, action: str) -> str:
    """Deterministic id; 1 and "1" are different posts.

    >>> event_id(1, "v", "flag") == event_id(1, "v", "flag") != event_id("1", "v", "flag")
    True
    """
    key = orjson.dumps([post_id, lexicon_version, action]).decode()
    return str(uuid.uuid5(EVENT_NAMESPACE, key))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def serialise(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)


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
         account_events: Sequence[dict[str, Any]] = ()) -> list[Emitted]:
    """Events for every flagged or recalled message, in batch order, then
    the batch's account events."""
    screened_at = now_iso()
    out = []
    for judged in judgements:
        if judged.action == "pass":
            continue
        event = build_event(objects[judged.index], judged, engine, screened_at)
        key = orjson.dumps(event.get("post_id", event.get("profile_id")))
        out.append(Emitted(event["kind"], judged.action, key, serialise(event), event, judged))
    for raw in account_events:
        event = account_event(raw, engine, screened_at)
        action = "blacklist" if event["kind"] == "account_blacklist" else "cleared"
        out.append(Emitted(event["kind"], action, orjson.dumps(event["account_id"]), serialise(event), event, None))
    return out
