"""Validation never crashes: every problem of a lexicon directory is one
``path:line: reason``, never a traceback (issue 9).

Each table row is a case that used to crash (ValueError, TypeError,
IsADirectoryError, ...), was silently accepted, or passed ``lexicon check``
and failed later in the matcher.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener import LexiconError, load_lexicons
from screener.cli import main
from screener.lexicon.load import MAX_TERM_CHARS
from screener.lexicon.parse import MAX_WITHIN, parse_line, parse_manifest

PROBLEM_LINE = re.compile(r"^\S.*:\d+: \S.*\[(error|warning)\]$")

# -- options of a lexicon line -------------------------------------------------------
# (line, reason): the file is "赌博\n" + line, so the problem is at line 2
BAD_LINES = [
    ("代开 + 发票 ; within=²", "within must be a whole number of characters from 1 to 10000, not '²'"),  # was int('²')
    ("代开 + 发票 ; within=٣", "within must be a whole number"),  # int() takes Arabic-Indic digits; we do not
    ("代开 + 发票 ; within=" + "9" * 5000, "within must be a whole number"),  # int() refuses > 4300 digits
    ("代开 + 发票 ; within=99999999999999999999", "within must be a whole number"),
    ("代开 + 发票 ; within=10001", "within must be a whole number"),
    ("代开 + 发票 ; within=0", "within must be a whole number"),
    ("代开 + 发票 ; within=-2", "within must be a whole number"),
    ("代开 + 发票 ; within=", "within must be a whole number"),
    ("代开 + 发票 ; within=1.5", "within must be a whole number"),
    ("代开 + 发票 ; within=1_0", "within must be a whole number"),
    ("代开 + 发票 ; within=１２", "within must be a whole number"),  # full-width digits
    ("赌博网 ; action=", "action must be one of flag, recall, not ''"),
    ("赌博网 ; mode=", "mode must be one of word, substring, not ''"),
    ("赌博网 ; action=RECALL", "action must be one of flag, recall"),
    ("长" * (MAX_TERM_CHARS + 1), f"term longer than {MAX_TERM_CHARS} characters ({MAX_TERM_CHARS + 1} after normalisation)"),
    ("长" * 8300, f"term longer than {MAX_TERM_CHARS} characters"),  # Hyperscan refused it when scan started
    ("代开 + " + "长" * 300, f"term longer than {MAX_TERM_CHARS} characters"),
    ("allow: " + "长" * 300, f"term longer than {MAX_TERM_CHARS} characters"),
]


@pytest.mark.parametrize("line,reason", BAD_LINES, ids=[f"{i}:{r[:30]}" for i, (_, r) in enumerate(BAD_LINES)])
def test_bad_option_values_are_path_line_reason(make_lexicon, line, reason):
    root = make_lexicon({"a": "赌博\n" + line + "\n"})
    with pytest.raises(LexiconError) as err:
        load_lexicons(root)
    [problem] = err.value.problems
    assert (problem.path, problem.line) == (str(root / "a.txt"), 2) and problem.reason.startswith(reason), str(problem)


def test_limits_themselves_are_accepted(make_lexicon):
    lex = load_lexicons(make_lexicon({"a": f"{'长' * MAX_TERM_CHARS}\n代开 + 发票 ; within={MAX_WITHIN}\n代开 + 收据 ; within=1\n"}))
    assert lex.term_count == 3


def test_long_term_is_measured_after_normalisation(make_lexicon):
    # 300 characters as written, 200 once the noise between them is gone
    lex = load_lexicons(make_lexicon({"a": "长*" * 150 + "长" * 50 + "\n"}))
    assert len(lex.rules[0].parts[0]) == 200


def test_nul_in_a_term_is_rejected_when_controls_are_not_noise(make_lexicon):
    root = make_lexicon({"a": "赌博\n赌\x00博\n"}, "[normalise]\nnoise_categories = ['Zs']\n")
    with pytest.raises(LexiconError, match=r"a.txt:2: term contains U\+0000"):
        load_lexicons(root)


def test_han_letters_as_noise_reject_the_terms_not_the_build(make_lexicon):
    """``noise_categories`` with ``Lo`` leaves no Han character to convert:
    the build stopped with an internal error (OpenCC asked about none;
    found by a hostile-input probe). The terms are what is wrong, by line."""
    root = make_lexicon({"a": "赌博\nabc\n"}, "[normalise]\nnoise_categories = ['Lo', 'Zs']\n")
    with pytest.raises(LexiconError, match=r"a.txt:1: term is empty after normalisation") as info:
        load_lexicons(root)
    assert "a.txt:2" not in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("赌博+;=　 \t²٣1-0withinactmodsubrlgfw:#\x00"), max_size=40))
def test_parse_line_never_raises(text):
    entry, problems = parse_line(text, "a.txt", 1)
    assert all(p.line == 1 for p in problems)
    if entry is not None and not problems and "within" in entry.options:
        assert 1 <= entry.options["within"] <= MAX_WITHIN


# -- categories.toml -----------------------------------------------------------------
# (manifest, line, reason)
BAD_MANIFESTS = [
    ("[categories.a]\nseverity = \"high\"\n", 2, "category 'a': severity must be a whole number 1-5, not 'high' (a string)"),
    ("[categories.a]\nseverity = true\n", 2, "category 'a': severity must be a whole number 1-5, not true (a boolean)"),
    ("[categories.a]\nseverity = 2.5\n", 2, "category 'a': severity must be a whole number 1-5, not 2.5 (a number)"),
    ("[categories.a]\naction = 3\n", 2, "category 'a': action must be flag or recall, not 3 (an integer)"),
    ("[categories.a]\ntitle_en = 'A'\nmode = []\n", 3, "category 'a': mode must be word or substring, not [] (an array)"),
    ("[categories.a]\nscope = {x = 1}\n", 2, "category 'a': scope must be post or profile or both, not a table"),
    ("[categories.a]\ntitle_zh = {x = 1}\n", 2, "category 'a': title_zh must be a string, not a table"),
    ("[categories.a]\ntitle_en = 5\n", 2, "category 'a': title_en must be a string, not 5 (an integer)"),
    ("[categories.a]\nbasis = 'Art. 5'\n", 2, "category 'a': basis must be an array of strings, not 'Art. 5' (a string)"),
    ("[categories.a]\nbasis = [5]\n", 2, "category 'a': basis must be an array of strings, not [5] (an array)"),
    ("[categories.a]\noperator_supplied = 'no'\n", 2, "category 'a': operator_supplied must be true or false, not 'no' (a string)"),
    ("[categories.a]\ncolour = 'red'\n", 2, "category 'a': unknown field 'colour'"),
    ("[categories]\na = 1\n", 2, "category 'a' must be a table, not 1 (an integer)"),
    ("[categories]\na = { action = 'ban' }\n", 2, "category 'a': action must be flag or recall, not 'ban' (a string)"),
    ("categories = 5\n", 1, "categories must be a table ([categories.KEY])"),
    ("normalise = 'all'\n", 1, "normalise must be a table ([normalise]), not 'all' (a string)"),
    ("[normalise]\ntraditional = \"yes\"\n", 2, "[normalise]: traditional must be true or false, not 'yes' (a string)"),
    ("[normalise]\ncasefold = 1\n", 2, "[normalise]: casefold must be true or false, not 1 (an integer)"),
    ("[normalise]\nhtml = 'off'\n", 2, "[normalise]: html must be true or false, not 'off' (a string)"),
    ("[normalise]\ncompatibility = []\n", 2, "[normalise]: compatibility must be true or false, not [] (an array)"),
    ("[normalise]\nnoise_extra = 5\n", 2, "[normalise]: noise_extra must be a string of characters, not 5 (an integer)"),
    ("[normalise]\nnoise_keep = ['+']\n", 2, "[normalise]: noise_keep must be a string of characters, not ['+'] (an array)"),
    ("[normalise]\nnoise_categories = 'Zs'\n", 2, "[normalise]: noise_categories must be an array of Unicode general categories"),
    ("[normalise]\nnoise_categories = ['Zs', 3]\n", 2, "[normalise]: noise_categories must be an array of Unicode general categories"),
    ("[normalise]\nnoise_categories = ['Zs', 'Xx']\n", 2, "[normalise]: noise_categories unknown Unicode general category 'Xx'"),
    ("[normalise]\naliases = '+加'\n", 2, "[normalise]: aliases must be a table of one character to another"),
    ("[normalise]\naliases = { '+' = 3 }\n", 2, "[normalise]: aliases '+' must map to a string, not 3 (an integer)"),
    ("[normalise]\naliases = { '+' = '加号' }\n", 2, "[normalise]: aliases must map one character to one character: '+' = '加号'"),
    ("[normalise]\naliases = { '++' = '加' }\n", 2, "[normalise]: aliases must map one character to one character: '++' = '加'"),
    ("[normalise]\naliases = { '+' = '+' }\n", 2, "[normalise]: aliases '+' is mapped to itself"),
    ("[normalise]\n\n\nfold_everything = true\n", 4, "[normalise]: unknown setting 'fold_everything'"),
    ("[colours]\nred = 1\n", 1, "unknown table [colours]"),
]


@pytest.mark.parametrize("manifest,line,reason", BAD_MANIFESTS, ids=[r[2][:50] for r in BAD_MANIFESTS])
def test_manifest_values_of_the_wrong_type_are_path_line_reason(make_lexicon, manifest, line, reason):
    root = make_lexicon({"a": "赌博\n"}, manifest)
    with pytest.raises(LexiconError) as err:
        load_lexicons(root)
    problems = err.value.problems
    assert len(problems) == 1 and problems[0].line == line, [str(p) for p in problems]
    assert str(problems[0]).startswith(f"{root / 'categories.toml'}:{line}: {reason}"), str(problems[0])


def test_manifest_reports_every_problem_at_once(make_lexicon):
    root = make_lexicon({"a": "赌博\n"}, "[categories.a]\naction = 3\nseverity = 9\n[normalise]\nhtml = 'no'\n")
    with pytest.raises(LexiconError) as err:
        load_lexicons(root)
    assert [p.line for p in err.value.problems] == [2, 3, 5]


def test_manifest_that_is_not_utf8(make_lexicon):
    root = make_lexicon({"a": "赌博\n"})
    (root / "categories.toml").write_bytes("[categories.a]\ntitle_zh = '賭博'\n".encode("big5"))
    with pytest.raises(LexiconError, match=r"categories.toml:1: not UTF-8"):
        load_lexicons(root)


@settings(max_examples=150, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["categories", "normalise", "a", "action", "mode", "severity", "scope", "basis", "title_zh",
         "traditional", "noise_extra", "noise_categories", "operator_supplied", "html"]), inner, max_size=4),
    max_leaves=12,
))
def test_parse_manifest_never_raises(tmp_path_factory, doc):
    """Any TOML document: problems, never an exception."""
    import json

    def toml(value: object) -> str:  # inline TOML (None has no TOML form: a string)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(toml(v) for v in value) + "]"
        if isinstance(value, float):
            return repr(value) if "e" not in repr(value) and "inf" not in repr(value) else "1.5"
        return json.dumps(value if value is not None else "none", ensure_ascii=False)

    body = "\n".join(f"{k} = {toml(v)}" for k, v in doc.items()) if isinstance(doc, dict) else f"x = {toml(doc)}"
    path = tmp_path_factory.mktemp("m") / "categories.toml"
    path.write_text(body + "\n", encoding="utf-8")
    manifest = parse_manifest(path)
    assert all(p.line >= 0 for p in manifest.problems)


# -- files that cannot be read -------------------------------------------------------
def _directory(root: Path) -> Path:
    (root / "x.txt").mkdir()
    return root / "x.txt"


def _loop(root: Path) -> Path:
    (root / "x.txt").symlink_to(root / "x.txt")
    return root / "x.txt"


def _dangling(root: Path) -> Path:
    (root / "x.txt").symlink_to(root / "nowhere")
    return root / "x.txt"


def _manifest_directory(root: Path) -> Path:
    (root / "categories.toml").mkdir()
    return root / "categories.toml"


def _manifest_loop(root: Path) -> Path:
    (root / "categories.toml").symlink_to(root / "categories.toml")
    return root / "categories.toml"


def _unreadable(root: Path) -> Path:
    (root / "x.txt").write_text("赌场\n", encoding="utf-8")
    (root / "x.txt").chmod(0)
    return root / "x.txt"


# (name, make the bad entry, reason)
UNREADABLE: list[tuple[str, Callable[[Path], Path], str]] = [
    ("directory named x.txt", _directory, "cannot read: Is a directory"),
    ("symlink loop", _loop, "cannot read: Too many levels of symbolic links"),
    ("dangling symlink", _dangling, "cannot read: No such file or directory"),
    ("categories.toml a directory", _manifest_directory, "cannot read: Is a directory"),
    ("categories.toml a symlink loop", _manifest_loop, "cannot read: Too many levels of symbolic links"),
    pytest.param("permission denied", _unreadable, "cannot read: Permission denied",
                 marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")),
]


@pytest.mark.parametrize("name,make_bad,reason", UNREADABLE)
def test_unreadable_files_are_path_0_reason(make_lexicon, capsys, name, make_bad, reason):
    root = make_lexicon({"a": "赌博\n"})
    bad = make_bad(root)
    with pytest.raises(LexiconError) as err:
        load_lexicons(root)
    assert [str(p) for p in err.value.problems] == [f"{bad}:0: {reason}"]
    # and the command line prints the same line, no traceback
    assert main(["lexicon", "check", str(root)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == f"{bad}:0: {reason} [error]"


def test_permission_denied_is_path_0_reason_even_as_root(make_lexicon, monkeypatch):
    """The same as the skipped row above, with the denial simulated (tests often run as root)."""
    from screener.lexicon import parse

    root = make_lexicon({"a": "赌博\n", "x": "赌场\n"})
    real = parse.read_regular

    def read_regular(path, *args):
        if Path(path).name == "x.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args)

    monkeypatch.setattr(parse, "read_regular", read_regular)
    with pytest.raises(LexiconError) as err:
        load_lexicons(root)
    assert [str(p) for p in err.value.problems] == [f"{root / 'x.txt'}:0: cannot read: Permission denied"]


# -- a set without terms -------------------------------------------------------------
HEADER = "# 谣言 / Rumour\n# The operator supplies this list.\n"
# (files, terms expected or None for the error)
EMPTY = [
    ({}, None),  # no category file at all
    ({"rumour": HEADER, "religion": HEADER}, None),  # only empty headers
    ({"spam": "allow: 参加微信\n"}, None),  # allow entries are not terms
    ({"rumour": HEADER, "spam": "加微信\n"}, 1),  # empty headers are fine next to a file with terms
]


@pytest.mark.parametrize("files,terms", EMPTY)
def test_a_set_without_terms_is_rejected(make_lexicon, files, terms):
    root = make_lexicon(files)
    if terms is not None:
        assert load_lexicons(root).term_count == terms
        return
    with pytest.raises(LexiconError) as err:
        load_lexicons(root)
    assert [str(p) for p in err.value.problems] == [f"{root}:0: no terms: every post would pass"]


def test_no_terms_is_not_reported_on_top_of_other_errors(make_lexicon):
    root = make_lexicon({"a": "*** \n"})
    with pytest.raises(LexiconError) as err:
        load_lexicons(root)
    assert [p.reason for p in err.value.problems] == ["term is empty after normalisation (only noise characters)"]


# -- the command line: every line a path:line: reason --------------------------------
def test_lexicon_check_output_is_one_problem_per_line(make_lexicon, capsys):
    root = make_lexicon(
        {"a": "代开 + 发票 ; within=²\n" + "长" * 300 + "\n赌博\n", "b": "赌博\n"},
        "[categories.a]\nseverity = 'high'\n[normalise]\ntraditional = 'yes'\n",
    )
    (root / "c.txt").mkdir()
    assert main(["lexicon", "check", str(root)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == "screener: lexicon rejected: 5 problem(s)"
    assert all(PROBLEM_LINE.match(line) for line in lines[:-1]), lines


# -- lexicon check --policy ----------------------------------------------------------
def test_lexicon_check_prints_policy_warnings_and_strict_fails_on_them(make_lexicon, capsys):
    from screener.settings import shipped_policy

    own = make_lexicon({"gambling": "赌博\n"})  # an operator's set without the shipped policy's category
    assert main(["lexicon", "check", "--policy", shipped_policy(), str(own)]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"{shipped_policy()}:9: condition 'category=current_affairs_news': category 'current_affairs_news' "
        "is not in the lexicon set; rule 'news-licensed' never applies [warning]"]
    assert "OK: policy " in captured.out and "1 warnings" in captured.out
    assert main(["lexicon", "check", "--strict", "--policy", shipped_policy(), str(own)]) == 1
    assert main(["lexicon", "check", "--strict", str(own)]) == 0  # without --policy nothing to warn about
    assert main(["lexicon", "check", "--strict", "--policy", "none", str(own)]) == 0  # 'none' as everywhere else


def test_lexicon_check_with_the_shipped_policy_and_lexicons_is_clean(capsys):
    from screener.settings import shipped_lexicons, shipped_policy

    assert main(["lexicon", "check", "--strict", "--policy", shipped_policy(), shipped_lexicons()]) == 0
    # no warning; only the notes on the shipped terms that spell a run
    assert [line.split(": ", 1)[1] for line in capsys.readouterr().err.splitlines()] == [
        "term '时时彩' is matched as '时彩': repeated characters fold to one; a post must still repeat them (2 时) [note]",
        "term '加扣扣' is matched as '加扣': repeated characters fold to one; a post must still repeat them (2 扣) [note]",
    ]


def test_lexicon_check_reports_policy_errors_as_path_line(make_lexicon, tmp_path, capsys):
    policy = tmp_path / "p.policy"
    policy.write_text("offenders: threshold=5 window=99999999999999999999d\n", encoding="utf-8")
    assert main(["lexicon", "check", "--policy", str(policy), str(make_lexicon({"a": "赌博\n"}))]) == 2
    [line, summary] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{policy}:1: offenders: bad option 'window=99999999999999999999d'") and PROBLEM_LINE.match(line)


def test_lexicon_check_prints_overlap_warnings(make_lexicon, capsys):
    root = make_lexicon({"a": "赌博\n", "b": "赌博\n"})
    assert main(["lexicon", "check", "--strict", str(root)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{root / 'b.txt'}:1: term '赌博' is also in category 'a' at {root / 'a.txt'}:1; kept in both [warning]"]


def test_documented_limits_match_the_code():
    """lexicons/README.md and policy/README.md state the limits the loaders apply."""
    from screener.policy import MAX_THRESHOLD, MAX_WINDOW_S

    from .conftest import ROOT

    lexicons, policy = (" ".join((ROOT / d / "README.md").read_text(encoding="utf-8").split()) for d in ("lexicons", "policy"))
    assert f"at most **{MAX_TERM_CHARS} characters** after normalisation" in lexicons
    assert f"whole number 1-{MAX_WITHIN}" in lexicons
    assert f"number from 1 to {MAX_THRESHOLD}" in policy
    assert f"between 1 second and {MAX_WINDOW_S // 86400} days" in policy


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(
    ["hit ", "post ", "list ", "offenders", ":", " ", "a", "-> ", "pass", "recall", "category=", "account.id=",
     "@", ",", "!=", "=", "threshold=", "window=", "²", "٣", "9" * 30, "d", "clear=", "count=", "#", "\x00"]),
    max_size=12).map("".join), max_size=6))
def test_load_policy_never_raises_anything_but_policy_error(tmp_path_factory, lines):
    from screener.policy import PolicyError, load_policy

    path = tmp_path_factory.mktemp("p") / "p.policy"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        policy = load_policy(path, ["abuse"])
    except PolicyError as err:
        assert all(p.line >= 1 and "\n" not in p.reason for p in err.problems)
    else:
        assert 1 <= policy.offenders.threshold <= 1000 or not policy.offenders.enabled


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_lexicon_entry_that_never_ends_or_never_opens_is_rejected_at_once(make_lexicon, kind):
    """Found by a hostile-input probe: a FIFO named *.txt blocked the reload
    thread in open() for ever (and start-up the same way); a symlink to
    /dev/zero grew the worker until it was killed. Both are rejected, as a
    file that cannot be read, before anything is read from them."""
    import os

    from screener.lexicon.load import content_version

    root = make_lexicon({"a": "赌博\n"})
    if kind == "fifo":
        os.mkfifo(root / "z.txt")
    else:
        (root / "z.txt").symlink_to("/dev/zero")
    content_version(root)  # the watcher's question: answered, not blocked
    with pytest.raises(LexiconError, match=r"z.txt:0: cannot read: not a regular file"):
        load_lexicons(root)


def test_a_file_name_that_is_not_utf8_is_rejected_by_line(make_lexicon):
    """Found by a hostile-input probe: every command that loads such a set
    stopped with an internal error (exit 70)."""
    import os

    root = make_lexicon({"a": "赌博\n"})
    (root / os.fsdecode(b"bad\xff.txt")).write_text("测试词\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"bad\\xff.txt:0: file name is not UTF-8: rename it") as raised:
        load_lexicons(root)
    assert len(raised.value.problems) == 1


def test_a_file_over_the_size_bound_is_rejected(tmp_path):
    from screener.files import read_regular

    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 1001)
    assert read_regular(path, 1001) == b"x" * 1001
    with pytest.raises(OSError, match="larger than 1000 bytes"):
        read_regular(path, 1000)
