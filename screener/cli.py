"""screener: screen Chinese social-media posts against category lexicons.

Commands: scan (JSONL files or stdin), explain (one text, step by step),
run (the Kafka worker), rescan (archived posts under new rules), audit (what
was decided and why), lexicon check (validate a lexicon directory).

Errors a user or a file can cause are one line, ``screener: ...``, exit 2;
an interrupt prints the summary so far and exits 130.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Sequence

import orjson

from . import __version__, jsonio
from .errors import BrokerError, ConfigError, InputError, OutputError, ScreenerError, report
from .judge import Engine
from .lexicon import load_lexicons
from .settings import Settings, load_settings, unknown_variables
from .sinks import ClosedStderr

if TYPE_CHECKING:
    from .cache import Cache


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lexicons", metavar="DIR", help="lexicon directory (default: the shipped set)")
    parser.add_argument("--policy", metavar="FILE", help="policy file (default: the shipped one; 'none': no policy)")
    parser.add_argument("--matcher", choices=("auto", "aho", "hyperscan"), help="matcher backend (default auto)")
    parser.add_argument("--config", metavar="TOML", help="settings file (also SCREENER_CONFIG)")


def _limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-post-bytes", metavar="N",
                        help="records larger than N bytes are dead-lettered (default 262144)")
    parser.add_argument("--max-hits-per-post", metavar="N",
                        help="hits listed per post in an event or audit record (default 100; the verdict counts all)")
    parser.add_argument("--max-record-bytes", metavar="N",
                        help="largest event, audit record or dead letter; larger ones are shortened (default 900000)")


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` chose, for its usage in an error."""
    for action in parser._actions:  # argparse keeps no public map from a command to its parser
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            return _command_parser(chosen, args) if chosen is not None else parser
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="screener", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"screener {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    scan = sub.add_parser("scan", help="screen JSONL posts from files or stdin; events on stdout")
    _common(scan)
    scan.add_argument("files", nargs="*", metavar="FILE", help="JSONL files ('-' or none: stdin)")
    scan.add_argument("--dead-letter", metavar="PATH", help="dead-letter JSONL file ('-': stderr, the default)")
    _limits(scan)
    scan.add_argument("--batch-records", metavar="N", help="posts per screening call")
    scan.add_argument("--progress", choices=("auto", "on", "off"), help="progress bar on stderr")
    scan.add_argument("--audit", metavar="PATH", help="append the audit trail to this JSONL file")
    scan.add_argument("--state", metavar="PATH", help="repeat-offender state in this SQLite file (default: in memory)")

    exp = sub.add_parser("explain", help="show normalisation, candidate hits and decisions for TEXT")
    _common(exp)
    exp.add_argument("text", metavar="TEXT", help="the post text (with --profile: the account name)")
    exp.add_argument("--account", metavar="JSON", help='the author\'s account, e.g. \'{"type": "individual", "news_license": false}\'')
    exp.add_argument("--blacklisted", action="store_true", help="judge as if the account were blacklisted")
    exp.add_argument("--profile", action="store_true", help="TEXT is an account name, screened by the name policy")
    exp.add_argument("--bio", metavar="TEXT", help="with --profile: the account bio")
    exp.add_argument("--json", action="store_true", help="machine-readable output")

    run = sub.add_parser("run", help="Kafka consumer-group worker: posts in, events and dead letters out")
    _common(run)
    run.add_argument("--bootstrap-servers", metavar="HOSTS", help="comma-separated brokers (default localhost:9092)")
    run.add_argument("--input-topic", metavar="TOPIC", help="topic of posts (default screener.posts)")
    run.add_argument("--group-id", metavar="GROUP", help="consumer group (default screener)")
    run.add_argument("--events-topic", metavar="TOPIC", help="flag and recall events (default screener.events)")
    run.add_argument("--flag-topic", metavar="TOPIC", help="flag events only (default: the events topic)")
    run.add_argument("--recall-topic", metavar="TOPIC", help="recall events only (default: the events topic)")
    run.add_argument("--dead-letter-topic", metavar="TOPIC", help="malformed records (default screener.dead-letter)")
    run.add_argument("--audit-topic", metavar="TOPIC", help="the audit trail (default screener.audit; '': off)")
    run.add_argument("--offenders-topic", metavar="TOPIC",
                     help="compacted changelog of repeat-offender state, partitioned like the input (default screener.offenders)")
    run.add_argument("--rescan-window-s", metavar="S",
                     help="on a new lexicon/policy version, rescan the input's last S seconds (default 0: off)")
    run.add_argument("--worker-id", metavar="ID", help="names this worker in audit records (default host:pid)")
    run.add_argument("--metrics-port", metavar="PORT", help="Prometheus /metrics, /healthz, /readyz (default 9108; 0: off)")
    run.add_argument("--metrics-host", metavar="ADDR", help="address to serve metrics on (default 0.0.0.0)")
    run.add_argument("--workers", metavar="N", help="worker processes in the group (default 1)")
    run.add_argument("--broker-timeout-s", metavar="S",
                     help="/readyz answers 503 once the broker has not answered for S seconds (default 10)")
    _limits(run)
    _client(run)
    run.add_argument("--guarantee", choices=("at-least-once", "exactly-once"),
                     help="at-least-once (default) or exactly-once: each batch in a Kafka transaction (confluent client)")
    run.add_argument("--kafka-option", action="append", metavar="KEY=VALUE",
                     help="Kafka client option for consumer and producer, in the client's spelling (repeatable), "
                          "e.g. security.protocol=SASL_SSL (confluent) or security_protocol=SASL_SSL (kafka-python)")

    res = sub.add_parser("rescan", help="re-screen published posts; events only for verdicts that became stricter")
    _common(res)
    res.add_argument("files", nargs="*", metavar="FILE", help="JSONL archives of posts ('-' or none: stdin; or --topic)")
    res.add_argument("--previous", metavar="PATH", action="append", default=[],
                     help="earlier events or audit JSONL: the verdicts posts were published under (repeatable)")
    res.add_argument("--checkpoint", metavar="PATH", help="resume from / record progress in this file")
    res.add_argument("--audit", metavar="PATH", help="append the audit trail to this JSONL file")
    res.add_argument("--dead-letter", metavar="PATH", help="malformed lines of the archives, JSONL ('-': stderr, the default)")
    _limits(res)
    res.add_argument("--progress", choices=("auto", "on", "off"), help="progress bar on stderr")
    res.add_argument("--topic", metavar="TOPIC", help="rescan a Kafka topic instead of files; events go to the events topic")
    start = res.add_mutually_exclusive_group()
    start.add_argument("--from-offset", metavar="N", help="with --topic: start every partition at offset N")
    start.add_argument("--from-timestamp", metavar="ISO", help="with --topic: start at the first post at/after this time")
    res.add_argument("--previous-topic", metavar="TOPIC", action="append", default=[],
                     help="with --topic: topics of earlier events/audit (default: the events and audit topics)")
    res.add_argument("--bootstrap-servers", metavar="HOSTS", help="brokers, with --topic")
    res.add_argument("--events-topic", metavar="TOPIC", help="with --topic: where events go (default screener.events)")
    res.add_argument("--audit-topic", metavar="TOPIC", help="with --topic: the audit trail (default screener.audit)")
    res.add_argument("--dead-letter-topic", metavar="TOPIC",
                     help="with --topic: malformed records (default screener.dead-letter)")
    _client(res)

    aud = sub.add_parser("audit", help="what was decided about a post or an account, when, under which versions, why")
    who = aud.add_mutually_exclusive_group(required=True)
    who.add_argument("--post", metavar="ID", help="a post (or profile) id")
    who.add_argument("--account", metavar="ID", help="an account id: its posts, profile and blacklist status")
    aud.add_argument("--audit", metavar="PATH", action="append", dest="audit_files",
                     help="audit JSONL file(s) of scan/rescan (repeatable)")
    aud.add_argument("--audit-topic", metavar="TOPIC", help="read the Kafka audit topic instead (default screener.audit)")
    aud.add_argument("--bootstrap-servers", metavar="HOSTS", help="brokers, with --audit-topic")
    _client(aud)
    aud.add_argument("--config", metavar="TOML", help="settings file (also SCREENER_CONFIG)")
    aud.add_argument("--json", action="store_true", help="the records as JSON lines")

    lex = sub.add_parser("lexicon", help="lexicon tools")
    lex_sub = lex.add_subparsers(dest="lexicon_command", required=True)
    check = lex_sub.add_parser("check", help="validate a lexicon directory; errors and warnings")
    check.add_argument("directory", metavar="DIR")
    check.add_argument("--strict", action="store_true", help="warnings fail too")
    check.add_argument("--policy", metavar="FILE", help="also check this policy file against the lexicon set")
    return parser


def _client(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka-client", choices=("auto", "confluent", "kafka-python"),
                        help="Kafka client library (default auto: confluent-kafka where it imports, else kafka-python)")


_NOT_SETTINGS = ("command", "files", "text", "json", "config", "account", "blacklisted", "profile", "bio", "post",
                 "previous", "checkpoint", "topic", "from_offset", "from_timestamp", "previous_topic", "audit_files")


def _settings(args: argparse.Namespace) -> Settings:
    cli = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    settings = load_settings(cli, config_file=args.config)
    for warning in unknown_variables():
        print(f"screener: {warning} [warning]", file=sys.stderr)
    return settings


def _engine(settings: Settings) -> Engine:
    engine = Engine.build(settings.lexicons, settings.policy_path, settings.matcher, settings.cache_dir)
    # The engine lives until the command ends, and nothing in it is cyclic
    # garbage. Left to the collector, every full collection walks it again;
    # the objects each batch creates set one off every few batches, which
    # cost 40% of `scan` on the dense benchmark. Frozen, it is out of the
    # collector's sight (the worker does the same: stream/run.py).
    gc.freeze()
    for warning in engine.policy.warnings:  # e.g. a rule for a category this lexicon set lacks
        print(f"{warning} [warning]", file=sys.stderr)
    return engine


def _stdout() -> BinaryIO:
    if sys.stdout is None:
        raise OutputError("cannot write events: stdout is closed")
    return sys.stdout.buffer


def cmd_scan(args: argparse.Namespace) -> int:
    from .scan import Summary, run_scan

    settings = _settings(args)
    out = _stdout()
    engine = _engine(settings)
    print(f"screener: matcher {engine.matcher_name} ({settings.matcher}), lexicon {settings.lexicons} "
          f"version {engine.lexicon_version}, {engine.posts.lexicons.term_count} terms, "
          f"policy {settings.policy_path or 'none'} version {engine.policy_version}", file=sys.stderr)
    if settings.state and not engine.policy.offenders.enabled:  # it was ignored without a word (found by a probe)
        print(f"screener: --state {settings.state} is not used: the policy counts no offenders "
              "(it has no 'offenders:' line) [warning]", file=sys.stderr)
    summary = Summary()

    def said(mark: str = "") -> None:
        print(summary.line(engine.matcher_name, engine.lexicon_version) + mark, file=sys.stderr)

    try:
        run_scan(settings, engine, args.files, out, summary)
    except KeyboardInterrupt as exc:
        said(" interrupted=true")
        return _interrupted(exc)
    except BrokenPipeError:
        # `screener scan | head`: the reader has what it wanted; the rest was
        # not screened, and the counts say how far it got (they were lost).
        said(" output_closed=true")
        raise
    except ScreenerError:
        # The counts so far, then the error (main prints it): what was
        # written is complete up to the batch that failed. A run refused
        # before it read anything (an output that is an input, a locked
        # --state, a missing first file) has no counts: only the error.
        if summary.started:
            said(" stopped=true")
        raise
    said()
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, render

    for option, value in (("TEXT", args.text), ("--bio", args.bio), ("--account", args.account)):
        _utf8_argument(option, value)
    try:
        account = jsonio.loads(args.account) if args.account else {}
    except ValueError as exc:  # orjson's and json's decode errors both are
        raise ConfigError(f"--account is not JSON: {exc}") from None
    if not isinstance(account, dict):
        raise ConfigError("--account must be a JSON object")
    if type(account.get("blacklisted", False)) is not bool:  # "false" was read as true (found by a probe)
        raise ConfigError(f"--account: blacklisted must be true or false, not {account['blacklisted']!r}")
    if args.bio is not None and not args.profile:
        raise ConfigError("--bio is a profile's: give --profile too")
    if args.blacklisted:
        account["blacklisted"] = True
    report = explain(_engine(_settings(args)), args.text, account, profile=args.profile, bio=args.bio)
    if args.json:
        options = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
        _stdout().write(orjson.dumps(report, default=jsonio.default, option=options))
    else:
        print(render(report))
    return 0


def _utf8_argument(option: str, value: str | None) -> None:
    """An argument that is not UTF-8 reaches Python with lone surrogates,
    which no encoder takes: ``explain $'\\xff赌博'`` stopped with an
    internal error (found by a hostile-input probe)."""
    if value is None:
        return
    try:
        os.fsencode(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{option} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at {exc.start})") from None


def cmd_run(args: argparse.Namespace) -> int:
    from .stream.supervisor import start

    return start(_settings(args))


def cmd_rescan(args: argparse.Namespace) -> int:
    from .rescan import Previous, rescan_files

    settings = _settings(args)
    engine = _engine(settings)
    if args.topic:
        from .stream.clients import BrokerFailure
        from .stream.rescan_topic import rescan_topic, start_from

        try:
            summary = rescan_topic(settings, engine, args.topic, start_from(args.from_offset, args.from_timestamp),
                                   args.previous_topic or None, args.checkpoint)
        except BrokerFailure as exc:
            raise BrokerError(f"rescan of {args.topic} on {settings.bootstrap_servers}: {exc} "
                              "(run it again with the same --checkpoint to resume)") from None
    else:
        if args.from_offset is not None or args.from_timestamp or args.previous_topic:
            raise ConfigError("--from-offset, --from-timestamp and --previous-topic need --topic")
        previous = Previous()
        previous.load_files(args.previous)
        if not args.previous:  # the flag is easily forgotten, and then every earlier recall goes out again
            print("screener rescan: no --previous: every post counts as published under pass, so each one "
                  "flagged or recalled now gets an event [warning]", file=sys.stderr)
        try:
            summary = rescan_files(settings, engine, args.files, previous, _stdout(), args.checkpoint)
        except KeyboardInterrupt as exc:
            again = " (run it again with the same --checkpoint to resume)" if args.checkpoint else ""
            print(f"screener rescan: interrupted{again}", file=sys.stderr)
            return _interrupted(exc)
    print(summary.line(engine), file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from . import audit

    # Records are selected as they are read: a 300 MB audit log took 1.25 GB
    # to print one record when all were held first (found by a hostile-input probe).
    found = audit.select(_audit_records(args), post=args.post, account=args.account)
    found.sort(key=lambda r: str(r.get("at") or ""))  # a number among the ISO times stopped the sort
    if args.json:
        _stdout().write(b"".join(jsonio.dumps(r, newline=True) for r in found))
    else:
        print(audit.render(found) if found else f"no audit records for {'post ' + args.post if args.post else 'account ' + args.account}")
    return 0 if found else 1


def _audit_records(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    from . import audit

    if args.audit_files:
        for path in args.audit_files:
            try:
                yield from audit.read_jsonl(path)
            except OSError as exc:
                raise InputError(f"cannot read --audit {path}: {exc.strerror or exc}") from None
        return
    from .stream.clients import BrokerFailure
    from .stream.rescan_topic import read_topic_records

    settings = _settings(args)
    topic = args.audit_topic or settings.audit_topic
    try:
        yield from read_topic_records(settings, topic)
    except BrokerFailure as exc:
        raise BrokerError(f"reading {topic} from {settings.bootstrap_servers}: {exc}") from None


def _fold_cache() -> "Cache":
    """The cache for ``lexicon check``'s fold table: the cache_dir setting
    (environment, SCREENER_CONFIG), or none if the settings do not load
    (checking a lexicon needs no other setting, so it does not fail on them)."""
    from .cache import Cache

    try:
        return Cache.from_setting(load_settings({}).cache_dir)
    except ConfigError:
        return Cache(None)


def cmd_lexicon_check(args: argparse.Namespace) -> int:
    from .lexicon.pinyin import MAX_SPELLINGS
    from .policy import load_policy

    lexicons = load_lexicons(args.directory, _fold_cache())  # LexiconError (and PolicyError) → main prints problems
    policy = load_policy(args.policy, lexicons.categories) if args.policy not in (None, "", "none") else None
    warnings = [*lexicons.warnings, *(policy.warnings if policy else ())]
    for warning in warnings:
        print(f"{warning} [warning]", file=sys.stderr)
    for note in lexicons.notes:  # not a problem: --strict does not fail on them
        print(f"{note} [note]", file=sys.stderr)
    print(f"OK: {len(lexicons.categories)} categories, {lexicons.term_count} terms, "
          f"{len(lexicons.patterns)} patterns, {len(lexicons.warnings)} warnings, version {lexicons.version}")
    for line in lexicons.lookalikes.lines() if lexicons.lookalikes else ():
        print(f"    {line}")
    pinyin = lexicons.pinyin
    if pinyin is not None:
        print(f"OK: pinyin: {len(pinyin)} spellings of {pinyin.terms} entries, "
              f"{len(pinyin.capped)} capped at {MAX_SPELLINGS}")
    if policy is not None:
        print(f"OK: policy {policy.path}, {sum(map(len, policy.rules.values()))} rules, "
              f"{len(policy.warnings)} warnings, version {policy.version}")
    return 1 if args.strict and warnings else 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, met as Ctrl-C is: ``scan`` ended by ``kill`` or a container
    stop printed no summary and lost what it had counted (found by a
    hostile-input probe); it now stops as on Ctrl-C, with exit 143."""


def _terminate(_signum: int, _frame: object) -> None:
    raise Terminated()


def _interrupted(exc: BaseException) -> int:
    """The exit status of a run stopped by a signal: 128 + its number."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    ClosedStderr.install()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's usage, not the top level's (scan --dead-leter printed `screener {scan,...}`)
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    handler = {"scan": cmd_scan, "explain": cmd_explain, "run": cmd_run, "lexicon": cmd_lexicon_check,
               "audit": cmd_audit, "rescan": cmd_rescan}[args.command]
    installed = args.command != "run" and threading.current_thread() is threading.main_thread()
    if installed:  # the worker has its own: it finishes the batch
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return handler(args)
    except KeyboardInterrupt as exc:
        print("screener: interrupted", file=sys.stderr)
        return _interrupted(exc)
    except BrokenPipeError:  # e.g. `screener scan | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - ours or the user's: errors.report says which, in one line
        return report(exc, args.command)
    finally:
        if installed:  # main() may be called again in one process (the tests do)
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of a closed
    pipe does not print an 'Exception ignored' message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
