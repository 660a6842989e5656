"""Settings: defaults < TOML file < SCREENER_* environment < command line."""

from __future__ import annotations

import pytest

from screener.errors import ConfigError
from screener.settings import Settings, load_settings, shipped_lexicons


def test_defaults():
    s = load_settings({}, env={})
    assert (s.matcher, s.dead_letter, s.max_post_bytes, s.lexicons) == ("auto", "-", 256 * 1024, shipped_lexicons())


def test_precedence(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('matcher = "aho"\nmax_post_bytes = 10\nbatch_records = 5\n')
    env = {"SCREENER_MAX_POST_BYTES": "20", "SCREENER_BATCH_RECORDS": "6"}
    s = load_settings({"batch_records": 7, "matcher": None}, env=env, config_file=str(toml))
    assert (s.matcher, s.max_post_bytes, s.batch_records) == ("aho", 20, 7)
    s = load_settings({}, env={"SCREENER_CONFIG": str(toml)})
    assert s.matcher == "aho"


@pytest.mark.parametrize("kwargs,message", [
    ({"env": {"SCREENER_MATCHER": "grep"}}, "matcher must be"),
    ({"env": {"SCREENER_MAX_POST_BYTES": "lots"}}, "whole number"),
    ({"env": {"SCREENER_BATCH_RECORDS": "0"}}, "must be positive"),
])
def test_invalid(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({}, **kwargs)


def test_unknown_toml_key(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text("colour = 'red'\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({}, env={}, config_file=str(toml))


def test_frozen():
    with pytest.raises(AttributeError):
        Settings().matcher = "aho"  # type: ignore[misc]
