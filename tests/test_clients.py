"""The Kafka client seam without a broker: choosing a client, options in each
client's spelling, a rejected option is a clear configuration error. With a
broker (both clients, the same tests): tests/integration/test_clients.py."""

from __future__ import annotations

import pytest

from screener.errors import ConfigError
from screener.settings import Settings, load_settings
from screener.stream import clients

HAVE = clients.available()


def test_auto_is_confluent_where_it_imports():
    assert clients.chosen(Settings()) == HAVE[0]
    if "confluent" in HAVE:
        assert HAVE[0] == "confluent"


@pytest.mark.parametrize("source", ["env", "cli", "toml"])
def test_the_client_is_chosen_by_flag_environment_and_toml(source, tmp_path):
    if source == "env":
        settings = load_settings({}, env={"SCREENER_KAFKA_CLIENT": "kafka-python"})
    elif source == "cli":
        settings = load_settings({"kafka_client": "kafka-python"}, env={})
    else:
        (tmp_path / "s.toml").write_text('kafka_client = "kafka-python"\n')
        settings = load_settings({}, env={}, config_file=str(tmp_path / "s.toml"))
    assert settings.kafka_client == "kafka-python"
    assert dict(settings.kafka) == {}  # SCREENER_KAFKA_CLIENT is the setting, not a client option


def test_client_options_still_come_from_the_environment():
    settings = load_settings({}, env={"SCREENER_KAFKA_CLIENT_ID": "me", "SCREENER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert dict(settings.kafka) == {"client_id": "me", "security_protocol": "SASL_SSL"}
    assert settings.kafka_client == "auto"


def test_an_unknown_client_is_a_setting_error():
    with pytest.raises(ConfigError, match="kafka_client: must be auto, confluent or kafka-python"):
        Settings(kafka_client="librdkafka")


def test_underscores_are_dots_for_librdkafka():
    settings = Settings(bootstrap_servers="b:1", kafka={"security_protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN"},
                        kafka_producer={"linger_ms": 20})
    config = clients._confluent_config(settings, clients.CONFLUENT_PRODUCER, settings.kafka_producer)
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanisms"] == "PLAIN"
    assert config["linger.ms"] == 20 and config["bootstrap.servers"] == "b:1" and config["acks"] == "all"


def test_both_consumers_skip_aborted_transactions(monkeypatch):
    """read_committed on either client: librdkafka's default, kafka-python's
    not (it would screen posts whose producer rolled them back). Checked at
    the constructor, where the defaults and the operator's options meet; an
    operator may still ask for read_uncommitted. The broker side is
    tests/integration/test_worker.py::test_aborted_input_is_not_screened."""
    assert clients.CONFLUENT_CONSUMER["isolation.level"] == "read_committed"
    if "kafka-python" not in HAVE:
        pytest.skip("kafka-python does not import here")
    import kafka

    made: list[dict] = []
    monkeypatch.setattr(kafka, "KafkaConsumer", lambda **kwargs: made.append(kwargs))
    for group in (True, False):
        clients._PyConsumer(Settings(bootstrap_servers="b:1"), group)
    clients._PyConsumer(Settings(bootstrap_servers="b:1", kafka_consumer={"isolation_level": "read_uncommitted"}), True)
    assert [m["isolation_level"] for m in made] == ["read_committed", "read_committed", "read_uncommitted"]


@pytest.mark.parametrize("client,option", [("confluent", "sasl_plain_username"), ("kafka-python", "sasl.username")])
def test_an_option_of_the_other_client_is_a_clear_error(client, option):
    if client not in HAVE:
        pytest.skip(f"{client} does not import here")
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka_client=client, kafka={option: "screener"})
    for make in (lambda: clients.producer(settings), lambda: clients.consumer(settings)):
        with pytest.raises(ConfigError, match=f"kafka \\({'confluent-kafka' if client == 'confluent' else 'kafka-python'}\\).*own spelling"):
            make()


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_no_broker_is_a_broker_failure_not_a_hang(client):
    if client not in HAVE:
        pytest.skip(f"{client} does not import here")
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka_client=client)
    with pytest.raises(clients.BrokerFailure):
        clients.consumer(settings)


def test_supervised_children_get_the_same_settings():
    """The supervisor pickles the settings for its children: tables become
    dicts, everything else (kafka_client, guarantee) is passed as it is."""
    import pickle

    from screener.stream.supervisor import _settings_dict

    settings = Settings(kafka_client="kafka-python", guarantee="exactly-once", kafka={"client_id": "x"})
    again = Settings(**pickle.loads(pickle.dumps(_settings_dict(settings))))
    assert (again.kafka_client, again.guarantee, dict(again.kafka)) == ("kafka-python", "exactly-once", {"client_id": "x"})


def test_exactly_once_needs_the_confluent_client():
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka_client="kafka-python") if "kafka-python" in HAVE else None
    if settings is None:
        pytest.skip("kafka-python does not import here")
    with pytest.raises(ConfigError, match="exactly-once needs the confluent client"):
        clients.transactional_producer(settings, "t")


def test_the_deployments_sasl_options_are_librdkafka_options():
    """deploy/k8s/deployment.yaml configures SASL_SSL through SCREENER_KAFKA_*
    for the default client: librdkafka must accept every option."""
    if "confluent" not in HAVE:
        pytest.skip("confluent-kafka does not import here")
    from pathlib import Path

    import confluent_kafka
    import yaml

    deployment = yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", "secret") for e in container["env"] if e["name"].startswith("SCREENER_KAFKA_")}
    assert {"SCREENER_KAFKA_SECURITY_PROTOCOL", "SCREENER_KAFKA_SASL_USERNAME"} <= set(env)
    env["SCREENER_KAFKA_SSL_CA_LOCATION"] = "probe"  # the name is checked; the file exists only in the pod
    settings = load_settings({}, env={**env, "SCREENER_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    config = clients._confluent_config(settings, clients.CONFLUENT_PRODUCER, settings.kafka_producer)
    confluent_kafka.Producer(config).flush(0)  # raises on an option librdkafka does not know


def test_librdkafka_lines_that_differ_only_in_numbers_are_logged_once_a_minute(caplog):
    now = [0.0]
    logger = __import__("logging").getLogger("screener.test-librdkafka")
    limited = clients.RepeatLimitedLog(logger, every_s=60.0, clock=lambda: now[0])
    fail = "%s [%s] %s"
    with caplog.at_level("DEBUG", logger="screener.test-librdkafka"):
        for k in range(50):
            now[0] = k * 0.5
            limited.log(40, fail, "FAIL", f"rdkafka#consumer-{k % 3}", f"Connect to 127.0.0.1:{k} failed (after {k}ms)")
        limited.log(40, fail, "FAIL", "rdkafka#consumer-1", "SASL authentication error: Authentication failed")
        now[0] = 61.0
        limited.log(40, fail, "FAIL", "rdkafka#consumer-1", "Connect to 127.0.0.1:9 failed (after 0ms)")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "librdkafka: FAIL [rdkafka#consumer-0] Connect to 127.0.0.1:0 failed (after 0ms)",
        "librdkafka: FAIL [rdkafka#consumer-1] SASL authentication error: Authentication failed",
        "librdkafka: FAIL [rdkafka#consumer-1] Connect to 127.0.0.1:9 failed (after 0ms) (49 more like it in the last 61 s)",
    ]
    assert [r.levelno for r in caplog.records] == [40, 40, 40]


def test_no_broker_logs_a_line_or_two_through_logging_not_dozens_to_stderr(caplog, capfd, monkeypatch):
    """A walk-through of the docs: ``screener audit`` with no broker printed
    40 raw librdkafka lines before its one-line error; a worker, 300 in 12 s."""
    if "confluent" not in HAVE:
        pytest.skip("confluent-kafka does not import here")
    # A limiter of its own: the process's one has held back this kind of line
    # for a minute if another test met no broker just before.
    monkeypatch.setattr(clients, "LIBRDKAFKA_LOG", clients.RepeatLimitedLog(clients.LIBRDKAFKA_LOG._logger))
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka_client="confluent")
    with caplog.at_level("INFO", logger="screener.librdkafka"):
        with pytest.raises(clients.BrokerFailure):
            clients.consumer(settings)
    lines = [r.getMessage() for r in caplog.records if r.name == "screener.librdkafka"]
    assert 1 <= len(lines) <= 2 and "Connection refused" in lines[0], lines
    assert "rdkafka" not in capfd.readouterr().err  # nothing written around logging


def test_the_liveness_probe_serves_its_log_lines(caplog, monkeypatch):
    """Its admin client only asked for metadata, which serves no log queue:
    with the broker down the lines piled up unseen, ~1 MB a minute (found by
    a review)."""
    if "confluent" not in HAVE:
        pytest.skip("confluent-kafka does not import here")
    monkeypatch.setattr(clients, "LIBRDKAFKA_LOG", clients.RepeatLimitedLog(clients.LIBRDKAFKA_LOG._logger))
    ask = clients.probe(Settings(bootstrap_servers="127.0.0.1:1", kafka_client="confluent"))
    with caplog.at_level("INFO", logger="screener.librdkafka"):
        for _ in range(2):
            with pytest.raises(clients.BrokerFailure):
                ask(1.0)
    lines = [r.getMessage() for r in caplog.records if r.name == "screener.librdkafka"]
    assert any("Connection refused" in line for line in lines), lines
