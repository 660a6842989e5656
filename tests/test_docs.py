"""The README's synopsis says what the command line does (issue 9: they had drifted)."""

from __future__ import annotations

import argparse
import re

import pytest

from screener.cli import build_parser

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _commands() -> dict[str, argparse.ArgumentParser]:
    commands = _subparsers(build_parser())
    commands["lexicon check"] = _subparsers(commands.pop("lexicon"))["check"]
    return commands


def _synopsis(command: str) -> str:
    """Every README code line (with its continuations) that starts with ``screener COMMAND``."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for statement in block.replace("\\\n", " ").splitlines():
            if statement.strip().startswith(f"screener {command} ") and "..." not in statement.split()[2:3]:
                found.append(statement)
    return "\n".join(found)


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_option_is_in_the_readme_synopsis_and_nothing_else(command):
    parser = _commands()[command]
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    synopsis = _synopsis(command)
    assert synopsis, f"no synopsis for screener {command} in README.md"
    written = set(re.findall(r"--[a-z][a-z0-9-]*", synopsis))
    assert options - written == set(), f"options missing from the README synopsis of {command}"
    assert written - options == set(), f"README synopsis of {command} names options the parser lacks"


def test_top_level_help_names_every_command():
    text = build_parser().format_help()
    for command in ("scan", "explain", "run", "rescan", "audit", "lexicon check"):
        assert command in text.split("positional arguments")[0], command


def test_the_summary_fields_in_the_readme_are_the_code_s():
    from screener.scan import Summary

    line = Summary().line("aho", "v")
    fields = [part.split("=")[0] for part in line.split()[2:]]
    documented = re.search(r"\(`screener scan: (.*?)`", README, re.S)
    assert documented is not None
    assert [f.rstrip("=") for f in documented.group(1).split()] == fields


def test_the_category_file_example_in_the_lexicon_readme_loads(make_lexicon):
    """An operator pastes it: it must be a valid file (its inline notes were
    five errors, and it gave one term twice: found by a walk-through)."""
    from screener.lexicon import load_lexicons

    text = (ROOT / "lexicons" / "README.md").read_text(encoding="utf-8")
    block = text.split("## Lines of a category file", 1)[1].split("```", 2)[1]
    lexicons = load_lexicons(make_lexicon({"example": block.lstrip("\n")}))
    labels = {rule.label for rule in lexicons.rules}
    assert {"赌博", "加微信", "代开发票", "代开+发票", "赌球", "参加微信"} <= labels, labels
