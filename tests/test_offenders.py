"""Repeat offenders: the sliding window, its events, and durable state in scan mode."""

from __future__ import annotations

import io

import orjson
import pytest

from screener.offenders import (DAY, OffenderTracker, Offenders, SqliteStore, batch_clock, clock_of, event_time,
                                 event_time_checked, iso, sample, shard_clocks)
from screener.policy import OffenderConfig
from screener.scan import run_scan
from screener.settings import Settings

from .test_policy import FILES, MANIFEST

HOUR = 3600


def offenders(threshold=3, window_s=HOUR, clear=True) -> Offenders:
    return Offenders(OffenderConfig(threshold=threshold, window_s=window_s, clear=clear))


def test_crossing_the_threshold_blacklists_once():
    o = offenders()
    assert o.violation("p0", "a", 1, 100) == []
    assert o.violation("p0", "a", 2, 200) == []
    [event] = o.violation("p0", "a", 3, 300)
    assert event["kind"] == "account_blacklist" and event["post_ids"] == [1, 2, 3] and event["trigger_post_id"] == 3
    assert o.violation("p0", "a", 4, 400) == []  # already blacklisted: no second event
    assert o.is_blacklisted("p0", "a") and not o.is_blacklisted("p0", "b") and not o.is_blacklisted("p1", "a")


def test_violations_leave_the_window():
    o = offenders()
    o.violation("p0", "a", 1, 0)
    o.violation("p0", "a", 2, 10)
    assert o.violation("p0", "a", 3, HOUR + 5) == []  # post 1 left the window
    assert o.violation("p0", "a", 4, HOUR + 6)[0]["post_ids"] == [2, 3, 4]


def test_a_replayed_post_counts_once():
    o = offenders()
    for _ in range(5):
        assert o.violation("p0", "a", 1, 100) == []
    assert not o.is_blacklisted("p0", "a")


def test_falling_back_clears_when_configured():
    o = offenders()
    for post in (1, 2, 3):
        o.violation("p0", "a", post, 100 + post)
    s = o.shard("p0")
    s.clock = 100 + HOUR + 1.5  # posts 1 left the window (stream time moved on)
    [cleared] = o.sweep("p0")
    assert cleared["kind"] == "account_cleared" and cleared["post_ids"] == [2, 3]
    assert not o.is_blacklisted("p0", "a")
    assert o.sweep("p0") == []


def test_without_clear_a_blacklist_stays():
    o = offenders(clear=False)
    for post in (1, 2, 3):
        o.violation("p0", "a", post, post)
    o.shard("p0").clock = 10 * HOUR
    assert o.sweep("p0") == [] and o.is_blacklisted("p0", "a")


def test_a_post_is_a_blacklisted_accounts_only_after_the_violation_that_blacklisted_it():
    """Found by a policy probe: a post screened again after its account was
    blacklisted (a replay, an at-least-once redelivery) became an escalated
    recall with a new event id. Its answer now depends on its own time."""
    o = offenders(clear=False)
    for post in (1, 2, 3):
        o.violation("p0", "a", post, 100 + post)
    assert [o.is_blacklisted("p0", "a", t) for t in (101, 103, 104, 10 * DAY)] == [False, False, True, True]
    # at the blacklisting's own instant: not the post that blacklisted it, but any other (a burst of
    # posts shares a Kafka record's millisecond; an integration test found a post escalated no more)
    assert [o.is_blacklisted("p0", "a", 103, post) for post in (3, 4, "x")] == [False, True, True]
    assert o.is_blacklisted("p0", "a") and not o.is_blacklisted("p0", "b", 104)
    restored = offenders(clear=False)
    restored.restore("p0", o.take_changes("p0"))
    assert [restored.is_blacklisted("p0", "a", t) for t in (103, 104)] == [False, True]


def test_with_clear_a_lapsed_blacklist_is_not_applied_before_the_sweep_runs():
    """Found by a policy probe: an account blacklisted 200 days before was
    still escalated until the end-of-batch sweep cleared it."""
    o = offenders()
    for post in (1, 2, 3):
        o.violation("p0", "a", post, 100 + post)
    assert o.is_blacklisted("p0", "a", 104) and o.is_blacklisted("p0", "a", 100 + HOUR)
    assert not o.is_blacklisted("p0", "a", 102 + HOUR)  # post 1 left the window before this post
    assert not o.is_blacklisted("p0", "a", 200 * DAY) and o.is_blacklisted("p0", "a")  # not swept yet


def test_a_clear_is_never_dated_before_the_blacklist_it_undoes():
    """Found by a policy probe: the shard clock (a median over every
    account) dated a clear an hour before the blacklist."""
    o = offenders(threshold=2)
    o.violation("p0", "a", 1, 1000)
    [blacklist] = o.violation("p0", "a", 2, 2000)
    o.violation("p0", "a", 3, 2000 + 2 * HOUR)  # the account's own clock moves on: 1 and 2 leave
    o.shard("p0").clock = 1500
    [cleared] = o.sweep("p0")
    assert cleared["kind"] == "account_cleared" and cleared["at"] == blacklist["at"] == iso(2000)


def test_state_round_trips_through_its_changes():
    o = offenders()
    for post in (1, 2, 3):
        o.violation("p0", "a", post, post)
    o.violation("p0", 7, "x", 5)
    log = o.take_changes("p0")
    assert o.take_changes("p0") == []  # taken once
    restored = offenders()
    assert restored.restore("p0", log) == 2
    assert restored.is_blacklisted("p0", "a") and not restored.is_blacklisted("p0", 7)
    assert restored.violation("p0", 7, "y", 6) == []  # 7 has two now
    assert restored.violation("p0", 7, "z", 7)[0]["post_ids"] == ["x", "y", "z"]


@pytest.mark.parametrize("value,reason", [
    (b'{"v":{},"b":true}', "without the post that blacklisted it"),  # every batch then failed
    (b'{"v":{"p":"x"},"b":false}', "a violation time is not a number"),
    (b'{"v":{},"b":"false","t":"1"}', "not an offender record"),  # counted as blacklisted
    (b'{"v":[],"b":false}', "not an offender record"),
    (b'[1]', "not an offender record"),
    (b'not json', "account b'\"bad\"'"),
    (b'{"v":{},"b":true,"t":"1","s":"x"}', "the blacklisting time is not a number"),
])
def test_a_record_that_dumps_did_not_write_is_refused_or_skipped(value, reason):
    """Found by a hostile-input probe: such a row in a --state file was
    accepted, and then failed every post of every run ("screening failed",
    exit 0); a changelog record of the kind would stop every worker start."""
    o = offenders()
    o.violation("p0", "good", 1, 100)
    changes = o.take_changes("p0")
    with pytest.raises(ValueError, match=reason):
        offenders().restore("p0", [*changes, (b'"bad"', value)])
    tolerant = offenders()
    assert tolerant.restore("p0", [*changes, (b'"bad"', value)], strict=False) == 1  # the worker: skipped, logged
    assert [e["kind"] for e in tolerant.violation("p0", "good", 2, 200) + tolerant.violation("p0", "good", 3, 300)] \
        == ["account_blacklist"]


def test_a_state_file_with_a_foreign_row_is_refused_before_screening(tmp_path, capsys):
    from screener.cli import main

    db = tmp_path / "state.db"
    SqliteStore(str(db)).close()
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO offenders VALUES (?, ?, ?)", ("scan", b'"someone"', b'{"v":{},"b":true}'))
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": 1, "text": "赌博", "account_id": "a"}\n', encoding="utf-8")
    assert main(["scan", "--state", str(db), str(posts)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "not a usable screener state file (account b'\"someone\"': a blacklisted account without" in err


def _scan_with_state(state, tmp_path, capsys) -> tuple[int, str, str]:
    from screener.cli import main

    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": 1, "text": "赌博", "account_id": "a"}\n', encoding="utf-8")
    code = main(["scan", "--state", str(state), str(posts)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_state_file_in_use_by_another_run_is_refused_before_screening(tmp_path, capsys):
    """Found by a hostile-input probe: two scans sharing one state file each
    wrote their own counts back over the other's (3 + 3 violations stored
    as 3, no blacklist)."""
    db = tmp_path / "state.db"
    holder = SqliteStore(str(db))
    try:
        code, out, err = _scan_with_state(db, tmp_path, capsys)
    finally:
        holder.close()
    assert (code, out) == (2, "")
    assert "locked by another process (another scan using it" in err
    assert _scan_with_state(db, tmp_path, capsys)[0] == 0  # free again once the other run ends


def test_a_state_file_refused_after_it_opened_is_closed_again(tmp_path, capsys):
    """Found in review: a file opened and then refused (a foreign row) stayed
    locked for the rest of the process."""
    import sqlite3

    db = tmp_path / "state.db"
    SqliteStore(str(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO offenders VALUES (?, ?, ?)", ("scan", b'"x"', b'{"v":{},"b":true}'))
    conn.close()
    assert _scan_with_state(db, tmp_path, capsys)[0] == 2
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM offenders")
    conn.close()
    assert _scan_with_state(db, tmp_path, capsys)[0] == 0


def test_another_programs_database_is_refused_and_left_alone(tmp_path, capsys):
    """Found by a hostile-input probe: ``--state other_app.db`` was used, and
    an offenders table added to it."""
    import sqlite3

    db = tmp_path / "other_app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    code, out, err = _scan_with_state(db, tmp_path, capsys)
    assert (code, out) == (2, "") and "not a usable screener state file (it holds other tables: users)" in err
    with sqlite3.connect(db) as conn:
        assert [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["users"]
    conn.close()


def test_a_state_file_locked_or_not_a_file_is_refused_before_screening(tmp_path, capsys):
    import sqlite3

    db = tmp_path / "state.db"
    SqliteStore(str(db)).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program writing it
    try:
        code, out, err = _scan_with_state(db, tmp_path, capsys)
    finally:
        other.close()
    assert (code, out) == (2, "") and "locked by another process" in err
    code, out, err = _scan_with_state("/dev/null", tmp_path, capsys)
    assert (code, out) == (2, "") and "not a regular file" in err


def test_a_state_file_without_offender_rules_is_named_unused(tmp_path, capsys):
    from screener.cli import main

    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": 1, "text": "赌博", "account_id": "a"}\n', encoding="utf-8")
    assert main(["scan", "--policy", "none", "--state", str(tmp_path / "s.db"), str(posts)]) == 0
    assert "is not used: the policy counts no offenders" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


def test_forgotten_accounts_become_tombstones():
    o = offenders(window_s=100)
    o.violation("p0", "a", 1, 0)
    o.take_changes("p0")
    o.shard("p0").clock = 1000
    o.sweep("p0")
    assert o.take_changes("p0") == [(orjson.dumps("a"), None)]


@pytest.mark.parametrize("value,expected", [
    (1_700_000_000, 1_700_000_000.0),
    (1_700_000_000_123, 1_700_000_000.123),
    ("2023-11-14T22:13:20Z", 1_700_000_000.0),
    ("2023-11-14T22:13:20", 1_700_000_000.0),
])
def test_event_time(value, expected):
    assert event_time({"published_at": value}) == pytest.approx(expected)
    assert event_time({}, 42.0) == 42.0


NOW = 1_800_000_000.0  # processing time in the table below
OUTSIDE = "is outside 1970..now+1d; processing time used"


@pytest.mark.parametrize("obj,fallback,expected,note", [
    ({"published_at": 1_700_000_000}, None, 1_700_000_000.0, None),
    ({"published_at": NOW + DAY - 1}, None, NOW + DAY - 1, None),  # clocks drift: a day ahead is believed
    ({"published_at": 0}, None, 0.0, None),
    ({"published_at": "9999-12-31T23:59:59-01:00"}, None, NOW, f"published_at '9999-12-31T23:59:59-01:00' {OUTSIDE}"),
    ({"published_at": 1e20}, None, NOW, f"published_at 1e+20 {OUTSIDE}"),
    ({"published_at": -1e20}, None, NOW, f"published_at -1e+20 {OUTSIDE}"),
    ({"published_at": float("nan")}, None, NOW, f"published_at nan {OUTSIDE}"),
    ({"published_at": float("inf")}, None, NOW, f"published_at inf {OUTSIDE}"),
    ({"published_at": "0001-01-01"}, None, NOW, f"published_at '0001-01-01' {OUTSIDE}"),
    ({"published_at": -1}, None, NOW, f"published_at -1 {OUTSIDE}"),
    ({"published_at": NOW + 2 * DAY}, None, NOW, f"published_at {NOW + 2 * DAY!r} {OUTSIDE}"),
    ({"published_at": 10**400}, None, NOW, f"published_at {str(10**400)[:57]}... is not a time; processing time used"),
    ({"published_at": "yesterday"}, 5.0, 5.0, "published_at 'yesterday' is not a time; record timestamp used"),
    ({"published_at": True}, None, NOW, "published_at True is not a time; processing time used"),
    ({}, 1_700_000_000.5, 1_700_000_000.5, None),
    ({}, -0.001, NOW, f"record timestamp -0.001 {OUTSIDE}"),  # Kafka's "no timestamp" (-1 ms)
    ({}, None, NOW, None),
])
def test_event_times_outside_1970_to_tomorrow_become_processing_time(obj, fallback, expected, note):
    assert event_time_checked(obj, fallback, now=NOW) == (expected, note)
    iso(event_time_checked(obj, fallback)[0])  # never raises


@pytest.mark.parametrize("t", [-1e20, -62135596801.0, 253402300800.0, 1e20, float("nan"), float("inf"), -float("inf"), 0.0])
def test_iso_never_raises(t):
    assert len(iso(t)) == len("1970-01-01T00:00:00.000Z")


@pytest.mark.parametrize("stamps", [
    ["9999-12-31T23:59:59-01:00"] * 6, [1e20] * 6, [-1e20] * 6, ["0001-01-01"] * 6,
    ["9999-12-31T23:59:59-01:00", 1e20, -1e20, "0001-01-01", "recent", 1e19],
])
def test_far_future_and_ancient_posts_blacklist_without_killing_the_scan(capsys, tmp_path, stamps):
    """Flagged posts with impossible times used to raise 'year 10000 is out
    of range' when their blacklist event was written."""
    import time
    from datetime import datetime

    from screener.cli import main

    recent = int(time.time()) - 3600
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(b"".join(orjson.dumps({"id": i, "text": "你个傻逼", "account_id": "u1",
                                             "published_at": recent if t == "recent" else t}) + b"\n"
                               for i, t in enumerate(stamps)))
    assert main(["scan", "--progress", "off", "--state", str(tmp_path / "s.sqlite"), str(posts)]) == 0
    out, err = capsys.readouterr()
    events = [orjson.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in events if e["kind"] == "post"] == ["flag"] * 5 + ["recall"]
    [blacklist] = [e for e in events if e["kind"] == "account_blacklist"]
    assert sorted(blacklist["post_ids"]) == [0, 1, 2, 3, 4] and blacklist["trigger_post_id"] == 4
    at = datetime.fromisoformat(blacklist["at"].replace("Z", "+00:00")).timestamp()
    assert abs(at - (recent if stamps[4] == "recent" else time.time())) < 600  # the time of post 4, or now
    assert "blacklisted=1" in err


# -- offender windows are per account; one outlier moves no clock ---------------------------
def test_one_accounts_far_future_post_does_not_age_another_accounts_violations():
    o = offenders()
    o.violation("p0", "a", 1, 100)
    o.violation("p0", "a", 2, 200)
    assert o.violation("p0", "outlier", 9, 1e12) == []  # another account, far ahead
    [event] = o.violation("p0", "a", 3, 300)
    assert event["post_ids"] == [1, 2, 3]


def test_an_accounts_window_follows_its_own_latest_violation():
    o = offenders()
    o.violation("p0", "a", 1, 0)
    o.violation("p0", "a", 2, 10)
    assert o.violation("p0", "a", 3, HOUR + 5) == []  # post 1 left a's own window
    assert o.violation("p0", "a", 4, 20)[0]["post_ids"] == [2, 4, 3]  # late, but inside a's window


@pytest.mark.parametrize("batches,clock", [
    ([[100.0, 101.0, 102.0]], 101.0),
    ([[100.0, 101.0, 9e12]], 101.0),  # an outlier in a batch
    ([[100.0] * 5, [9e12]], 100.0),  # an outlier as a batch of its own
    ([[100.0] * 5, [9e12], [200.0]], 200.0),  # then time moves on
    ([[100.0], [200.0], [300.0], [400.0]], 200.0),  # real time moves it, a batch or two behind
    ([[100.0], [9e12], [9e12], [9e12]], NOW + DAY),  # a sustained move, never beyond now + 1 day
])
def test_the_shard_clock_moves_by_medians(batches, clock):
    o = offenders()
    o.violation("p0", "a", 1, 100.0)
    for times in batches:
        tracker = OffenderTracker(o, lambda i: "p0", lambda i: 0.0)
        tracker.finish({"p0": batch_clock(times, now=NOW)}, now=NOW)
    assert o.shard("p0").clock == clock


def test_sample_and_batch_clock():
    assert sample(list(range(10)), 31) == list(range(10)) and len(sample(list(range(4096)))) == 31
    assert batch_clock([3.0, float("nan"), 1.0, 2.0], now=NOW) == 2.0
    with pytest.raises(ValueError):
        batch_clock([])


@pytest.mark.parametrize("times,fallbacks,clock", [
    ([100, 200, 300], None, 200.0),
    ([100, "9999-12-31", 300], None, 300.0),  # not believed: no vote (its processing time would pull to now)
    (["9999-12-31", -5], None, None),  # nothing believed: the clock stays
    ([None, None, None], [100.0, 200.0, -0.001], 200.0),  # record times of messages without published_at
    ([None, None], None, None),  # no time at all (profiles in scan): the clock stays
])
def test_clock_of_a_batch_counts_believed_times_only(times, fallbacks, clock):
    objects = [{} if t is None else {"published_at": t} for t in times]
    assert clock_of(objects, fallbacks.__getitem__ if fallbacks else None, now=NOW) == clock


def test_shard_clocks_per_partition():
    objects = [{"published_at": t} for t in (100, 5000, 200, 6000, 300, "9999-12-31")]
    assert shard_clocks(objects, lambda i: i % 2, now=NOW) == {0: 200.0, 1: 6000.0}


ACCOUNTS = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "accounts.jsonl"


@pytest.fixture(scope="module")
def shipped_engine():
    from screener.judge import Engine

    root = ACCOUNTS.parent.parent
    return Engine.build(root / "lexicons", root / "policy" / "default.policy", "aho")


def offenders_of(engine) -> Offenders:
    return Offenders(engine.policy.offenders)


def _outlier(stamp) -> bytes:
    return orjson.dumps({"id": 999, "text": "你个傻逼", "account": {"id": "clock-breaker"}, "published_at": stamp}) + b"\n"


def _shifted(lines: list[bytes], years: int) -> list[bytes]:
    """The example as an archive: every published_at ``years`` earlier."""
    out = []
    for line in lines:
        obj = orjson.loads(line)
        if "published_at" in obj:
            obj["published_at"] = obj["published_at"].replace("2026-", f"{2026 - years}-")
        out.append(orjson.dumps(obj) + b"\n")
    return out


def _drive(engine, batches: list[list[bytes]], state: Offenders) -> list[dict]:
    """Offender events of the batches, as scan.ScanState drives the tracker,
    with the clock the front ends are to pass (clock_of the batch)."""
    from screener.decode import decode_batch

    events = []
    for lines in batches:
        objects, texts, rejected = decode_batch(lines, 1 << 18)
        assert not rejected
        tracker = OffenderTracker(state, lambda i: "scan", lambda i: event_time(objects[i]))
        engine.judge(objects, texts, tracker)
        clock = clock_of(objects)
        events += tracker.finish({"scan": clock} if clock is not None else {})
    return events


def _blacklists(events: list[dict]) -> list[tuple]:
    return [(e["kind"], e["event_id"], e["account_id"], e["post_ids"], e["trigger_post_id"], e["at"]) for e in events]


@pytest.mark.parametrize("years", [0, 6])  # as shipped, and as an archive scanned years later
@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-01:00", 1e20, -1e20, "0001-01-01"])
@pytest.mark.parametrize("where", ["front", "end", "both", "end, a batch of its own", "every line a batch"])
def test_accounts_example_blacklists_u9_whatever_another_account_posts(shipped_engine, years, stamp, where):
    lines = _shifted(ACCOUNTS.read_bytes().splitlines(keepends=True), years)
    expected = _blacklists(_drive(shipped_engine, [lines], offenders_of(shipped_engine)))
    assert [(kind, account, posts) for kind, _, account, posts, _, _ in expected] == [
        ("account_blacklist", "u9", [101, 102, 103, 104, 105])]
    outlier = _outlier(stamp)
    batches = {
        "front": [[outlier, *lines]],
        "end": [[*lines, outlier]],
        "both": [[outlier, *lines, outlier]],
        "end, a batch of its own": [lines, [outlier]],
        "every line a batch": [[line] for line in [outlier, *lines, outlier]],
    }[where]
    assert _blacklists(_drive(shipped_engine, batches, offenders_of(shipped_engine))) == expected


@pytest.mark.parametrize("split", range(1, 10))
@pytest.mark.parametrize("outlier", [False, True])
def test_accounts_example_gives_the_same_answer_across_a_restore(shipped_engine, split, outlier):
    """Two runs of scan --state: the second restores what the first saved."""
    lines = _shifted(ACCOUNTS.read_bytes().splitlines(keepends=True), 6)
    lines = [_outlier("9999-12-31T23:59:59-01:00"), *lines] if outlier else lines
    expected = _blacklists(_drive(shipped_engine, [lines], offenders_of(shipped_engine)))
    first = offenders_of(shipped_engine)
    events = _drive(shipped_engine, [lines[:split]], first)
    second = offenders_of(shipped_engine)
    second.restore("scan", first.take_changes("scan"))
    events += _drive(shipped_engine, [lines[split:]], second)
    assert _blacklists(events) == expected


# -- scan mode: SQLite state across runs, the stricter policy, the audit trail -------------
def _posts(ids, text="你是坏蛋", account="a", start=1_700_000_000):
    return b"".join(orjson.dumps({"id": i, "text": text, "account": {"id": account},
                                  "published_at": start + i}) + b"\n" for i in ids)


def _events(buffer: io.BytesIO) -> list[dict]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_scan_state_survives_a_restart_and_tightens_policy(make_lexicon, tmp_path):
    from screener.judge import Engine

    root = make_lexicon(FILES, MANIFEST)
    policy = tmp_path / "p.policy"
    policy.write_text("offenders: threshold=2 window=1h clear=true\n"
                      "hit escalate: account.blacklisted=true -> escalate\n", encoding="utf-8")
    engine = Engine.build(root, policy, "aho")
    settings = Settings(lexicons=str(root), policy=str(policy), state=str(tmp_path / "state.sqlite"),
                        audit=str(tmp_path / "audit.jsonl"), dead_letter=str(tmp_path / "dead.jsonl"), progress="off")
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(_posts([1]))
    second.write_bytes(_posts([2, 3]))

    out = io.BytesIO()
    run_scan(settings, engine, [str(first)], out)
    assert [e["action"] for e in _events(out)] == ["flag"]
    out = io.BytesIO()  # a new process: state comes back from SQLite
    summary = run_scan(settings, engine, [str(second)], out)
    events = _events(out)
    assert [(e["kind"], e.get("action")) for e in events] == [("post", "flag"), ("post", "recall"), ("account_blacklist", None)]
    assert events[1]["hits"][0]["policy_rule"] == "escalate" and events[1]["hits"][0]["lexicon_action"] == "flag"
    assert events[2]["post_ids"] == [1, 2] and summary.blacklisted == 1
    assert summary.posts == summary.passed + summary.flagged + summary.recalled + summary.dead_lettered

    store = SqliteStore(str(tmp_path / "state.sqlite"))
    [(key, value)] = store.load("scan")
    assert key == b'"a"' and orjson.loads(value)["b"] is True
    store.close()

    from screener.cli import main

    assert main(["audit", "--audit", str(tmp_path / "audit.jsonl"), "--account", "a", "--json"]) == 0


def test_a_post_screened_again_gets_the_same_decision_and_event(make_lexicon, tmp_path):
    """Found by a policy probe: the same file scanned twice with --state
    flagged posts 1-5 and then recalled all five with new event ids; a post
    delivered twice in one run was flagged, then recalled."""
    from screener.judge import Engine

    root = make_lexicon(FILES, MANIFEST)
    policy = tmp_path / "p.policy"
    policy.write_text("offenders: threshold=3 window=1h\nhit escalate: account.blacklisted=true -> escalate\n",
                      encoding="utf-8")
    engine = Engine.build(root, policy, "aho")
    settings = Settings(lexicons=str(root), policy=str(policy), state=str(tmp_path / "state.sqlite"),
                        dead_letter=str(tmp_path / "dead.jsonl"), progress="off")
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(_posts([1, 2, 3, 2, 4]))
    runs = []
    for _ in range(2):
        out = io.BytesIO()
        run_scan(settings, engine, [str(posts)], out)
        runs.append([(e["post_id"], e["action"], e["event_id"]) for e in _events(out) if e["kind"] == "post"])
    assert [(post, action) for post, action, _ in runs[0]] == [(1, "flag"), (2, "flag"), (3, "flag"), (2, "flag"),
                                                             (4, "recall")]
    assert runs[1] == runs[0]


@pytest.mark.parametrize("undated_at", [0, 3, 7])
def test_an_undated_post_counts_at_the_streams_time_not_now(make_lexicon, tmp_path, undated_at):
    """Found by a policy probe: in an archive, one post without a
    published_at counted at processing time, became its account's latest
    violation and expired the archived ones: no blacklist."""
    from screener.judge import Engine

    root = make_lexicon(FILES, MANIFEST)
    policy = tmp_path / "p.policy"
    policy.write_text("offenders: threshold=5 window=30d\n", encoding="utf-8")
    engine = Engine.build(root, policy, "aho")
    settings = Settings(policy=str(policy), dead_letter=str(tmp_path / "dead.jsonl"), progress="off", batch_records=3)
    start = 1_700_000_000  # 2023: long before now
    lines = [orjson.dumps({"id": i, "text": "你是坏蛋", "account": {"id": "a"}, "published_at": start + i * HOUR})
             for i in range(8)]
    lines.insert(undated_at, orjson.dumps({"id": "undated", "text": "你是坏蛋", "account": {"id": "a"}}))
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(b"\n".join(lines) + b"\n")
    out = io.BytesIO()
    summary = run_scan(settings, engine, [str(posts)], out)
    assert summary.blacklisted == 1, [e for e in _events(out) if e["kind"] != "post"]


def test_audit_answers_what_when_which_versions_why(make_lexicon, tmp_path, capsys):
    from screener.cli import main

    root = make_lexicon({**FILES, "abuse": "坏蛋\nallow: 坏蛋糕\n"}, MANIFEST)
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(b'{"id": 1, "text": "\\u4f60\\u662f\\u574f\\u86cb", "account_id": "a", "published_at": "9999-01-01"}\n'
                      b'{"id": 2, "text": "\\u574f\\u86cb\\u7cd5\\u597d\\u5403", "account_id": "a"}\n'
                      b'{"id": 3, "text": "nothing here", "account_id": "b"}\n'
                      b'not json\n')
    audit_log = tmp_path / "audit.jsonl"
    assert main(["scan", "--lexicons", str(root), "--policy", "none", "--audit", str(audit_log),
                 "--dead-letter", str(tmp_path / "dead.jsonl"), str(posts)]) == 0
    capsys.readouterr()
    records = [orjson.loads(line) for line in audit_log.read_bytes().splitlines()]
    kinds = sorted((r["kind"], r.get("post_id")) for r in records)
    assert kinds == [("dead_letter", None), ("decision", 1), ("decision", 2)]  # post 3: a plain pass, not recorded
    assert all(r["lexicon_version"] and r["policy_version"] == "none" and r["worker"] for r in records)

    assert main(["audit", "--audit", str(audit_log), "--post", "2"]) == 0
    out = capsys.readouterr().out
    assert 'post 2 of account "a": PASS' in out and "suppressed '坏蛋' = '坏蛋' (abuse): inside allow entry '坏蛋糕'" in out
    assert main(["audit", "--audit", str(audit_log), "--post", "1"]) == 0
    out = capsys.readouterr().out
    assert "FLAG" in out and "rule abuse/" in out and '"line":1' in out
    # the note on how the post was read is in the text too, not only in --json (policy probe)
    assert "note: published_at '9999-01-01' is outside 1970..now+1d; processing time used" in out
    assert main(["audit", "--audit", str(audit_log), "--account", "a", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["audit", "--audit", str(audit_log), "--post", "99"]) == 1


@pytest.mark.parametrize("account", ["a", 7, 7.5, ["x", 1], {"k": 1}])
def test_any_json_account_id_can_be_blacklisted(account):
    o = offenders(threshold=1)
    assert o.violation("p0", account, 1, 1)[0]["account_id"] == account
    assert o.is_blacklisted("p0", account)
    assert not o.is_blacklisted("p0", "other") and not o.is_blacklisted("p0", True)


def test_accounts_example_events_of_every_kind_validate(capsys):
    """examples/accounts.jsonl through the shipped lexicon and policy: five
    flags blacklist u9, its sixth post is escalated, its profile is recalled."""
    import json
    from pathlib import Path

    import jsonschema

    from screener.cli import main

    root = Path(__file__).resolve().parent.parent
    schema = json.loads((root / "screener" / "schema" / "event.schema.json").read_text())
    assert main(["scan", "--progress", "off", str(root / "examples" / "accounts.jsonl")]) == 0
    out, err = capsys.readouterr()
    events = [orjson.loads(line) for line in out.splitlines()]
    checker = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for event in events:
        checker.validate(event)
    assert [(e["kind"], e.get("action")) for e in events] == [
        *[("post", "flag")] * 5, ("post", "recall"), ("profile_flag", "recall"), ("account_blacklist", None)]
    assert events[5]["hits"][0]["policy_rule"] == "blacklisted-escalate"
    assert [h["field"] for h in events[6]["hits"]] == ["name", "bio"]
    assert "posts=9 passed=2 flagged=5 recalled=2 dead_lettered=0 blacklisted=1" in err
