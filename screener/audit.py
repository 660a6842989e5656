"""The audit trail ("全过程留痕备查"): every decision that is not a plain pass.

One append-only record per flag, recall, suppressed hit, policy-decided pass,
dead letter, lexicon reload (or rejected reload), rescan, blacklist change;
each with the lexicon and policy versions, the rule ids, the worker and
where the message came from. Records go to an audit topic in Kafka mode and to
a JSONL file in ``scan``/``rescan`` mode; ``screener audit`` reads either
and answers "what was decided about this post / account, when, under which
versions, and why".
"""

from __future__ import annotations

import os
import stat
from typing import Any, BinaryIO, Iterable, Iterator

import orjson

from . import jsonio
from .emit import NO_LIMITS, Emitted, Limits, fit, now_iso, uuid4_str
from .judge import Engine, Judgement


def key_of(record: dict[str, Any]) -> bytes | None:
    """The Kafka key of an audit record: its post's id, else its account's."""
    key = record.get("post_id", record.get("account_id"))
    return jsonio.dumps(key) if key is not None else None


def _base(kind: str, worker: str, engine: Engine | None) -> dict[str, Any]:
    record: dict[str, Any] = {"audit_id": uuid4_str(), "kind": kind, "at": now_iso(), "worker": worker}
    if engine is not None:
        record["lexicon_version"] = engine.lexicon_version
        record["policy_version"] = engine.policy_version
    return record


def decision(obj: dict[str, Any], judged: Judgement, engine: Engine, worker: str, source: dict[str, Any],
             emitted: Emitted | None = None, rescan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Why a post or profile got its verdict: every hit, what the policy did
    with it, every hit verification suppressed and why."""
    record = _base("decision", worker, engine)
    record.update({
        "subject": judged.kind,
        "post_id": obj["id"],
        "account_id": judged.account.get("id"),
        "action": judged.action,
        "event_id": emitted.event["event_id"] if emitted else None,
        "hits": [
            {**h.to_event(), "lexicon_action": h.hit.action,
             "policy": f"{h.rule.id} ({h.rule.source})" if h.rule else "lexicon action"}
            for h in judged.hits
        ],
        "suppressed": [
            {"term": d.hit.rule.label, "category": d.hit.rule.category, "rule_id": d.hit.rule.id,
             "start": d.hit.start, "end": d.hit.end, "matched": d.hit.matched, "reason": d.reason}
            for d in judged.suppressed
        ],
        "post_rule": f"{judged.post_rule.id} ({judged.post_rule.source})" if judged.post_rule else None,
        "source": source,
    })
    if rescan is not None:
        record["rescan"] = rescan
    return record


def dead_letter(reason: str, worker: str, engine: Engine | None, source: dict[str, Any],
                post_id: Any = None, account_id: Any = None) -> dict[str, Any]:
    """A record that was not screened, and why; with its post and account ids
    when they could be read, so that ``screener audit`` finds it."""
    record = _base("dead_letter", worker, engine)
    record.update({"reason": reason, "source": source})
    if post_id is not None:
        record["post_id"] = post_id
    if account_id is not None:
        record["account_id"] = account_id
    return record


def account_change(emitted: Emitted, worker: str, engine: Engine) -> dict[str, Any]:
    record = _base(emitted.kind, worker, engine)
    event = emitted.event
    record.update({"account_id": event["account_id"], "event_id": event["event_id"],
                   "violations": event["violations"], "threshold": event["threshold"],
                   "window_s": event["window_s"], "post_ids": event["post_ids"]})
    return record


def reload(worker: str, engine: Engine | None, previous: dict[str, str], outcome: str, problems: Iterable[str] = ()) -> dict[str, Any]:
    """A lexicon/policy version started serving (``outcome`` "loaded") or was rejected."""
    record = _base("reload", worker, engine)
    record.update({"outcome": outcome, "previous": previous, "problems": list(problems)})
    return record


def rescan(worker: str, engine: Engine, phase: str, details: dict[str, Any]) -> dict[str, Any]:
    record = _base("rescan", worker, engine)
    record.update({"phase": phase, **details})
    return record


def records_for(objects: list[dict[str, Any]], judgements: Iterable[Judgement], emitted: Iterable[Emitted],
                engine: Engine, worker: str, source_of: Any, rescan_of: Any = None,
                limits: Limits = NO_LIMITS, notes_of: Any = None) -> list[dict[str, Any]]:
    """Audit records of one screened batch: decisions, then account changes,
    each within ``limits`` (see :func:`screener.emit.fit`).

    ``notes_of(index)``: remarks about how a message was read (a clamped
    timestamp), or an empty list."""
    by_index = {e.judged.index: e for e in emitted if e.judged is not None}
    out = []
    for j in judgements:
        if not j.noteworthy:
            continue
        record = decision(objects[j.index], j, engine, worker, source_of(j.index), by_index.get(j.index),
                          rescan_of(j.index) if rescan_of else None)
        notes = notes_of(j.index) if notes_of else None
        if notes:
            record["notes"] = notes
        out.append(record)
    out += [account_change(e, worker, engine) for e in emitted if e.judged is None]
    return [within(r, limits) for r in out]


def within(record: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The record shortened to fit ``limits``; if even that fails (ids of
    absurd size), a stub that says so, keyed like the record."""
    if fit(record, limits) is not None:
        return record
    stub = _base(record["kind"], record["worker"], None)
    stub.update({k: record[k] for k in ("lexicon_version", "policy_version", "action", "event_id") if k in record})
    stub["truncated"] = {"record": len(jsonio.dumps(record))}
    stub["ids"] = jsonio.dumps([record.get("post_id"), record.get("account_id")])[:1000].decode("utf-8", "replace")
    return stub


class AuditLog:
    """Append-only JSONL audit log (``scan``/``rescan``). Flushed per batch."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stream: BinaryIO | None = open(path, "ab") if path else None
        # fsync makes a file's records durable; a pipe or a terminal has
        # nothing to sync and refuses (EINVAL: --audit >(gzip) failed).
        self._sync = self._stream is not None and stat.S_ISREG(os.fstat(self._stream.fileno()).st_mode)

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        if self._stream is not None:
            self._stream.write(b"".join(jsonio.dumps(r, newline=True) for r in records))

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()
            if self._sync:
                os.fsync(self._stream.fileno())

    def close(self) -> None:
        if self._stream is not None:
            self.flush()
            self._stream.close()
            self._stream = None


# -- reading it back -----------------------------------------------------------------------------
def read_jsonl(path: str) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                try:
                    record = jsonio.loads(line)
                except orjson.JSONDecodeError as exc:  # a torn last line after a crash
                    yield {"kind": "unreadable", "at": None, "reason": f"{path}:{number}: {exc}"}
                    continue
                if isinstance(record, dict):
                    yield record
                else:
                    yield {"kind": "unreadable", "at": None, "reason": f"{path}:{number}: not a JSON object"}


_NOT_JSON = object()


def _as_json(wanted: str | None) -> Any:
    try:
        return jsonio.loads(wanted) if wanted is not None else _NOT_JSON
    except (ValueError, RecursionError):
        return _NOT_JSON


def _same(value: Any, wanted: str, exact: Any) -> bool:
    """An id as typed (``5`` finds the post 5 and the post "5"), or as JSON
    (``'"5"'`` finds only the string, ``'{"x": 1}'`` an object id, which
    only Python's spelling of it used to find: found by a hostile-input probe)."""
    try:
        if value is None:
            return False
        if exact is not _NOT_JSON and type(value) is type(exact) and value == exact:
            return True
        return not isinstance(exact, str) and (value == wanted or str(value) == wanted)
    except RecursionError:  # an id nested ~1000 deep: no id we wrote (found by a hostile-input probe)
        return False


def select(records: Iterable[dict[str, Any]], post: str | None = None, account: str | None = None) -> list[dict[str, Any]]:
    """Records about a post (by id) or an account (its posts, profile and status).

    >>> rows = [{"post_id": 5}, {"post_id": "5"}, {"post_id": {"x": 1}}, {"post_id": '"5'}]
    >>> [select(rows, post=p) for p in ("5", '"5"', '{"x": 1}', '"5')]
    [[{'post_id': 5}, {'post_id': '5'}], [{'post_id': '5'}], [{'post_id': {'x': 1}}], [{'post_id': '"5'}]]
    """
    post_json, account_json = _as_json(post), _as_json(account)
    out = []
    for r in records:
        if post is not None and _same(r.get("post_id"), post, post_json):
            out.append(r)
        elif account is not None and _same(r.get("account_id"), account, account_json):
            out.append(r)
    return out


def render(records: list[dict[str, Any]]) -> str:
    """One paragraph per record, oldest first: what, when, under which versions, why."""
    lines: list[str] = []
    for r in records:
        try:
            lines += _render(r)
        except (KeyError, TypeError, AttributeError, ValueError):
            # Not a record this version writes (edited, or from elsewhere):
            # shown as it is, not a crash of the whole report (found by a
            # hostile-input probe).
            lines.append(f"{r.get('at')}  unrecognised record  {_shown(r)}")
    return "\n".join(lines)


def _render(r: dict[str, Any]) -> list[str]:
    """The lines of one record (KeyError and the like: not a record this version writes)."""
    lines = []
    versions = f"lexicon {r.get('lexicon_version')} policy {r.get('policy_version')}"
    head = f"{r.get('at')}  {r['kind']}"
    if r["kind"] == "decision":
        account = f" of account {_shown(r['account_id'])}" if r.get("account_id") is not None else " (no account)"
        what = f"{r['subject']} {_shown(r['post_id'])}{account}: {r['action'].upper()}"
        lines.append(f"{head}  {what}  ({versions}; worker {r.get('worker')})")
        if r.get("rescan"):
            lines.append(f"    rescan: was {r['rescan'].get('previous_action')}")
        for h in r.get("hits", []):
            lines.append(f"    hit {h['matched']!r} = {h['term']!r} ({h['category']}, rule {h['rule_id']}): "
                         f"lexicon {h['lexicon_action']} -> {h['action']} by {h['policy']}")
        for s in r.get("suppressed", []):
            lines.append(f"    suppressed {s['matched']!r} = {s['term']!r} ({s['category']}): {s['reason']}")
        if r.get("post_rule"):
            lines.append(f"    post rule {r['post_rule']}")
        for note in r.get("notes") or []:  # how the message was read (a time not believed); the text had left it out
            lines.append(f"    note: {note}")
        lines.append(f"    source {_shown(r.get('source'))}")
    elif r["kind"] in ("account_blacklist", "account_cleared"):
        lines.append(f"{head}  account {_shown(r['account_id'])}: {r['violations']} violations in "
                     f"{r['window_s']} s (threshold {r['threshold']}): posts {r['post_ids']}  ({versions})")
    else:
        detail = {k: v for k, v in r.items() if k not in ("audit_id", "kind", "at", "lexicon_version", "policy_version")}
        lines.append(f"{head}  {_shown(detail)}  ({versions})")
    return lines


def _shown(value: Any) -> str:
    """A value as JSON; ids so too, the way ``--post`` and ``--account`` take
    them: 5, "5" and {"shard": 1}, where Python's repr showed '5' and
    {'shard': 1} (found by a walk-through of the docs, as was "of account None")."""
    return jsonio.dumps(value).decode()
