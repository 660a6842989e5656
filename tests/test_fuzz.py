"""Hostile records, generated: every record ends in exactly one outcome, no exception escapes.

Drives ``scan`` (the whole file job, in process) and the worker's batch path
(the batch step with the worker's per-partition offender adapter and its
send plan) with records a hostile or careless producer could write: broken
JSON and UTF-8, wrong types, ids beyond 64 bits, timestamps far outside any
sane range, markup and entities, floods of terms, profiles, accounts.
"""

from __future__ import annotations

import io
from collections import namedtuple
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from screener.batch import Batch, Step, screen_batch
from screener.judge import Engine
from screener.offenders import Offenders
from screener.scan import Summary, run_scan
from screener.settings import Settings, shipped_policy

from .conftest import LEXICONS

TERMS = ["赌博", "加微信", "傻逼", "冰毒", "代开发票", "加微微信", "赌赌-博", "时时彩", "时彩", "网、贷"]
NOISE = ["<b>", "</i>", "<!--", "-->", "&#36172;", "&amp;", "&", "<", "<script>", "</script>", "\u200b", "*", " ",
         "<![CDATA[", "]]>", "<?x", "?>", "\x00", "\ud800", "😀", "Ａ", "賭"]

texts = st.lists(st.one_of(st.sampled_from(TERMS), st.sampled_from(NOISE), st.text(max_size=8)), max_size=30).map("".join)
ids = st.one_of(st.integers(min_value=-(1 << 70), max_value=1 << 70), st.text(max_size=5), st.floats(), st.none(),
                st.booleans(), st.lists(st.integers(), max_size=2))
times = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False), st.integers(min_value=-(1 << 70), max_value=1 << 70),
                  st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01", "2026-11-01T08:00:00Z", "not a time", "",
                                   "2026-13-45"]))
accounts = st.one_of(st.none(), st.text(max_size=3), st.fixed_dictionaries(
    {}, optional={"id": ids, "type": st.sampled_from(["individual", "government", 5]), "news_license": st.booleans()}))


@st.composite
def posts(draw: st.DrawFn) -> bytes:
    record: dict = {"id": draw(ids), "text": draw(st.one_of(texts, st.integers(), st.none()))}
    for key, strategy in (("published_at", times), ("account", accounts), ("account_id", ids),
                          ("kind", st.sampled_from(["post", "profile", "video", None]))):
        if draw(st.booleans()):
            record[key] = draw(strategy)
    if record.get("kind") == "profile":
        record["name"] = draw(st.one_of(texts, st.integers()))
    try:
        raw = orjson.dumps(record)
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits, lone surrogates: write them by hand
        raw = repr(record).encode("utf-8", "surrogatepass")
    return raw


lines = st.one_of(posts(), st.binary(max_size=40), st.sampled_from([
    b"", b"null", b"[]", b'{"id": 1}', b'{"id": 123456789012345678901234567890, "text": "\\u8d4c\\u535a"}',
    b'{"id": 1, "text": "' + "赌博".encode() * 3000 + b'"}', b"{" * 5000, b'{"id": 1, "text": "\\ud800"}',
]))


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    """The shipped lexicons; a policy that blacklists at the first violation,
    so every flagged post's timestamp reaches the offender state."""
    policy = tmp_path_factory.mktemp("policy") / "fuzz.policy"
    policy.write_text(Path(shipped_policy()).read_text(encoding="utf-8").replace("threshold=5", "threshold=1"),
                      encoding="utf-8")
    assert "threshold=1" in policy.read_text(encoding="utf-8")
    return Engine.build(LEXICONS, policy, "aho")


_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


FAR_FUTURE = b'{"id": 1, "text": "\\u8d4c\\u535a", "account_id": "u1", "published_at": "9999-12-31T23:59:59-01:00"}'


@settings(max_examples=40, deadline=None, suppress_health_check=_HEALTH)
@given(batch=st.lists(lines, min_size=1, max_size=25))
@example(batch=[FAR_FUTURE, FAR_FUTURE.replace(b'"9999-12-31T23:59:59-01:00"', b"1e20")])
def test_scan_gives_every_record_one_outcome(engine, tmp_path, batch):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(raw.replace(b"\n", b" ") + b"\n" for raw in batch))
    dead, audit = tmp_path / "dead.jsonl", tmp_path / "audit.jsonl"
    for path in (dead, audit):
        path.unlink(missing_ok=True)
    out = io.BytesIO()
    summary = Summary()
    run_scan(Settings(progress="off", dead_letter=str(dead), audit=str(audit), batch_records=7, max_post_bytes=20_000),
             engine, [str(source)], out, summary)
    assert summary.posts == len(batch)
    assert summary.passed + summary.flagged + summary.recalled + summary.dead_lettered == len(batch)
    events = [orjson.loads(line) for line in out.getvalue().splitlines()]
    screened = [e for e in events if e["kind"] in ("post", "profile_flag")]
    assert len(screened) == summary.flagged + summary.recalled
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()] if dead.exists() else []
    assert len(letters) == summary.dead_lettered
    # A dead letter for a bug of ours ("screening failed") is a failure here, not an outcome.
    assert not [d["reason"] for d in letters if d["reason"].startswith("screening failed")]
    originals = _originals(source)
    for event in screened:
        if event["kind"] == "post":
            texts = originals.get(orjson.dumps(event["post_id"]))
            for hit in event["hits"]:
                assert texts is None or any(t[hit["start"]:hit["end"]] == hit["matched"] for t in texts)
    for line in audit.read_bytes().splitlines() if audit.exists() else []:
        assert orjson.loads(line)["kind"]


def _originals(source: Path) -> dict[bytes, list[str]]:
    """The texts of each post id (generated batches repeat ids)."""
    found: dict[bytes, list[str]] = {}
    for line in source.read_bytes().splitlines():
        try:
            obj = orjson.loads(line)
            found.setdefault(orjson.dumps(obj["id"]), []).append(obj["text"])
        except Exception:  # noqa: BLE001 - only well-formed posts have a text to compare with
            continue
    return found


Record = namedtuple("Record", "topic partition offset timestamp key value")


@settings(max_examples=40, deadline=None, suppress_health_check=_HEALTH)
@given(batch=st.lists(st.tuples(lines, st.integers(min_value=0, max_value=2),
                                st.integers(min_value=-(1 << 40), max_value=1 << 45)), min_size=1, max_size=25))
@example(batch=[(FAR_FUTURE, 0, 0), (FAR_FUTURE.replace(b'"9999-12-31T23:59:59-01:00"', b"-1e20"), 1, 1 << 45)])
def test_the_worker_batch_path_gives_every_record_one_outcome(engine, batch):
    from screener.stream.outgoing import sends_of, source_of
    from screener.stream.worker import _PartitionAccounts

    records = [Record("posts", p, i, ts, None, raw) for i, (raw, p, ts) in enumerate(batch)]
    settings_ = Settings(max_post_bytes=20_000)
    step = Step.of(settings_, engine, True)
    result = screen_batch(step, Batch([r.value for r in records], lambda i: source_of(records[i]),
                                      lambda i: records[i].timestamp / 1000),
                          _PartitionAccounts(Offenders(engine.policy.offenders), records))
    counts = result.counts
    assert counts.posts == len(records)
    assert counts.passed + counts.flagged + counts.recalled + counts.dead_lettered == len(records)
    assert not [d.reason for d in result.dead if d.reason.startswith("screening failed")]
    sends = sends_of(result, records, settings_)
    assert sum(1 for o in sends.first if o.action == "dead_letter") == counts.dead_lettered
    assert all(len(o.value or b"") <= settings_.max_record_bytes for o in sends.first + sends.then
               if o.action != "dead_letter")
