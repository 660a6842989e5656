"""One frozen settings object; defaults < TOML file < SCREENER_* env < CLI flags.

Every field documents its environment variable: ``SCREENER_`` + the field name
in upper case (``matcher`` → ``SCREENER_MATCHER``).

Every value is checked against the field's declared type, whatever its
source: a TOML value must already have the type (``max_post_bytes = 1.5`` or
``dead_letter = 5`` is an error, not 1 or file descriptor 5); an environment
or command-line string must parse as one. Errors read ``setting: reason``.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import os
import re
import socket
import sys
import typing
from collections.abc import Mapping as MappingABC
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


def _shipped(name: str) -> Path:
    """A directory shipped with screener (``lexicons`` or ``policy``).

    Installed from a wheel, it is package data: ``screener/_shipped/NAME``
    (pyproject.toml maps the top-level directory there). In a source checkout
    or an editable install it is the top-level directory itself, which is
    the source of truth.
    """
    packaged = importlib.resources.files("screener") / "_shipped" / name
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


def shipped_lexicons() -> str:
    """The lexicon set shipped with screener (lexicons/README.md)."""
    return str(_shipped("lexicons"))


def shipped_policy() -> str:
    """The policy shipped with screener (policy/README.md)."""
    return str(_shipped("policy") / "default.policy")


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
    #: Hits reported per post in an event or audit record; the verdict still
    #: counts all (SCREENER_MAX_HITS_PER_POST).
    max_hits_per_post: int = 100
    #: Largest event, audit record or dead letter produced, in bytes; larger
    #: ones are shortened with a marker (SCREENER_MAX_RECORD_BYTES). Kafka's
    #: default max.request.size is 1 MiB.
    max_record_bytes: int = 900_000
    #: Directory of compiled lexicon sets, fold tables and jieba's dictionary
    #: cache (SCREENER_CACHE_DIR); "" is $XDG_CACHE_HOME/screener or
    #: ~/.cache/screener, "off" turns the cache off (screener/cache.py).
    cache_dir: str = ""

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
    #: Address the metrics server listens on; 127.0.0.1 keeps it local (SCREENER_METRICS_HOST).
    metrics_host: str = "0.0.0.0"
    #: Worker processes in this consumer group on this machine (SCREENER_WORKERS).
    workers: int = 1
    #: Most records screened per poll (SCREENER_POLL_MAX_RECORDS).
    poll_max_records: int = 2048
    #: How long a poll waits for records, in ms (SCREENER_POLL_TIMEOUT_MS).
    poll_timeout_ms: int = 200
    #: /readyz answers 503 when the broker has not answered for this many
    #: seconds, even while nothing fails (a frozen broker); an idle worker
    #: asks it something small every quarter of it (SCREENER_BROKER_TIMEOUT_S).
    broker_timeout_s: int = 10
    #: Graceful shutdown must finish within this many seconds (SCREENER_SHUTDOWN_TIMEOUT_S).
    shutdown_timeout_s: int = 10
    #: How often the lexicon directory is checked for a new version, in s (SCREENER_RELOAD_INTERVAL_S).
    reload_interval_s: int = 2
    #: at-least-once | exactly-once (SCREENER_GUARANTEE): exactly-once screens
    #: each batch inside a Kafka transaction (confluent client only; README).
    guarantee: str = "at-least-once"
    #: Kafka client library: auto | confluent | kafka-python (SCREENER_KAFKA_CLIENT);
    #: auto is confluent-kafka (librdkafka) where its wheel imports.
    kafka_client: str = "auto"
    #: Raw options of that client for consumer and producer, in its own
    #: spelling (confluent: security.protocol, sasl.mechanisms, ...;
    #: kafka-python: security_protocol, sasl_mechanism, ssl_cafile, ...): TOML
    #: table [kafka], env SCREENER_KAFKA_<OPTION>, CLI --kafka-option KEY=VALUE.
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
        kinds = field_kinds()
        for f in fields(self):
            check_type(f.name, getattr(self, f.name), kinds[f.name])
            if isinstance(getattr(self, f.name), str) and "\x00" in getattr(self, f.name):
                # No path, topic or id can hold one; open() raised ValueError, an internal error (found by a probe).
                raise ConfigError(f"{f.name}: must not contain a NUL character (\\u0000)")
        if not self.lexicons:
            object.__setattr__(self, "lexicons", shipped_lexicons())
        if not self.policy:
            object.__setattr__(self, "policy", shipped_policy())
        if not self.worker_id:
            object.__setattr__(self, "worker_id", f"{socket.gethostname()}:{os.getpid()}")
        for name, choices in (("matcher", ("auto", "aho", "hyperscan")), ("progress", ("auto", "on", "off")),
                              ("kafka_client", ("auto", "confluent", "kafka-python")),
                              ("guarantee", ("at-least-once", "exactly-once"))):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name}: must be {', '.join(choices[:-1])} or {choices[-1]}, not {getattr(self, name)!r}")
        for name, least in _MINIMUM.items():
            if getattr(self, name) < least:
                raise ConfigError(f"{name}: must be at least {least}, not {getattr(self, name)}")
        for name, most in _MAXIMUM.items():
            if getattr(self, name) > most:
                raise ConfigError(f"{name}: must be at most {most:,}, not {getattr(self, name):,}")
        if not 0 <= self.metrics_port < 65536:
            raise ConfigError(f"metrics_port: must be 0 (off) to 65535, not {self.metrics_port}")
        if not self.dead_letter:  # "cannot open --dead-letter : No such file" said it less clearly
            raise ConfigError("dead_letter: must be a file, or - for stderr, not ''")
        if not self.bootstrap_servers.strip(" ,"):  # the client would retry nothing for ever
            raise ConfigError("bootstrap_servers: must name at least one broker (host:port), not "
                              f"{self.bootstrap_servers!r}")
        for name in _TOPICS:
            topic = getattr(self, name)
            if (topic or name not in _OPTIONAL_TOPICS) and not _is_topic(topic):
                raise ConfigError(f"{name}: must be a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -, not . or ..)"
                                  f"{'' if name not in _OPTIONAL_TOPICS else ', or empty'}, not {topic!r}")
        for name in ("kafka", "kafka_consumer", "kafka_producer"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


#: Topic settings; a bad name reached the client as "Invalid argument", an
#: internal error (found by a hostile-input probe: --input-topic '').
_TOPICS = ("input_topic", "events_topic", "flag_topic", "recall_topic", "dead_letter_topic", "audit_topic",
           "offenders_topic")
#: Those that may be empty: per-action topics fall back to events_topic; no audit topic turns it off.
_OPTIONAL_TOPICS = frozenset({"flag_topic", "recall_topic", "audit_topic"})
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def _is_topic(name: str) -> bool:
    return _TOPIC.fullmatch(name) is not None and name not in (".", "..")


#: Lower bounds of the whole-number settings (the rest have none but their type).
_MINIMUM = {
    "max_post_bytes": 1, "batch_records": 1, "batch_bytes": 1, "workers": 1, "poll_max_records": 1,
    "shutdown_timeout_s": 1, "broker_timeout_s": 1, "reload_interval_s": 1, "max_hits_per_post": 1,
    # A record must hold at least its envelope (ids, versions, the marker
    # saying it was shortened) next to some content.
    "max_record_bytes": 4096,
    "rescan_window_s": 0, "poll_timeout_ms": 0,
}
#: Upper bounds, where a larger value fails or runs wild rather than doing
#: more of the same: a read buffer that large (batch_bytes: MemoryError),
#: confluent-kafka's most records per consume (poll_max_records: a worker
#: that raised on every poll, crash-looping), a fork per worker, and waits
#: a thread cannot sleep (OverflowError: the reloader stopped for good).
#: Found by a hostile-input probe.
_MAXIMUM = {
    "batch_bytes": 1 << 30, "poll_max_records": 1_000_000, "workers": 1024,
    "reload_interval_s": 86_400, "poll_timeout_ms": 60_000, "broker_timeout_s": 86_400,
    "shutdown_timeout_s": 86_400, "rescan_window_s": 366 * 86_400,
}
_KIND_NAMES = {int: "a whole number", bool: "true or false", str: "a string", MappingABC: "a table"}
#: An int from text: ASCII digits (int() also takes '٣' and '1_000'), and few
#: enough that int() never sees a huge string.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_BOOL_TEXT = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


@functools.cache
def field_kinds() -> Mapping[str, type]:
    """Each setting's kind: int, bool, str or Mapping, from the annotations."""
    kinds: dict[str, type] = {}
    for name, hint in typing.get_type_hints(Settings).items():
        origin = typing.get_origin(hint) or hint
        kinds[name] = MappingABC if isinstance(origin, type) and issubclass(origin, MappingABC) else origin
    return MappingProxyType(kinds)


def _shown(value: Any) -> str:
    """A value as the operator wrote it (TOML spelling for booleans and tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, MappingABC):
        return "a table"
    return repr(value)


def check_type(name: str, value: Any, kind: type, source: str = "") -> None:
    """Raise ``ConfigError("name: must be ..., not ...")`` unless ``value`` is of ``kind``.

    A bool is not a whole number here, although Python says it is an int.
    """
    ok = type(value) is int if kind is int else isinstance(value, kind)
    if not ok:
        where = f" (in {source})" if source else ""
        raise ConfigError(f"{name}: must be {_KIND_NAMES.get(kind, kind.__name__)}, not {_shown(value)}{where}")


def from_text(name: str, text: str, kind: type, source: str) -> Any:
    """A setting given as text (environment, command line) as its kind."""
    if kind is int:
        if not _INT_TEXT.fullmatch(text.strip()):
            too_long = re.fullmatch(r"[+-]?[0-9]+", text.strip()) is not None
            raise ConfigError(f"{name}: must be a whole number{' of at most 18 digits' if too_long else ''}, "
                              f"not {text!r} (from {source})")
        return int(text.strip())
    if kind is bool:
        if text.strip().lower() not in _BOOL_TEXT:
            raise ConfigError(f"{name}: must be true or false, not {text!r} (from {source})")
        return _BOOL_TEXT[text.strip().lower()]
    return text


def kafka_value(text: str) -> Any:
    """A Kafka option given as text (env, CLI): int or bool when it looks like one."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Merge the sources; a ``None`` CLI value means "not given"."""
    env = os.environ if env is None else env
    kinds = field_kinds()
    merged: dict[str, Any] = {"kafka": {}}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        merged.update(_read_toml(path, kinds))
        merged["kafka"] = dict(merged["kafka"])
    for name, kind in kinds.items():
        variable = ENV_PREFIX + name.upper()
        if kind is not MappingABC and variable in env:
            merged[name] = from_text(name, env[variable], kind, variable)
    kafka_prefix = ENV_PREFIX + "KAFKA_"
    for key, value in env.items():
        if key == kafka_prefix + "CLIENT":  # the kafka_client setting, not a client option
            continue
        if key.startswith(kafka_prefix) and not key.startswith((kafka_prefix + "CONSUMER", kafka_prefix + "PRODUCER")):
            merged["kafka"][key[len(kafka_prefix):].lower()] = kafka_value(value)
    cli = dict(cli or {})
    for option in cli.pop("kafka_option", None) or []:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ConfigError(f"--kafka-option takes KEY=VALUE, not {option!r}")
        merged["kafka"][key.strip()] = kafka_value(value.strip())
    for name, value in cli.items():
        if value is not None and name in kinds:
            given = isinstance(value, str) and kinds[name] is not str
            merged[name] = from_text(name, value, kinds[name], "the command line") if given else value
    return Settings(**merged)


#: SCREENER_* variables read outside the settings (debugging and tuning
#: switches, the supervisor's mark on its children).
OTHER_VARIABLES = frozenset({"CONFIG", "DEBUG", "COMPACT", "PINYIN", "SEGMENT", "WORKER_CHILD"})
#: The values the switches among them understand (any other reads as the
#: default: worth a word, as SCREENER_PINYIN=of would leave the pass on).
SWITCHES = {"COMPACT": ("numpy", "numba"), "PINYIN": ("on", "off"), "SEGMENT": ("jieba",)}


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """What to say about each ``SCREENER_*`` variable that nothing reads.

    A TOML file with an unknown key is refused; an environment holds
    variables of other programs too, so an unknown variable is a warning.
    It is still worth one: ``SCREENER_MATCHR=aho`` (a typo) used to be
    ignored without a word, and the run went on with the default.

    >>> unknown_variables({"SCREENER_MATCHR": "aho", "SCREENER_MATCHER": "aho", "SCREENER_KAFKA_ACKS": "all"})
    ['SCREENER_MATCHR is not a setting and was ignored (did you mean SCREENER_MATCHER?)']
    """
    env = os.environ if env is None else env
    # The tables ([kafka], [kafka_consumer], [kafka_producer]) are TOML only: SCREENER_KAFKA is no variable.
    known = ({ENV_PREFIX + name.upper() for name, kind in field_kinds().items() if kind is not MappingABC}
             | {ENV_PREFIX + name for name in OTHER_VARIABLES})
    kafka = ENV_PREFIX + "KAFKA_"
    out = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX):
            continue
        switch = SWITCHES.get(variable[len(ENV_PREFIX):])
        if switch and env[variable].lower() not in ("", *switch):  # as their readers read them: no strip
            out.append(f"{variable}={env[variable]!r} is not one of {', '.join(switch)}: the default applies")
        if variable in known:
            continue
        if variable.startswith((kafka + "CONSUMER", kafka + "PRODUCER")):
            out.append(f"{variable} was ignored: options for only the consumer or the producer are set in "
                       f"the TOML file ([kafka_consumer], [kafka_producer]); {kafka}<OPTION> sets both")
        elif not variable.startswith(kafka):  # any other SCREENER_KAFKA_* is a client option
            close = difflib.get_close_matches(variable, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            out.append(f"{variable} is not a setting and was ignored{hint}")
    return out


def _read_toml(path: str, kinds: Mapping[str, type]) -> dict[str, Any]:
    """The settings of a TOML file, each of its field's type (no coercion)."""
    try:
        doc = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); a settings file is UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - set(kinds))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    for name, value in doc.items():
        check_type(name, value, kinds[name], path)
    return doc
