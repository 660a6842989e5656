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


# (environment, message): text from the environment must parse as the setting's type
BAD_ENV = [
    ({"SCREENER_MATCHER": "grep"}, "matcher: must be auto, aho or hyperscan, not 'grep'"),
    ({"SCREENER_MAX_POST_BYTES": "lots"}, "max_post_bytes: must be a whole number, not 'lots'"),
    ({"SCREENER_MAX_POST_BYTES": "1.5"}, "max_post_bytes: must be a whole number, not '1.5'"),
    ({"SCREENER_MAX_POST_BYTES": "²"}, "max_post_bytes: must be a whole number"),  # int() rejects it: no crash
    ({"SCREENER_MAX_POST_BYTES": "٣"}, "max_post_bytes: must be a whole number"),  # int() would take it
    ({"SCREENER_MAX_POST_BYTES": "9" * 5000}, "max_post_bytes: must be a whole number"),
    ({"SCREENER_MAX_POST_BYTES": ""}, "max_post_bytes: must be a whole number"),
    ({"SCREENER_BATCH_RECORDS": "0"}, "batch_records: must be at least 1, not 0"),
    ({"SCREENER_RESCAN_WINDOW_S": "-1"}, "rescan_window_s: must be at least 0"),
    ({"SCREENER_METRICS_PORT": "70000"}, "metrics_port: must be 0 .off. to 65535"),
    ({"SCREENER_MAX_HITS_PER_POST": "0"}, "max_hits_per_post: must be at least 1"),
    ({"SCREENER_MAX_RECORD_BYTES": "4095"}, "max_record_bytes: must be at least 4096"),
    # topic names the client would refuse as "Invalid argument" (an internal error, found by a probe)
    ({"SCREENER_INPUT_TOPIC": ""}, r"input_topic: must be a Kafka topic name .*, not ''"),
    ({"SCREENER_BOOTSTRAP_SERVERS": " , "}, "bootstrap_servers: must name at least one broker"),
    ({"SCREENER_DEAD_LETTER": ""}, "dead_letter: must be a file, or - for stderr, not ''"),
    ({"SCREENER_CACHE_DIR": "a\x00b"}, r"cache_dir: must not contain a NUL character \(\\u0000\)"),
    ({"SCREENER_EVENTS_TOPIC": "a b"}, r"events_topic: must be a Kafka topic name .*, not 'a b'"),
    ({"SCREENER_DEAD_LETTER_TOPIC": ".."}, "dead_letter_topic: must be a Kafka topic name"),
    ({"SCREENER_OFFENDERS_TOPIC": "x" * 250}, "offenders_topic: must be a Kafka topic name"),
    ({"SCREENER_AUDIT_TOPIC": "审计"}, r"audit_topic: must be a Kafka topic name .*, or empty, not '审计'"),
]


def test_optional_topics_may_be_empty_and_names_may_use_every_legal_character():
    settings = load_settings({}, env={"SCREENER_AUDIT_TOPIC": "", "SCREENER_FLAG_TOPIC": "",
                                      "SCREENER_INPUT_TOPIC": "Posts_v2.cn-east." + "x" * 232})
    assert settings.audit_topic == "" and settings.topic_for("flag") == settings.events_topic
    assert len(settings.input_topic) == 249


def test_a_whole_number_too_long_to_read_says_so():
    with pytest.raises(ConfigError, match="batch_bytes: must be a whole number of at most 18 digits, not '1099511627776000000'"):
        load_settings({}, env={"SCREENER_BATCH_BYTES": "1099511627776000000"})
    with pytest.raises(ConfigError, match="batch_bytes: must be at most 1,073,741,824, not 1,099,511,627,776"):
        load_settings({}, env={"SCREENER_BATCH_BYTES": "1099511627776"})


@pytest.mark.parametrize("env,message", BAD_ENV)
def test_invalid_environment(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env=env)


# (TOML line, message): a TOML value must already have the setting's type
BAD_TOML = [
    ("dead_letter = 5", "dead_letter: must be a string, not 5"),  # was open(5): file descriptor 5
    ("max_post_bytes = 1.5", "max_post_bytes: must be a whole number, not 1.5"),  # was int(1.5) == 1
    ("max_post_bytes = true", "max_post_bytes: must be a whole number, not true"),
    ("max_post_bytes = '1000'", "max_post_bytes: must be a whole number, not '1000'"),
    ("matcher = ['aho']", r"matcher: must be a string, not \['aho'\]"),
    ("lexicons = {dir = 'x'}", "lexicons: must be a string, not a table"),
    ("workers = 2.0", "workers: must be a whole number, not 2.0"),
    ("kafka = 5", "kafka: must be a table, not 5"),
    ("kafka_consumer = 'x'", "kafka_consumer: must be a table, not 'x'"),
    ("max_record_bytes = 100", "max_record_bytes: must be at least 4096, not 100"),
    # bounds above, where a larger value failed or ran wild (found by a hostile-input probe)
    ("batch_bytes = 9223372036854775807", "batch_bytes: must be at most 1,073,741,824, not 9,223,372,036,854,775,807"),
    ("poll_max_records = 1000001", "poll_max_records: must be at most 1,000,000, not 1,000,001"),
    ("workers = 100000", "workers: must be at most 1,024, not 100,000"),
    ("reload_interval_s = 1000000000000", "reload_interval_s: must be at most 86,400"),
    ("poll_timeout_ms = 100000000", "poll_timeout_ms: must be at most 60,000"),
]


@pytest.mark.parametrize("line,message", BAD_TOML)
def test_invalid_toml_value(tmp_path, line, message):
    toml = tmp_path / "s.toml"
    toml.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        load_settings({}, env={}, config_file=str(toml))
    assert "\n" not in str(err.value)


# (CLI values, message): argparse gives ints for int flags, strings otherwise
BAD_CLI = [
    ({"max_post_bytes": "12kb"}, "max_post_bytes: must be a whole number, not '12kb'"),
    ({"max_post_bytes": 0}, "max_post_bytes: must be at least 1"),
    ({"dead_letter": 5}, "dead_letter: must be a string, not 5"),
    ({"workers": True}, "workers: must be a whole number, not true"),
]


@pytest.mark.parametrize("cli,message", BAD_CLI)
def test_invalid_command_line(cli, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(cli, env={})


def test_text_is_parsed_to_the_declared_type(tmp_path):
    s = load_settings({"max_post_bytes": "2048", "workers": 3}, env={"SCREENER_BATCH_RECORDS": " 16 ",
                                                                    "SCREENER_DEAD_LETTER": "5"})
    assert (s.max_post_bytes, s.workers, s.batch_records, s.dead_letter) == (2048, 3, 16, "5")


def test_direct_construction_is_type_checked_too():
    with pytest.raises(ConfigError, match="max_post_bytes: must be a whole number, not 1.5"):
        Settings(max_post_bytes=1.5)  # type: ignore[arg-type]


def test_new_output_limits_have_defaults_env_and_toml(tmp_path):
    s = load_settings({}, env={})
    assert (s.max_hits_per_post, s.max_record_bytes) == (100, 900_000)
    toml = tmp_path / "s.toml"
    toml.write_text("max_hits_per_post = 7\nmax_record_bytes = 8192\n", encoding="utf-8")
    s = load_settings({}, env={}, config_file=str(toml))
    assert (s.max_hits_per_post, s.max_record_bytes) == (7, 8192)
    s = load_settings({}, env={"SCREENER_MAX_HITS_PER_POST": "3", "SCREENER_MAX_RECORD_BYTES": "5000"},
                      config_file=str(toml))
    assert (s.max_hits_per_post, s.max_record_bytes) == (3, 5000)


@pytest.mark.parametrize("data,message", [
    ("matcher = 'aho'\n# 註解\n".encode("big5"), "not UTF-8"),
    (b"matcher = \n", "not valid TOML"),
])
def test_unreadable_config_file_is_a_config_error(tmp_path, data, message):
    toml = tmp_path / "s.toml"
    toml.write_bytes(data)
    with pytest.raises(ConfigError, match=message) as err:
        load_settings({}, env={}, config_file=str(toml))
    assert str(err.value).startswith(f"{toml}: ")


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, env={}, config_file=str(tmp_path / "nope.toml"))


def test_unknown_toml_key(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text("colour = 'red'\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({}, env={}, config_file=str(toml))


def test_frozen():
    with pytest.raises(AttributeError):
        Settings().matcher = "aho"  # type: ignore[misc]


def test_shipped_data_in_a_source_checkout_is_the_top_level_directories():
    """The editable install (this test run) reads lexicons/ and policy/
    themselves, the source of truth; tests/test_packaging.py covers a wheel."""
    from pathlib import Path

    from screener.settings import shipped_policy

    from .conftest import ROOT

    assert Path(shipped_lexicons()) == ROOT / "lexicons"
    assert Path(shipped_policy()) == ROOT / "policy" / "default.policy"


@pytest.mark.parametrize("env,said", [
    ({"SCREENER_MATCHR": "aho"}, ["SCREENER_MATCHR is not a setting and was ignored (did you mean SCREENER_MATCHER?)"]),
    ({"SCREENER_KAFKA_CONSUMER_FETCH_MIN_BYTES": "1"},
     ["SCREENER_KAFKA_CONSUMER_FETCH_MIN_BYTES was ignored: options for only the consumer or the producer are set "
      "in the TOML file ([kafka_consumer], [kafka_producer]); SCREENER_KAFKA_<OPTION> sets both"]),
    ({"SCREENER_PINYIN": "of", "SCREENER_COMPACT": "Numba", "SCREENER_SEGMENT": "hanlp"},
     ["SCREENER_PINYIN='of' is not one of on, off: the default applies",
      "SCREENER_SEGMENT='hanlp' is not one of jieba: the default applies"]),
    # every setting, the client options and the switches read elsewhere: nothing to say
    ({"SCREENER_KAFKA": "x", "SCREENER_PINYIN": "off "},
     ["SCREENER_KAFKA is not a setting and was ignored (did you mean SCREENER_KAFKA_CLIENT?)",
      "SCREENER_PINYIN='off ' is not one of on, off: the default applies"]),
    ({**{f"SCREENER_{name.upper()}": "x" for name in Settings.__dataclass_fields__
         if name not in ("kafka", "kafka_consumer", "kafka_producer")},
      "SCREENER_KAFKA_SECURITY_PROTOCOL": "SSL", "SCREENER_DEBUG": "1", "SCREENER_COMPACT": "numpy",
      "SCREENER_PINYIN": "off", "SCREENER_SEGMENT": "jieba", "SCREENER_CONFIG": "f.toml", "HOME": "/root"}, []),
])
def test_unknown_screener_variables_are_named(env, said):
    from screener.settings import unknown_variables

    assert unknown_variables(env) == said


def test_a_command_warns_of_an_unknown_variable_and_runs_on(monkeypatch, capsys, tmp_path):
    from screener.cli import main

    monkeypatch.setenv("SCREENER_MATCHR", "aho")
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": 1, "text": "ok"}\n', encoding="utf-8")
    assert main(["scan", str(posts), "--progress", "off"]) == 0
    err = capsys.readouterr().err
    assert "screener: SCREENER_MATCHR is not a setting and was ignored (did you mean SCREENER_MATCHER?) [warning]" in err
