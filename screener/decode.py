"""Stage: decode. One raw record (bytes) → a validated object, or the reason it is not one.

A malformed record is data, not an exception: the caller sends the reason to
the dead-letter sink and carries on.
"""

from __future__ import annotations

import operator
from itertools import compress, count, repeat
from typing import Any, Iterable, Sequence, TypeVar

from . import jsonio
from .jsonio import BigInt
from .source import Truncated

KINDS = ("post", "profile")
#: Fields an event reports on their own; every other input field is its ``meta``.
_NOT_META = ("id", "text", "account_id", "kind", "name", "bio")
T = TypeVar("T")


def decode_object(raw: bytes, max_bytes: int) -> dict[str, Any] | str:
    """The validated JSON object of a post or profile record, or the reason it is not one.

    >>> decode_object(b'{"id": 1, "text": "hi"}', 1000)["text"]
    'hi'
    >>> decode_object(b'{"id": 1}', 1000)
    'missing "text"'
    """
    if isinstance(raw, Truncated):  # the source kept only the head of a longer line
        # Its whole length, as the dead letter's "bytes" gives it (the head's
        # length had read "at least 1001" beside "bytes": 1822).
        return f"line of {raw.size} bytes exceeds the limit of {max_bytes} bytes"
    if len(raw) > max_bytes:
        return f"record of {len(raw)} bytes exceeds the limit of {max_bytes} bytes"
    if not raw.strip():
        return "empty record"
    try:
        obj = jsonio.loads(raw)
    except ValueError as exc:  # orjson.JSONDecodeError
        return f"invalid JSON: {exc}"
    if not isinstance(obj, dict):
        return f"not a JSON object but {type(obj).__name__}"
    kind = obj.get("kind", "post")
    if kind not in KINDS:
        return f'"kind" is {kind!r}, not "post" or "profile"'
    account = obj.get("account")
    if account is not None and not isinstance(account, dict):
        return f'"account" is {type(account).__name__}, not an object'
    if kind == "profile":
        return _profile_problem(obj) or obj
    text = obj.get("text")
    if not isinstance(text, str):
        return 'missing "text"' if text is None else f'"text" is {type(text).__name__}, not a string'
    post_id = obj.get("id")
    if not valid_id(post_id):
        return 'missing "id"' if post_id is None else f'"id" is {type(post_id).__name__}, not a string or integer'
    return obj


def valid_id(value: Any) -> bool:
    """A string or an integer (of any size: :class:`screener.jsonio.BigInt`), never a bool.

    >>> [valid_id(v) for v in ("a", 7, BigInt(10**30), True, 1.5, None)]
    [True, True, True, False, False, False]
    """
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _profile_problem(obj: dict[str, Any]) -> str | None:
    """A profile message: ``id`` (of the account), ``name``, optional ``bio``."""
    if not isinstance(obj.get("name"), str):
        return 'profile without a string "name"'
    if not isinstance(obj.get("bio", ""), str):
        return 'profile "bio" is not a string'
    if not valid_id(obj.get("id")):
        return 'profile without a string or integer "id"'
    return None


def account_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The author's account as policy sees it: the ``account`` object, with
    ``id`` taken from ``account_id`` (or a profile's own ``id``) if it has none.
    Returns the object itself when nothing needs adding (the common case)."""
    account = obj.get("account")
    if isinstance(account, dict) and "id" in account:
        return account
    account = dict(account or {})
    fallback = obj.get("account_id")
    if fallback is None and obj.get("kind") == "profile":
        fallback = obj.get("id")
    if fallback is not None:
        account["id"] = fallback
    return account


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    """Every input field an event does not report on its own."""
    return {k: v for k, v in obj.items() if k not in _NOT_META} if len(obj) > 2 else {}


def accepted(items: Sequence[T], rejected: Sequence[tuple[int, str]]) -> Sequence[T]:
    """``items`` without the rejected indices: the records (or line numbers)
    that go with :func:`decode_batch`'s objects, one for one.

    >>> accepted("abcde", [(1, "bad"), (3, "bad")])
    ['a', 'c', 'e']
    """
    if not rejected:
        return items
    return list(compress(items, _keep(len(items), (i for i, _ in rejected))))


def _keep(n: int, dropped: Iterable[int]) -> bytearray:
    """Selectors for ``itertools.compress``: 1 everywhere but at ``dropped``."""
    keep = bytearray(b"\x01") * n
    for index in dropped:
        keep[index] = 0
    return keep


def strip_eol(raw: bytes) -> bytes:
    """A line without its terminator (dead letters keep the record exactly).
    The head of a cut line has none, and stays what it is (:class:`Truncated`)."""
    if raw.endswith(b"\n"):
        return raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    return raw


_ID_TYPES = frozenset((int, str, BigInt))
_ACCOUNT_TYPES = frozenset((dict, type(None)))
#: Stands in for a suspect record while the checks of the others run.
_STAND_IN: dict[str, Any] = {"id": 0, "text": ""}


def _where(flags: Iterable[Any]) -> list[int]:
    """The indices of the true flags (at C speed: ``compress`` over ``count``)."""
    return list(compress(count(), flags))


def _suspects(raws: Sequence[bytes], max_bytes: int) -> tuple[list[Any], list[Any], set[int]]:
    """Every record decoded, their texts, and the indices of those that may not be good posts.

    Each test is a C-level pass over the batch that finds nothing in the
    common case; only a test that fails looks for where. A suspect is then
    judged by :func:`decode_object`, so a test here may be stricter than
    :func:`decode_object` (a profile is a suspect), never more lenient.
    """
    oversize = _where(map(operator.gt, map(len, raws), repeat(max_bytes))) if max(map(len, raws)) > max_bytes else []
    if oversize:  # not worth decoding: decode_object says why not
        raws = list(raws)
        for index in oversize:
            raws[index] = b""
    objects, failed = jsonio.loads_batch(raws)  # a Truncated head fails too: orjson refuses bytes subclasses
    suspects = set(failed).union(oversize)
    for index in suspects:  # loads_batch's list is ours to change
        objects[index] = _STAND_IN
    try:
        texts = list(map(dict.get, objects, repeat("text")))
    except TypeError:  # JSON, but not an object: found only now, which costs a clean batch nothing
        not_objects = _where(map(operator.is_not, map(type, objects), repeat(dict)))
        suspects.update(not_objects)
        for index in not_objects:
            objects[index] = _STAND_IN
        texts = list(map(dict.get, objects, repeat("text")))
    if set(map(type, texts)) != {str}:
        suspects.update(_where(map(operator.is_not, map(type, texts), repeat(str))))
    if not set(map(type, map(dict.get, objects, repeat("id")))) <= _ID_TYPES:
        types = map(type, map(dict.get, objects, repeat("id")))
        suspects.update(_where(map(operator.not_, map(_ID_TYPES.__contains__, types))))
    # Looking for the key first is the cheap test: most batches carry neither
    # "kind" nor "account". An explicit "kind": null is a suspect too.
    if any(map(dict.__contains__, objects, repeat("kind"))) and not all(
            map(operator.eq, map(dict.get, objects, repeat("kind"), repeat("post")), repeat("post"))):
        kinds = map(dict.get, objects, repeat("kind"), repeat("post"))
        suspects.update(_where(map(operator.ne, kinds, repeat("post"))))
    if any(map(dict.__contains__, objects, repeat("account"))) and not set(
            map(type, map(dict.get, objects, repeat("account")))) <= _ACCOUNT_TYPES:
        types = map(type, map(dict.get, objects, repeat("account")))
        suspects.update(_where(map(operator.not_, map(_ACCOUNT_TYPES.__contains__, types))))
    return objects, texts, suspects


def decode_batch(raws: Sequence[bytes], max_bytes: int) -> tuple[list[dict[str, Any]], list[str], list[tuple[int, str]]]:
    """Objects and texts of the good records, and (index, reason) of the bad ones.

    The same answer as :func:`decode_object` on each record (with
    :func:`strip_eol`), the one definition of what is accepted and why not,
    but at C speed: decoding is the largest per-post cost of the front ends.
    Every record is decoded in one pass (:func:`screener.jsonio.loads_batch`),
    cheap tests over the whole batch pick out the suspects (bad records,
    profiles), and only those go through :func:`decode_object`; one bad line
    in a batch costs about what it costs alone. Records may keep a line
    terminator: JSON ignores it. A profile message has no post text: its
    entry in the texts is "" (its name and bio are screened by the profile path).

    >>> objects, texts, rejected = decode_batch([b'{"id": 1, "text": "a"}\\n', b'{"id": 2}\\n'], 1000)
    >>> texts, rejected
    (['a'], [(1, 'missing "text"')])
    """
    if not raws:
        return [], [], []
    objects, texts, suspects = _suspects(raws, max_bytes)
    if not suspects:
        return objects, texts, []
    rejected = []
    for index in sorted(suspects):
        result = decode_object(strip_eol(raws[index]), max_bytes)
        if isinstance(result, str):
            rejected.append((index, result))
        else:
            objects[index] = result
            texts[index] = result["text"] if result.get("kind", "post") == "post" else ""
    if rejected:
        keep = _keep(len(objects), (i for i, _ in rejected))
        objects, texts = list(compress(objects, keep)), list(compress(texts, keep))
    return objects, texts, rejected
