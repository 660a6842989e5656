"""Shared fixtures: every table-driven test runs against every matcher backend."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

from screener import Screener, load_lexicons
from screener.lexicon import LexiconSet
from screener.matchers import available

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
LEXICONS = ROOT / "lexicons"

#: The real backends on this machine, plus the oracle, which every other
#: backend must agree with.
BACKENDS = [*available(), "oracle"]


@pytest.fixture(autouse=True, scope="session")
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """The compiled-lexicon cache of the test session (and of the commands
    and workers it starts) is its own, not the user's ~/.cache/screener."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCREENER_CACHE_DIR", str(tmp_path_factory.mktemp("screener-cache")))
        yield


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def shipped() -> LexiconSet:
    return load_lexicons(LEXICONS)


LexiconMaker = Callable[..., Path]


@pytest.fixture
def make_lexicon(tmp_path: Path) -> LexiconMaker:
    """Write ``{category: text}`` files (and an optional manifest) to a fresh dir."""
    counter = iter(range(1000))

    def make(files: dict[str, str], manifest: str | None = None) -> Path:
        root = tmp_path / f"lex{next(counter)}"
        root.mkdir()
        for name, body in files.items():
            (root / f"{name}.txt").write_text(textwrap.dedent(body), encoding="utf-8")
        if manifest is not None:
            (root / "categories.toml").write_text(textwrap.dedent(manifest), encoding="utf-8")
        return root

    return make


def screener_for(files: dict[str, str], backend: str, make: LexiconMaker, manifest: str | None = None) -> Screener:
    return Screener(load_lexicons(make(files, manifest)), backend)


def pytest_report_header(config: pytest.Config) -> str | None:
    """Said at the top, not only in -rs: a checkout without ../shared beside
    it skips the peer conformance cases and the corpus and seed tests."""
    if SHARED.is_dir():
        return None
    return f"{SHARED} not found: the peer conformance, corpus and seed tests skip"
