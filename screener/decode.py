"""Stage: decode. One raw record (bytes) → a Post, or the reason it is not one.

A malformed record is data, not an exception: the caller sends the reason to
the dead-letter sink and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import operator
from typing import Sequence

import orjson

_RESERVED = ("id", "text", "account_id")


@dataclass(frozen=True, slots=True)
class Post:
    id: str | int
    text: str
    account_id: Any
    #: Every other field of the input object, kept for the event's ``meta``.
    meta: dict[str, Any]


def decode_post(raw: bytes, max_bytes: int) -> Post | str:
    """Decode one JSON object; return a :class:`Post` or a reason string.

    >>> decode_post(b'{"id": 1, "text": "hi"}', 1000).text
    'hi'
    >>> decode_post(b'{"id": 1}', 1000)
    'missing "text"'
    """
    obj = decode_object(raw, max_bytes)
    return obj if isinstance(obj, str) else post_from_object(obj)


def decode_object(raw: bytes, max_bytes: int) -> dict[str, Any] | str:
    """The validated JSON object of a post record, or the reason it is not one."""
    if len(raw) > max_bytes:
        return f"record of {len(raw)} bytes exceeds the limit of {max_bytes} bytes"
    if not raw.strip():
        return "empty record"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    if not isinstance(obj, dict):
        return f"not a JSON object but {type(obj).__name__}"
    text = obj.get("text")
    if not isinstance(text, str):
        return 'missing "text"' if text is None else f'"text" is {type(text).__name__}, not a string'
    post_id = obj.get("id")
    if not isinstance(post_id, (str, int)) or isinstance(post_id, bool):
        return 'missing "id"' if post_id is None else f'"id" is {type(post_id).__name__}, not a string or integer'
    return obj


def post_from_object(obj: dict[str, Any]) -> Post:
    """A Post from an object already known to have a valid ``id`` and ``text``."""
    meta = {k: v for k, v in obj.items() if k not in _RESERVED} if len(obj) > 2 else {}
    return Post(obj["id"], obj["text"], obj.get("account_id"), meta)


def strip_eol(raw: bytes) -> bytes:
    """A line without its terminator (dead letters keep the record exactly)."""
    if raw.endswith(b"\n"):
        return raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    return raw


_get_text, _get_id = operator.itemgetter("text"), operator.itemgetter("id")
_ID_TYPES = {int, str}


def decode_batch(raws: Sequence[bytes], max_bytes: int) -> tuple[list[dict[str, Any]], list[str], list[tuple[int, str]]]:
    """Objects and texts of the good records, and (index, reason) of the bad ones.

    Decoding is the largest per-post cost of the front ends, so the common
    case (every record of the batch a good post) runs as C-level ``map``
    passes; a batch with any bad record is decoded one by one through
    :func:`decode_object`, the one definition of what is accepted and why not.
    Records may keep a line terminator: JSON ignores it.
    """
    if raws and max(map(len, raws)) <= max_bytes:
        try:
            objects = list(map(orjson.loads, raws))
            if set(map(type, objects)) == {dict}:
                texts = list(map(_get_text, objects))
                if set(map(type, texts)) == {str} and set(map(type, map(_get_id, objects))) <= _ID_TYPES:
                    return objects, texts, []
        except (orjson.JSONDecodeError, KeyError):
            pass
    objects, texts, rejected = [], [], []
    for index, raw in enumerate(raws):
        result = decode_object(strip_eol(raw), max_bytes)
        if isinstance(result, str):
            rejected.append((index, result))
        else:
            objects.append(result)
            texts.append(result["text"])
    return objects, texts, rejected
