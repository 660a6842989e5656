"""Events: ids and timestamps (the fast forms write what the uuid module and datetime write), and the fields and keys of each kind."""

from __future__ import annotations

import random
import re
import time
import uuid
from datetime import datetime, timezone

from screener import jsonio
from screener.emit import EVENT_NAMESPACE, event_id, now_iso, uuid4_str, uuid5_str

IDS = [0, 1, "1", -7, jsonio.BigInt(10**30), "帖子-1", "a\u0000b", ["profile", 3], "\U0001F600", "", 2**63 - 1, 1.5]


def test_event_id_is_the_uuid5_it_always_was():
    rng = random.Random(11)
    for post_id in IDS + [rng.getrandbits(64) for _ in range(500)]:
        for version, action in (("06fc0f177d69d874", "flag"), ("v", "recall"), ("", "blacklist")):
            name = jsonio.dumps([post_id, version, action]).decode()
            assert event_id(post_id, version, action) == str(uuid.uuid5(EVENT_NAMESPACE, name))


def test_uuid5_str_matches_the_uuid_module_on_any_bytes():
    rng = random.Random(5)
    for _ in range(2000):
        name = "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x4E00, 0x9FFF)]))
                       for _ in range(rng.randrange(0, 40)))
        namespace = uuid.UUID(int=rng.getrandbits(128))
        assert uuid5_str(namespace.bytes, name.encode()) == str(uuid.uuid5(namespace, name))


def test_uuid4_str_is_a_random_version_4_uuid():
    made = [uuid4_str() for _ in range(1000)]
    assert len(set(made)) == 1000
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_now_iso_is_utc_to_the_millisecond_and_moves_on():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    first = now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first)
    stamp = datetime.fromisoformat(first.replace("Z", "+00:00"))
    assert before <= stamp <= datetime.now(timezone.utc)
    time.sleep(0.003)
    assert now_iso() > first  # the cached text is for one millisecond only


def test_emit_fills_the_fields_and_keys_of_every_kind_of_event(make_lexicon, backend):
    """What a consumer keys and routes on, per kind: a post's event carries
    its account, is keyed by the post id; a profile's by the profile id; an
    account's status change by the account id, with its own action (a review
    found no test that looked at any of these)."""
    from screener.emit import emit
    from screener.judge import Engine

    engine = Engine.build(make_lexicon({"drugs": "冰毒\n"}), None, backend)
    objects = [{"id": 7, "text": "卖冰毒", "account_id": "u1"},
               {"id": "u2", "kind": "profile", "name": "冰毒小店", "text": ""}]
    judged = engine.judge(objects, ["卖冰毒", ""])
    changes = [{"kind": "account_blacklist", "account_id": "u3", "post_ids": [1, 2]},
               {"kind": "account_cleared", "account_id": 4, "post_ids": [1, 2]}]
    out, unfit = emit(engine, objects, judged, changes)
    assert unfit == []
    assert [(e.kind, e.action, e.key) for e in out] == [
        ("post", "flag", b"7"), ("profile_flag", "flag", b'"u2"'),
        ("account_blacklist", "blacklist", b'"u3"'), ("account_cleared", "cleared", b"4")]
    post, profile = (jsonio.loads(e.value) for e in out[:2])
    assert (post["post_id"], post["account_id"], post["categories"]) == (7, "u1", ["drugs"])
    assert (profile["profile_id"], profile["account_id"], "post_id" in profile) == ("u2", "u2", False)
    for e in out[2:]:
        assert jsonio.loads(e.value)["lexicon_version"] == engine.lexicon_version
