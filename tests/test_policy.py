"""Account-aware policy and profiles: table-driven, against every matcher backend.

Terms of political categories are neutral placeholders (示例时政词, 示例官员名):
screener does not author such lists.
"""

from __future__ import annotations

import textwrap

import pytest

from screener.errors import LexiconError
from screener.judge import Engine, Tracker
from screener.lexicon import load_lexicons
from screener.pipeline import Screener
from screener.policy import EMPTY_POLICY, PolicyError, load_policy

MANIFEST = """
[categories.news]
title_zh = "时政"
title_en = "Current-affairs news"
action = "flag"
severity = 2
[categories.abuse]
title_zh = "辱骂"
title_en = "Abuse"
action = "flag"
severity = 2
[categories.drugs]
title_zh = "毒品"
title_en = "Drugs"
action = "recall"
severity = 5
[categories.officials]
title_zh = "官员姓名"
title_en = "Officials' names"
action = "flag"
severity = 4
scope = "profile"
"""
FILES = {"news": "示例时政词\n", "abuse": "坏蛋\n", "drugs": "大麻\n", "officials": "示例官员名\n"}
POLICY = """
# a comment
list trusted: t1, t2
list denied: @denied.txt
hit news-licensed: category=news account.news_license=true -> pass
hit gov-abuse: category=abuse account.type=government -> recall
hit org-abuse: category=abuse account.type=organisation,school -> pass
hit escalate-blacklisted: account.blacklisted=true -> escalate
post denied: account.id=@denied -> recall
post trusted: account.id=@trusted -> pass
profile officials-in-name: category=officials field=name -> recall
offenders: threshold=2 window=1h clear=true
"""


@pytest.fixture
def engine_for(make_lexicon, tmp_path):
    def build(backend: str, policy: str = POLICY) -> Engine:
        root = make_lexicon(FILES, MANIFEST)
        (root / "denied.txt").write_text("d1\n# a comment\nd2\n", encoding="utf-8")
        path = root / "screener.policy"
        path.write_text(textwrap.dedent(policy), encoding="utf-8")
        return Engine.build(root, path, backend)
    return build


class Blacklisted(Tracker):
    """Blacklists ``ids``, and records every violation the judge reports."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids
        self.violations: list[tuple[str, str]] = []

    def blacklisted(self, index, account_id, post_id=None):
        return account_id in self.ids

    def violation(self, index, account_id, post_id, action):
        self.violations.append((account_id, action))


# (text, account object, blacklisted?, verdict, policy rules that decided)
POST_CASES = [
    ("今天天气不错", {"id": "u1", "type": "individual"}, False, "pass", []),
    # Gejiu Art. 9: current-affairs news only from licensed accounts
    ("转发示例时政词", {"id": "u1", "type": "individual", "news_license": False}, False, "flag", []),
    ("转发示例时政词", {"id": "u1", "type": "individual"}, False, "flag", []),  # attribute absent: not licensed
    ("转发示例时政词", {"id": "n1", "type": "organisation", "news_license": True}, False, "pass", ["news-licensed"]),
    # per-account-type overrides of a category's action
    ("你是坏蛋", {"id": "u1", "type": "individual"}, False, "flag", []),
    ("你是坏蛋", {"id": "g1", "type": "government"}, False, "recall", ["gov-abuse"]),
    ("你是坏蛋", {"id": "o1", "type": "school"}, False, "pass", ["org-abuse"]),
    # deny and allow lists (the deny list read from a file)
    ("今天天气不错", {"id": "d1"}, False, "recall", ["denied"]),
    ("今天天气不错", {"id": "d2", "type": "individual"}, False, "recall", ["denied"]),
    ("卖大麻", {"id": "t1"}, False, "pass", ["trusted"]),
    # blacklisted accounts meet the stricter policy
    ("你是坏蛋", {"id": "b1"}, True, "recall", ["escalate-blacklisted"]),
    ("今天天气不错", {"id": "b1"}, True, "pass", []),
    # only the offender state blacklists: a post saying so of its own account is not believed
    ("你是坏蛋", {"id": "u1", "blacklisted": True}, False, "flag", []),
    # the strictest counted hit decides; a policy pass removes only its hit
    ("转发示例时政词，卖大麻", {"id": "n1", "news_license": True}, False, "recall", ["news-licensed"]),
]


@pytest.mark.parametrize("text,account,blacklisted,verdict,rules", POST_CASES)
def test_post_policy(engine_for, backend, text, account, blacklisted, verdict, rules):
    engine = engine_for(backend)
    tracker = Blacklisted({account["id"]} if blacklisted else set())
    judged = engine.judge([{"id": 1, "text": text, "account": account}], [text], tracker)
    assert (judged[0].action if judged else "pass") == verdict
    assert (judged[0].policy_rules if judged else []) == rules
    # What the offender state counts: every post the policy did not pass (a
    # post rule's verdict too), and nothing else (a review: no test looked).
    assert tracker.violations == ([] if verdict == "pass" else [(account["id"], verdict)])


def test_account_id_field_is_the_account_when_no_account_object(engine_for, backend):
    engine = engine_for(backend)
    judged = engine.judge([{"id": 1, "text": "天气", "account_id": "d1"}], ["天气"])
    assert judged[0].action == "recall" and judged[0].account == {"id": "d1"}


# (name, bio, verdict, fields hit)
PROFILE_CASES = [
    ("普通用户", "喜欢旅行", "pass", []),
    ("示例官员名粉丝团", "", "recall", ["name"]),  # the name policy: officials in a name are recalled
    ("旅行家", "关注示例官员名", "flag", ["bio"]),  # in a bio: the category's action
    ("大麻烦制造者", "", "recall", ["name"]),  # substring mode: 大麻 is found even inside 大麻烦
]


@pytest.mark.parametrize("name,bio,verdict,fields", PROFILE_CASES)
def test_profile_policy(engine_for, backend, name, bio, verdict, fields):
    engine = engine_for(backend)
    obj = {"id": "u9", "kind": "profile", "name": name, "bio": bio}
    judged = engine.judge([obj], [""])
    assert (judged[0].action if judged else "pass") == verdict
    assert [h.field for h in (judged[0].counted if judged else [])] == fields


def test_profile_only_categories_do_not_screen_posts(engine_for, backend):
    engine = engine_for(backend)
    assert engine.judge([{"id": 1, "text": "示例官员名"}], ["示例官员名"]) == []
    # ... and posts keep word mode where profiles do not
    assert engine.judge([{"id": 1, "text": "这是个大麻烦"}], ["这是个大麻烦"])[0].action == "pass"


def test_posts_and_profiles_share_one_compiled_matcher(engine_for):
    engine = engine_for("aho")
    assert engine.profiles.matcher is engine.posts.matcher


def test_no_policy_keeps_lexicon_actions(make_lexicon, backend):
    engine = Engine.of(Screener(load_lexicons(make_lexicon(FILES, MANIFEST)), backend), EMPTY_POLICY)
    judged = engine.judge([{"id": 1, "text": "你是坏蛋", "account": {"type": "government"}}], ["你是坏蛋"])
    assert judged[0].action == "flag" and judged[0].policy_rules == []


def test_rules_with_empty_lists_cost_nothing(tmp_path):
    path = tmp_path / "p.policy"
    path.write_text("list denied:\npost denied: account.id=@denied -> recall\n", encoding="utf-8")
    policy = load_policy(path, ["x"])
    assert not policy.has_post_rules and len(policy.rules["post"]) == 1


BAD_POLICIES = [
    ("hit a: category=abuse -> delete", 1, "effect must be one of pass, flag, recall, escalate"),
    ("hit a: category=abuse", 1, "missing '-> EFFECT'"),
    ("post a: category=abuse -> flag", 1, "a post rule may test account.<attribute>, not 'category'"),
    ("hit a: account.id=@missing -> flag", 1, "unknown list 'missing'"),
    ("hit a: category~abuse -> flag", 1, "expected KEY=VALUE or KEY!=VALUE"),
    ("hit a: -> flag\nhit a: -> pass", 2, "rule id 'a' already used at line 2"),
    ("rule a: -> flag", 1, "unknown statement 'rule a'"),
    ("just words", 1, "expected 'list NAME: ...'"),
    ("offenders: threshold=0", 1, "bad option 'threshold=0'"),
    ("offenders: threshold=²", 1, "bad option 'threshold=²'"),  # str.isdigit() says yes, int() says no
    ("offenders: threshold=٣", 1, "bad option 'threshold=٣'"),
    ("offenders: threshold=1001", 1, "bad option 'threshold=1001'"),
    ("offenders: threshold=" + "9" * 5000, 1, "bad option"),
    ("offenders: threshold=", 1, "bad option 'threshold='"),
    ("offenders: threshold=-1", 1, "bad option 'threshold=-1'"),
    ("offenders: threshold=5 window=99999999999999999999d", 1, "bad option 'window=99999999999999999999d'"),
    ("offenders: threshold=5 window=367d", 1, "bad option 'window=367d'"),
    ("offenders: threshold=5 window=0s", 1, "bad option 'window=0s'"),
    ("offenders: threshold=5 window=²d", 1, "bad option 'window=²d'"),
    ("offenders: threshold=5 window=", 1, "bad option 'window='"),
    ("offenders: threshold=5 window=1w", 1, "window=Ns|Nm|Nh|Nd (1s-366d)"),
    ("offenders: threshold=5 window=30", 1, "bad option 'window=30'"),
    ("offenders: window=1d", 1, "threshold=N is required"),
    ("list a: @no-such-file.txt", 1, "no-such-file.txt: No such file or directory"),  # the reason, not [Errno 2]
    ("hit a: action=pass -> flag", 1, "action is flag or recall"),
    ("hit a: account.blacklisted=maybe -> flag", 1, "account.blacklisted is true or false"),  # found by a probe
    ("hit a: category=,, -> flag", 1, "condition 'category=,,': no value to compare with"),
]


@pytest.mark.parametrize("text,line,reason", BAD_POLICIES)
def test_bad_policy_is_rejected_with_path_line_reason(tmp_path, text, line, reason):
    path = tmp_path / "bad.policy"
    path.write_text("# header\n" + text + "\n", encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(path, ["abuse"])
    assert any(p.line == line + 1 and reason in p.reason for p in err.value.problems), err.value.problems
    assert all(str(p).startswith(f"{path}:") for p in err.value.problems)


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.policy"
    path.write_text("hit a: account.id=@nope -> flag\nhit b: -> nope\n", encoding="utf-8")
    with pytest.raises(LexiconError) as err:  # a PolicyError is a LexiconError: same CLI handling
        load_policy(path, ["abuse"])
    assert [p.line for p in err.value.problems] == [1, 2]


def test_offender_bounds_are_accepted_at_their_limits(tmp_path):
    path = tmp_path / "p.policy"
    path.write_text("offenders: threshold=1000 window=366d\n", encoding="utf-8")
    offenders = load_policy(path, []).offenders
    assert (offenders.threshold, offenders.window_s) == (1000, 366 * 86400)


# (condition, lexicon categories, warning, hits (category, action) → judged action)
ABSENT = [
    ("category=news", {"abuse"}, "category 'news' is not in the lexicon set; rule 'r' never applies",
     [("abuse", "flag", "flag")]),
    ("category=news,abuse", {"abuse"}, "category 'news' is not in the lexicon set; that value never matches",
     [("abuse", "flag", "recall")]),
    ("category!=news", {"abuse"}, "category 'news' is not in the lexicon set; the condition holds for every hit",
     [("abuse", "flag", "recall")]),
    ("category!=news,abuse", {"abuse"}, "category 'news' is not in the lexicon set; that value never excludes a hit",
     [("abuse", "flag", "flag")]),
]


@pytest.mark.parametrize("condition,categories,warning,hits", ABSENT)
def test_rules_for_absent_categories_are_warnings(tmp_path, condition, categories, warning, hits):
    """The shipped policy must work with an operator's own lexicons: a rule
    for a category the set lacks is a warning, and behaves as if the
    category existed but never hit."""
    path = tmp_path / "p.policy"
    path.write_text(f"# header\nhit r: {condition} -> recall\n", encoding="utf-8")
    policy = load_policy(path, categories)
    assert [str(w) for w in policy.warnings] == [f"{path}:2: condition {condition!r}: {warning}"]
    for category, action, judged in hits:
        assert policy.judge_hit("hit", {}, {"category": category, "action": action}, action)[0] == judged


def test_shipped_policy_works_with_a_lexicon_without_its_categories(make_lexicon, backend):
    from screener.settings import shipped_policy

    engine = Engine.build(make_lexicon({"gambling": "赌博\n"}), shipped_policy(), backend)
    assert [w.reason for w in engine.policy.warnings] == [
        "condition 'category=current_affairs_news': category 'current_affairs_news' is not in the lexicon set; "
        "rule 'news-licensed' never applies"]
    judged = engine.judge([{"id": 1, "text": "网上赌博", "account": {"id": "u1", "news_license": True}}], ["网上赌博"])
    assert judged[0].action == "flag"


def test_unreadable_policy_is_path_line_reason(tmp_path):
    folder = tmp_path / "p.policy"
    folder.mkdir()
    with pytest.raises(PolicyError) as err:
        load_policy(folder, [])
    assert [str(p) for p in err.value.problems] == [f"{folder}:0: is a directory"]
    loop = tmp_path / "loop.policy"
    loop.symlink_to(loop)
    with pytest.raises(PolicyError) as err:
        load_policy(loop, [])
    assert [p.line for p in err.value.problems] == [0]


def test_policy_version_changes_with_its_lists(tmp_path):
    (tmp_path / "ids.txt").write_text("a\n", encoding="utf-8")
    path = tmp_path / "p.policy"
    path.write_text("list x: @ids.txt\npost p: account.id=@x -> flag\n", encoding="utf-8")
    first = load_policy(path, []).version
    (tmp_path / "ids.txt").write_text("a\nb\n", encoding="utf-8")
    assert load_policy(path, []).version != first


def test_a_list_file_keeps_values_with_hash_and_skips_a_bom(tmp_path):
    """Found by a hostile-input probe: '#' cut "u#42" to "u" (recalling
    account "u"), and a BOM made the first value never match."""
    (tmp_path / "ids.txt").write_bytes("\ufeffu42\n# a comment\n  # another\nu#43\nu44\t# ticket 9\n\n".encode("utf-8"))
    path = tmp_path / "p.policy"
    path.write_text("list x: @ids.txt\npost p: account.id=@x -> flag\n", encoding="utf-8")
    [rule] = load_policy(path, []).rules["post"]
    assert rule.conditions[0].values == frozenset({"u42", "u#43", "u44"})
    assert [rule.matches({"id": a}, {}) for a in ("u42", "u#43", "u44", "u")] == [True, True, True, False]


def test_blacklisted_false_holds_for_an_account_the_state_does_not_list():
    """Found by a policy probe: only the offender state says blacklisted
    (the judge drops a post's own field), so a rule on false never held."""
    from screener.policy import Condition

    clean = Condition("account.blacklisted", False, frozenset({"false"}), "account.blacklisted=false")
    assert clean.holds({"id": "a"}, {}) and not clean.holds({"id": "a", "blacklisted": True}, {})
    listed = Condition("account.blacklisted", False, frozenset({"true"}), "account.blacklisted=true")
    assert not listed.holds({"id": "a"}, {}) and listed.holds({"blacklisted": True}, {})


def test_a_policy_line_keeps_values_with_hash(tmp_path):
    """Found by a policy probe: inline, 'list denied: u#42, u3' was cut at
    the '#', recalling account "u" and neither of the two."""
    path = tmp_path / "p.policy"
    path.write_text("# a policy\nlist denied: u#42, u3  # from ticket 7\n"
                    "post deny: account.id=@denied -> recall # comment\npost one: account.id=v#1 -> flag\n",
                    encoding="utf-8")
    deny, one = load_policy(path, []).rules["post"]
    assert deny.conditions[0].values == frozenset({"u#42", "u3"}) and deny.effect == "recall"
    assert [deny.matches({"id": a}, {}) for a in ("u#42", "u3", "u")] == [True, True, False]
    assert one.conditions[0].values == frozenset({"v#1"})


def test_an_account_attribute_nested_deeper_than_str_goes_matches_no_word(tmp_path):
    path = tmp_path / "p.policy"
    path.write_text("post gov: account.type=government -> flag\npost other: account.type!=government -> recall\n",
                    encoding="utf-8")
    deep: object = "government"
    for _ in range(5000):
        deep = [deep]
    rules = load_policy(path, []).rules["post"]
    assert [r.matches({"type": deep}, {}) for r in rules] == [False, True]


def test_shipped_policy_loads_against_shipped_lexicons(shipped):
    from screener.settings import shipped_policy

    policy = load_policy(shipped_policy(), shipped.categories)
    assert policy.offenders.enabled and "news-licensed" in [r.id for r in policy.rules["hit"]]


def test_explain_shows_the_deciding_rule(engine_for, capsys):
    from screener.explain import explain, render

    report = explain(engine_for("aho"), "你是坏蛋", {"type": "government"})
    assert report["verdict"] == "recall"
    text = render(report)
    assert "hit gov-abuse" in text and "screener.policy:6" in text and "account.type=government -> recall" in text
    report = explain(engine_for("aho"), "天气", {"id": "d1"})
    assert report["verdict"] == "recall" and report["post_rule"].startswith("post denied")
    report = explain(engine_for("aho"), "示例官员名", profile=True)
    assert report["verdict"] == "recall" and "profile officials-in-name" in render(report)


def test_explain_cli_takes_account_and_profile(capsys):
    from screener.cli import main

    assert main(["explain", "--account", '{"type": "government"}', "--blacklisted", "卖大麻"]) == 0
    out = capsys.readouterr().out
    assert "blacklisted" in out and "verdict    recall" in out
    assert main(["explain", "--profile", "赌博大师", "--bio", "你好"]) == 0
    assert "KEEP     name [0,2) '赌博'" in capsys.readouterr().out
    assert main(["explain", "--account", "[1]", "x"]) == 2
