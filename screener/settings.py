"""One frozen settings object; defaults < TOML file < SCREENER_* env < CLI flags.

Every field documents its environment variable: ``SCREENER_`` + the field name
in upper case (``matcher`` → ``SCREENER_MATCHER``).
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "SCREENER_"


def shipped_lexicons() -> str:
    """The lexicon set shipped with the source tree."""
    return str(Path(__file__).resolve().parent.parent / "lexicons")


def shipped_policy() -> str:
    """The policy shipped with the source tree (policy/README.md)."""
    return str(Path(__file__).resolve().parent.parent / "policy" / "default.policy")


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: Lexicon directory (SCREENER_LEXICONS); defaults to the shipped set.
    lexicons: str = ""
    #: Policy file (SCREENER_POLICY); defaults to the shipped one, "none" for no policy.
    policy: str = ""
    #: auto | aho | hyperscan (SCREENER_MATCHER).
    matcher: str = "auto"
    #: Audit log, JSONL, appended to by scan and rescan; "" for none (SCREENER_AUDIT).
    audit: str = ""
    #: Repeat-offender state of scan, a SQLite file; "" keeps it in memory (SCREENER_STATE).
    state: str = ""
    #: Names this process in audit records (SCREENER_WORKER_ID); default host:pid.
    worker_id: str = ""
    #: Dead-letter JSONL path, "-" for stderr (SCREENER_DEAD_LETTER).
    dead_letter: str = "-"
    #: Records larger than this go to the dead-letter sink (SCREENER_MAX_POST_BYTES).
    max_post_bytes: int = 256 * 1024
    #: Hits listed per post in an event or audit record; the verdict still counts all (SCREENER_MAX_HITS_PER_POST).
    max_hits_per_post: int = 100
    #: Largest event, audit record or dead letter produced, in bytes; larger ones are shortened with a
    #: marker (SCREENER_MAX_RECORD_BYTES). Kafka's default max.request.size is 1 MiB.
    max_record_bytes: int = 900_000
    #: Posts screened per matcher call (SCREENER_BATCH_RECORDS). Each call
    #: starts with the matcher's tables out of cache, so fewer, larger calls
    #: help until the batch itself no longer fits: measured at 50k terms on
    #: the news corpus, 4096 records capped at 1 MB (~3,500 posts) ran 3-6%
    #: faster than 2048, and 8192 records with 2 MB were no faster.
    batch_records: int = 4096
    #: ... or this many input bytes, whichever comes first (SCREENER_BATCH_BYTES).
    batch_bytes: int = 1 << 20
    #: auto | on | off: progress bar on stderr (SCREENER_PROGRESS).
    progress: str = "auto"

    # -- the Kafka worker (``screener run``) -----------------------------------
    #: Comma-separated brokers (SCREENER_BOOTSTRAP_SERVERS).
    bootstrap_servers: str = "localhost:9092"
    #: Topic of posts (SCREENER_INPUT_TOPIC).
    input_topic: str = "screener.posts"
    #: Consumer group; every worker process of a deployment shares it (SCREENER_GROUP_ID).
    group_id: str = "screener"
    #: Topic for flag and recall events (SCREENER_EVENTS_TOPIC).
    events_topic: str = "screener.events"
    #: Per-action topics; empty means events_topic (SCREENER_FLAG_TOPIC, SCREENER_RECALL_TOPIC).
    flag_topic: str = ""
    recall_topic: str = ""
    #: Malformed messages, with their origin in headers (SCREENER_DEAD_LETTER_TOPIC).
    dead_letter_topic: str = "screener.dead-letter"
    #: The audit trail, append-only; "" turns it off (SCREENER_AUDIT_TOPIC).
    audit_topic: str = "screener.audit"
    #: Compacted changelog of the repeat-offender state, partitioned like the
    #: input topic (SCREENER_OFFENDERS_TOPIC).
    offenders_topic: str = "screener.offenders"
    #: On a new lexicon or policy version, rescan the input topic's last N
    #: seconds and recall what became stricter; 0: off (SCREENER_RESCAN_WINDOW_S).
    rescan_window_s: int = 0
    #: Prometheus metrics, /healthz and /readyz; 0 turns the server off (SCREENER_METRICS_PORT).
    metrics_port: int = 9108
    metrics_host: str = "0.0.0.0"
    #: Worker processes in this consumer group on this machine (SCREENER_WORKERS).
    workers: int = 1
    #: Most records screened per poll (SCREENER_POLL_MAX_RECORDS).
    poll_max_records: int = 2048
    #: How long a poll waits for records, in ms (SCREENER_POLL_TIMEOUT_MS).
    poll_timeout_ms: int = 200
    #: Graceful shutdown must finish within this many seconds (SCREENER_SHUTDOWN_TIMEOUT_S).
    shutdown_timeout_s: int = 10
    #: How often the lexicon directory is checked for a new version, in s (SCREENER_RELOAD_INTERVAL_S).
    reload_interval_s: int = 2
    #: Raw kafka-python options for consumer and producer (security_protocol,
    #: sasl_mechanism, ssl_cafile, ...): TOML table [kafka], env
    #: SCREENER_KAFKA_<OPTION>, CLI --kafka-option KEY=VALUE.
    kafka: Mapping[str, Any] = field(default_factory=dict)
    #: Options for only the consumer / only the producer (TOML [kafka_consumer], [kafka_producer]).
    kafka_consumer: Mapping[str, Any] = field(default_factory=dict)
    kafka_producer: Mapping[str, Any] = field(default_factory=dict)

    @property
    def policy_path(self) -> str | None:
        return None if self.policy == "none" else self.policy

    def topic_for(self, action: str) -> str:
        chosen = {"flag": self.flag_topic, "recall": self.recall_topic}.get(action, "")
        return chosen or self.events_topic

    def __post_init__(self) -> None:
        if not self.lexicons:
            object.__setattr__(self, "lexicons", shipped_lexicons())
        if not self.policy:
            object.__setattr__(self, "policy", shipped_policy())
        if not self.worker_id:
            object.__setattr__(self, "worker_id", f"{socket.gethostname()}:{os.getpid()}")
        if self.matcher not in ("auto", "aho", "hyperscan"):
            raise ConfigError(f"matcher must be auto, aho or hyperscan, not {self.matcher!r}")
        if self.progress not in ("auto", "on", "off"):
            raise ConfigError(f"progress must be auto, on or off, not {self.progress!r}")
        for name in ("max_post_bytes", "batch_records", "batch_bytes", "workers", "poll_max_records",
                     "shutdown_timeout_s", "reload_interval_s"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive")
        if self.rescan_window_s < 0:
            raise ConfigError("rescan_window_s must be 0 (off) or positive")
        if not 0 <= self.metrics_port < 65536:
            raise ConfigError("metrics_port must be 0-65535")
        for name in ("kafka", "kafka_consumer", "kafka_producer"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is int and not isinstance(value, int):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    return value


def kafka_value(text: str) -> Any:
    """A Kafka option given as text (env, CLI): int or bool when it looks like one."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _kind(f: Any) -> type:
    return {"int": int, "str": str}.get(str(f.type), dict)


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Merge the sources; a ``None`` CLI value means "not given"."""
    env = os.environ if env is None else env
    kinds = {f.name: _kind(f) for f in fields(Settings)}
    merged: dict[str, Any] = {"kafka": {}}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        unknown = sorted(set(doc) - set(kinds))
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        merged.update(doc)
        merged["kafka"] = dict(doc.get("kafka", {}))
    for name, kind in kinds.items():
        if kind is not dict and ENV_PREFIX + name.upper() in env:
            merged[name] = env[ENV_PREFIX + name.upper()]
    kafka_prefix = ENV_PREFIX + "KAFKA_"
    for key, value in env.items():
        if key.startswith(kafka_prefix) and not key.startswith((kafka_prefix + "CONSUMER", kafka_prefix + "PRODUCER")):
            merged["kafka"][key[len(kafka_prefix):].lower()] = kafka_value(value)
    cli = dict(cli or {})
    for option in cli.pop("kafka_option", None) or []:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ConfigError(f"--kafka-option takes KEY=VALUE, not {option!r}")
        merged["kafka"][key.strip()] = kafka_value(value.strip())
    merged.update({k: v for k, v in cli.items() if v is not None and k in kinds})
    return Settings(**{k: (_coerce(k, v, kinds[k]) if kinds[k] is not dict else v) for k, v in merged.items()})
