"""Accounts against a real broker (Tansu): offender state restored across a
restart and a rebalance, the audit topic, and rescans of a topic.

Posts are keyed by account id, as the README asks of producers, so an
account's posts (and its offender state) live in one partition.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import orjson
import pytest

from .conftest import ROOT, SCREENER, consume, produce

pytestmark = pytest.mark.integration

FLAG = "你个傻逼"  # abuse: flag
PASS = "今天天气不错"
POLICY = """
offenders: threshold=3 window=1h clear=false
hit escalate-blacklisted: account.blacklisted=true -> escalate
"""


def account_posts(items: list[tuple[int, str, str]]) -> tuple[list[bytes], list[bytes]]:
    """(post id, account, text) → values and keys (the account id)."""
    now = int(time.time())
    values = [orjson.dumps({"id": pid, "text": text, "account": {"id": acc, "type": "individual"},
                            "published_at": now}) for pid, acc, text in items]
    return values, [acc.encode() for _, acc, _ in items]


def events_of(records) -> list[dict]:
    return [orjson.loads(r.value) for r in records]


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy" / "test.policy"
    path.parent.mkdir()
    path.write_text(POLICY, encoding="utf-8")
    return str(path)


def test_offender_state_survives_kill_9_and_restart(topics, workers, policy):
    _restored_after_kill_9(topics, workers, policy)


def test_offender_state_restored_by_the_other_client(topics, workers, policy, kafka_client):
    """Operators may switch clients (``--kafka-client``). The confluent
    producer writes lz4-compressed batches, which kafka-python reads only
    with the lz4 package: the changelog one client wrote, the other restores."""
    other = {"confluent": "kafka-python", "kafka-python": "confluent"}[kafka_client]
    pytest.importorskip("confluent_kafka")
    _restored_after_kill_9(topics, workers, policy, {"SCREENER_KAFKA_CLIENT": other})


def _restored_after_kill_9(topics, workers, policy, second_env=None):
    first = workers(topics, "--policy", policy).start()
    values, keys = account_posts([(1, "x", FLAG), (2, "x", FLAG), (3, "y", PASS)])
    produce(topics.bootstrap, topics.input, values, keys)
    first.wait_metric("screener_posts_consumed_total", lambda v: v == 3)
    # The changelog is written before offsets are committed; wait for both.
    deadline = time.monotonic() + 20
    while first.metric("screener_commits_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    first.kill()

    second = workers(topics, "--policy", policy, env=second_env).start()
    values, keys = account_posts([(4, "x", FLAG), (5, "x", FLAG)])
    produce(topics.bootstrap, topics.input, values, keys)
    records = consume(topics.bootstrap, topics.events,
                      lambda r: sum(1 for e in events_of(r) if e.get("post_id") == 5) >= 1)
    events = events_of(records)
    [blacklist] = {e["event_id"]: e for e in events if e["kind"] == "account_blacklist"}.values()
    assert blacklist["account_id"] == "x" and blacklist["post_ids"] == [1, 2, 4] and blacklist["trigger_post_id"] == 4
    by_post = {e["post_id"]: e for e in events if e["kind"] == "post"}
    assert by_post[4]["action"] == "flag"  # the third violation: blacklisted by it, judged before it
    assert by_post[5]["action"] == "recall" and by_post[5]["hits"][0]["policy_rule"] == "escalate-blacklisted"
    assert second.metric("screener_offender_state_restored_total") >= 1
    assert second.terminate() == 0


def test_offender_state_moves_with_its_partition_on_rebalance(topics, workers, tmp_path):
    """Six accounts post ten violations each; the threshold (8) is crossed only
    after a second worker has joined mid-stream and taken partitions: an
    account whose partition moved is blacklisted only if its first posts'
    count moved with it."""
    path = tmp_path / "rebalance.policy"
    path.write_text("offenders: threshold=8 window=1h\n", encoding="utf-8")
    accounts = [f"acc{i}" for i in range(6)]  # spread over the 3 partitions
    items = [(100 * n + i, acc, FLAG) for n in range(1, 11) for i, acc in enumerate(accounts)]
    values, keys = account_posts(items)
    slow = {"SCREENER_POLL_MAX_RECORDS": "3"}
    first = workers(topics, "--policy", str(path), env=slow).start()
    produce(topics.bootstrap, topics.input, values[:30], keys[:30])  # five per account
    first.wait_metric("screener_posts_consumed_total", lambda v: v >= 6)
    second = workers(topics, "--policy", str(path), env=slow).start()  # joins while the first is busy
    first.wait_metric("screener_rebalances_total", lambda v: v >= 2)
    produce(topics.bootstrap, topics.input, values[30:], keys[30:])
    records = consume(topics.bootstrap, topics.events,
                      lambda r: len({e["account_id"] for e in events_of(r) if e["kind"] == "account_blacklist"}) >= 6,
                      timeout=120)
    blacklists = {e["event_id"]: e for e in events_of(records) if e["kind"] == "account_blacklist"}.values()
    assert sorted(e["account_id"] for e in blacklists) == accounts  # each once (replays share the event id)
    for e in blacklists:
        assert len(e["post_ids"]) == 8 and e["trigger_post_id"] == 800 + accounts.index(e["account_id"])
    assert second.metric("screener_posts_consumed_total") > 0  # the newcomer took partitions, with their state
    assert second.metric("screener_offender_state_restored_total") >= 1
    assert first.terminate() == 0 and second.terminate() == 0


def test_audit_topic_and_the_audit_command(topics, workers, tmp_path, kafka_client):
    lexicons = tmp_path / "lexicons"
    shutil.copytree(ROOT / "lexicons", lexicons)
    worker = workers(topics, "--lexicons", str(lexicons)).start()
    values, keys = account_posts([(1, "x", FLAG), (2, "y", PASS)])
    profile = orjson.dumps({"kind": "profile", "id": "x", "name": "赌博大师", "bio": "你好"})
    produce(topics.bootstrap, topics.input, values + [b"not json", profile], keys + [None, b"x"])
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 4)
    events = events_of(consume(topics.bootstrap, topics.events, lambda r: len(r) >= 2))
    [flagged] = [e for e in events if e["kind"] == "profile_flag"]
    assert (flagged["profile_id"], flagged["action"], flagged["hits"][0]["field"]) == ("x", "recall", "name")
    with open(lexicons / "rumour.txt", "a", encoding="utf-8") as f:
        f.write("测试占位词乙\n")  # a neutral placeholder: the reload is audited too
    worker.wait_metric("screener_lexicon_reloads_total", lambda v: v == 1)
    produce(topics.bootstrap, topics.input, account_posts([(3, "z", PASS)])[0])
    records = consume(topics.bootstrap, topics.audit,
                      lambda r: {"decision", "dead_letter", "reload"} <= {orjson.loads(x.value)["kind"] for x in r})
    kinds = [orjson.loads(r.value)["kind"] for r in records]
    assert kinds.count("decision") == 2 and kinds.count("dead_letter") == 1 and kinds.count("reload") == 1
    decision = next(orjson.loads(r.value) for r in records if orjson.loads(r.value).get("subject") == "post")
    assert decision["post_id"] == 1 and decision["source"]["topic"] == topics.input and decision["worker"]
    assert worker.terminate() == 0

    out = subprocess.run([*SCREENER, "audit", "--bootstrap-servers", topics.bootstrap, "--audit-topic", topics.audit,
                          "--post", "1", "--kafka-client", kafka_client], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'post 1 of account "x": FLAG' in out.stdout and "(abuse, rule abuse/" in out.stdout
    out = subprocess.run([*SCREENER, "audit", "--bootstrap-servers", topics.bootstrap, "--audit-topic", topics.audit,
                          "--account", "x", "--json", "--kafka-client", kafka_client], capture_output=True, text=True, timeout=60)
    assert sorted(orjson.loads(line)["subject"] for line in out.stdout.splitlines()) == ["post", "profile"]


def test_rescan_topic_recalls_only_what_became_stricter(topics, workers, tmp_path, kafka_client):
    placeholder = "测试占位词丙"  # neutral: a term added by the update
    lexicons = tmp_path / "lexicons"
    shutil.copytree(ROOT / "lexicons", lexicons)
    worker = workers(topics, "--lexicons", str(lexicons)).start()
    values, keys = account_posts([(1, "a", PASS), (2, "b", f"{placeholder}出现了"), (3, "c", FLAG),
                                  (4, "d", f"{FLAG}{placeholder}")])
    produce(topics.bootstrap, topics.input, values, keys)
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 4)
    consume(topics.bootstrap, topics.events, lambda r: len(r) >= 2)
    assert worker.terminate() == 0

    with open(lexicons / "weapons.txt", "a", encoding="utf-8") as f:
        f.write(f"{placeholder} ; action=recall ; mode=substring\n")
    checkpoint = tmp_path / "rescan.checkpoint"
    args = [*SCREENER, "rescan", "--lexicons", str(lexicons), "--bootstrap-servers", topics.bootstrap,
            "--topic", topics.input, "--from-offset", "0", "--events-topic", topics.events,
            "--audit-topic", topics.audit, "--checkpoint", str(checkpoint), "--kafka-client", kafka_client]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "posts=4" in out.stderr and "stricter=2" in out.stderr
    events = events_of(consume(topics.bootstrap, topics.events, lambda r: len(r) >= 4))
    rescans = sorted((e["post_id"], e["action"], e["rescan"]["previous_action"]) for e in events if "rescan" in e)
    assert rescans == [(2, "recall", "pass"), (4, "recall", "flag")]
    # resumable: the finished checkpoint makes a second run a no-op
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "stricter=2" in again.stderr
    assert len(events_of(consume(topics.bootstrap, topics.events, lambda r: len(r) > 4, timeout=3))) == 4


def test_new_lexicon_starts_a_rescan_of_the_window(topics, workers, tmp_path):
    placeholder = "测试占位词丁"
    lexicons = tmp_path / "lexicons"
    shutil.copytree(ROOT / "lexicons", lexicons)
    worker = workers(topics, "--lexicons", str(lexicons), "--rescan-window-s", "3600").start()
    values, keys = account_posts([(1, "a", f"{placeholder}来了"), (2, "b", PASS)])
    produce(topics.bootstrap, topics.input, values, keys)
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 2)
    with open(lexicons / "weapons.txt", "a", encoding="utf-8") as f:
        f.write(f"{placeholder} ; action=recall ; mode=substring\n")
    worker.wait_metric("screener_rescans_total", lambda v: v >= 1, timeout=60)
    [event] = events_of(consume(topics.bootstrap, topics.events, lambda r: len(r) >= 1))
    assert (event["post_id"], event["action"], event["rescan"]) == (1, "recall", {"previous_action": "pass"})
    assert worker.terminate() == 0
