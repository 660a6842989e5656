"""Stage: emit. Build and serialise events for flagged and recalled posts.

``event_id`` is a UUID derived from the post id, the lexicon version and the
action, so a post screened again (a retry after a crash, a re-read file)
produces the same id and consumers can de-duplicate.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Sequence

import orjson

from .decode import Post, post_from_object
from .pipeline import Screener, Screening

EVENT_NAMESPACE = uuid.UUID("5b0d7a36-58c1-4b5e-9f57-3c2b8f0f6a11")


def event_id(post_id: str | int, lexicon_version: str, action: str) -> str:
    """Deterministic id; 1 and "1" are different posts.

    >>> event_id(1, "v", "flag") == event_id(1, "v", "flag") != event_id("1", "v", "flag")
    True
    """
    key = orjson.dumps([post_id, lexicon_version, action]).decode()
    return str(uuid.uuid5(EVENT_NAMESPACE, key))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_event(post: Post, screening: Screening, lexicon_version: str, screened_at: str) -> dict[str, Any]:
    categories = list(dict.fromkeys(h.rule.category for h in screening.hits))
    return {
        "event_id": event_id(post.id, lexicon_version, screening.action),
        "action": screening.action,
        "post_id": post.id,
        "account_id": post.account_id,
        "categories": categories,
        "hits": [h.to_event() for h in screening.hits],
        "lexicon_version": lexicon_version,
        "screened_at": screened_at,
        "meta": post.meta,
    }


def serialise(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)


def events_for(screener: Screener, objects: Sequence[dict[str, Any]], texts: Sequence[str]) -> list[tuple[Post, Screening, bytes]]:
    """Screen decoded posts in one call of the core; for every flagged or
    recalled one, in input order, its post, screening and serialised event.

    The one path from decoded records to events, shared by ``scan`` and the
    Kafka worker.
    """
    screenings = screener.screen_sparse(texts)
    screened_at = now_iso()
    out = []
    for index in sorted(screenings):
        screening = screenings[index]
        if screening.action != "pass":
            post = post_from_object(objects[index])
            out.append((post, screening, serialise(build_event(post, screening, screener.version, screened_at))))
    return out
