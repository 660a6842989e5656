"""A wheel install ships the lexicons and the policy (issue 9).

Built and installed for real: the wheel is built from a copy of the source
(``pip wheel`` builds in the tree it is given), installed with ``pip install
--target`` into a directory of its own, and run with that directory first on
``PYTHONPATH`` from an unrelated working directory, so that the wheel's copy
of screener is the one imported (asserted), not the editable install.
Dependencies (numpy, hyperscan, ...) come from the test environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

from .conftest import ROOT

#: What the wheel is built from; everything else in the tree is not packaged.
SOURCES = ("pyproject.toml", "README.md", "screener", "lexicons", "policy")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the directory it is installed in)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(base / "dist"), str(source)], check=True,
                   capture_output=True, timeout=300)
    [wheel] = (base / "dist").glob("screener-*.whl")
    target = base / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return wheel, target


def _run(target: Path, cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCREENER_")}
    env["PYTHONPATH"] = str(target)
    env["XDG_CACHE_HOME"] = str(target.parent / "xdg-cache")  # the default cache_dir, not the user's ~/.cache
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, input=stdin, capture_output=True, timeout=300)


def test_the_wheel_holds_the_shipped_lexicons_and_policy(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "lexicons").glob("*.txt"):
        assert f"screener/_shipped/lexicons/{path.name}" in names
    assert "screener/_shipped/lexicons/categories.toml" in names
    assert "screener/_shipped/policy/default.policy" in names


def test_the_wheel_holds_every_subpackage(installed):
    """pyproject.toml lists packages by hand (mapped packages cannot be
    discovered): a new subpackage missing from the list fails here."""
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (ROOT / "screener").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, f"{init.parent} is not in [tool.setuptools] packages"


def test_installed_wheel_screens_with_its_own_lexicons_and_policy(installed, tmp_path):
    _, target = installed
    work = tmp_path / "elsewhere"  # not the source tree: nothing there to fall back on
    work.mkdir()
    where = _run(target, work, "-c", "import screener, screener.settings as s; "
                 "print(screener.__file__); print(s.shipped_lexicons()); print(s.shipped_policy())")
    assert where.returncode == 0, where.stderr.decode()
    module, lexicons, policy = where.stdout.decode().splitlines()
    assert Path(module).is_relative_to(target), "the editable install was imported, not the wheel"
    assert Path(lexicons) == target / "screener" / "_shipped" / "lexicons"
    assert Path(policy) == target / "screener" / "_shipped" / "policy" / "default.policy"

    posts = work / "posts.jsonl"
    posts.write_text('{"id": 1, "text": "今天天气不错"}\n{"id": 2, "text": "网上赌*博", "account_id": "u2"}\n',
                     encoding="utf-8")
    scan = _run(target, work, "-m", "screener", "scan", "--matcher", "aho", "--progress", "off", "posts.jsonl")
    assert scan.returncode == 0, scan.stderr.decode()
    [event] = [orjson.loads(line) for line in scan.stdout.splitlines()]
    assert (event["post_id"], event["action"], event["categories"]) == (2, "recall", ["gambling"])
    assert event["hits"][0]["matched"] == "赌*博"
    assert f"lexicon {lexicons} " in scan.stderr.decode() and f"policy {policy} " in scan.stderr.decode()

    explain = _run(target, work, "-m", "screener", "explain", "--matcher", "aho", "加微信")
    assert explain.returncode == 0, explain.stderr.decode()
    assert "verdict    flag (spam)" in explain.stdout.decode()
