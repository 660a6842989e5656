"""The operator tools: ``screener explain`` and ``screener lexicon check``."""

from __future__ import annotations

import orjson

from screener.cli import main

from .conftest import LEXICONS


def test_explain_shows_normalisation_candidates_and_reasons(capsys):
    assert main(["explain", "这是个大麻烦，我参加微信公开课，加 微 信 聊"]) == 0
    out = capsys.readouterr().out
    assert "normalised 这是个大麻烦我参加微信公开课加微信聊" in out
    assert "SUPPRESS [3,5) '大麻' = '大麻'" in out and "cuts through the word '麻烦'" in out
    assert "inside allow entry '参加微信'" in out
    assert "KEEP     [16,21) '加 微 信' = '加微信'" in out
    assert out.rstrip().endswith("verdict    flag (spam)")


def test_explain_json(capsys):
    assert main(["explain", "--json", "賭*博"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["normalised"] == "赌博"
    assert report["verdict"] == "recall"
    [candidate] = report["candidates"]
    assert (candidate["matched"], candidate["kept"], candidate["source"].endswith("gambling.txt:3")) == ("賭*博", True, True)


def test_explain_pass(capsys):
    assert main(["explain", "今天天气不错"]) == 0
    out = capsys.readouterr().out
    assert "candidates none" in out and "verdict    pass" in out


def test_lexicon_check_ok(capsys):
    assert main(["lexicon", "check", str(LEXICONS)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 24 categories")


def test_lexicon_check_errors_and_warnings(capsys, make_lexicon):
    bad = make_lexicon({"a": "赌博\n***\n赌博 ; action=recall\n"})
    assert main(["lexicon", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}/a.txt:2: term is empty after normalisation" in err
    assert f"{bad}/a.txt:3: term '赌博' conflicts with {bad}/a.txt:1" in err
    assert "lexicon rejected: 2 problem(s)" in err

    warn = make_lexicon({"a": "赌\n赌博\n赌博\n"})
    assert main(["lexicon", "check", str(warn)]) == 0
    err = capsys.readouterr().err
    assert f"{warn}/a.txt:1: one-character term '赌' will match very often [warning]" in err
    assert f"{warn}/a.txt:3: duplicate of {warn}/a.txt:2 [warning]" in err
    assert main(["lexicon", "check", "--strict", str(warn)]) == 1


def test_readme_explain_example_is_current(capsys):
    """The explain transcript in the README is what the command prints."""
    readme = (LEXICONS.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("Example (`screener explain '这是个大麻烦，有事加 微 信'`):\n\n```\n", 1)[1].split("```", 1)[0]
    assert main(["explain", "这是个大麻烦，有事加 微 信"]) == 0
    out = capsys.readouterr().out.replace(str(LEXICONS), "/…/lexicons").replace(str(LEXICONS.parent / "policy"), "/…/policy")
    assert out.replace("/…/lexicons/", "…/") == block.replace("/…/lexicons/", "…/")


def test_audit_shows_ids_as_the_json_it_takes_them_as():
    """5 and "5" are different posts, and --post takes ids as JSON: Python's
    repr showed '5', {'shard': 1} and "of account None" (found by a walk-through)."""
    from screener.audit import render

    def decision(post_id, account_id):
        return {"kind": "decision", "at": "t", "subject": "post", "post_id": post_id, "account_id": account_id,
                "action": "flag", "source": {"file": "-", "line": 1}}

    lines = render([decision(5, "5"), decision("5", {"shard": 1}), decision("x", None)]).splitlines()
    heads = [line.split("  ")[2] for line in lines if "decision" in line]
    assert heads == ['post 5 of account "5": FLAG', 'post "5" of account {"shard":1}: FLAG', 'post "x" (no account): FLAG']
