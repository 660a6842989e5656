"""Repeat offenders: the sliding window, its events, and durable state in scan mode."""

from __future__ import annotations

import io

import orjson
import pytest

from screener.offenders import Offenders, SqliteStore, event_time
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


def test_audit_answers_what_when_which_versions_why(make_lexicon, tmp_path, capsys):
    from screener.cli import main

    root = make_lexicon({**FILES, "abuse": "坏蛋\nallow: 坏蛋糕\n"}, MANIFEST)
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(b'{"id": 1, "text": "\\u4f60\\u662f\\u574f\\u86cb", "account_id": "a"}\n'
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
    assert "post 2 of account 'a': PASS" in out and "suppressed '坏蛋' = '坏蛋' (abuse): inside allow entry '坏蛋糕'" in out
    assert main(["audit", "--audit", str(audit_log), "--post", "1"]) == 0
    out = capsys.readouterr().out
    assert "FLAG" in out and "rule abuse/" in out and '"line":1' in out
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
