"""Command line: ``screener scan | explain | lexicon check``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import orjson

from . import __version__
from .errors import ConfigError, LexiconError, MatcherUnavailable
from .lexicon import load_lexicons
from .pipeline import Screener
from .settings import Settings, load_settings


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lexicons", metavar="DIR", help="lexicon directory (default: the shipped set)")
    parser.add_argument("--matcher", choices=("auto", "aho", "hyperscan"), help="matcher backend (default auto)")
    parser.add_argument("--config", metavar="TOML", help="settings file (also SCREENER_CONFIG)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="screener", description=__doc__)
    parser.add_argument("--version", action="version", version=f"screener {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    scan = sub.add_parser("scan", help="screen JSONL posts from files or stdin; events on stdout")
    _common(scan)
    scan.add_argument("files", nargs="*", metavar="FILE", help="JSONL files ('-' or none: stdin)")
    scan.add_argument("--dead-letter", metavar="PATH", help="dead-letter JSONL file ('-': stderr, the default)")
    scan.add_argument("--max-post-bytes", type=int, metavar="N", help="records larger than N bytes are dead-lettered")
    scan.add_argument("--batch-records", type=int, metavar="N", help="posts per screening call")
    scan.add_argument("--progress", choices=("auto", "on", "off"), help="progress bar on stderr")

    exp = sub.add_parser("explain", help="show normalisation, candidate hits and decisions for TEXT")
    _common(exp)
    exp.add_argument("text", metavar="TEXT")
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
    run.add_argument("--metrics-port", type=int, metavar="PORT", help="Prometheus /metrics, /healthz, /readyz (default 9108; 0: off)")
    run.add_argument("--metrics-host", metavar="ADDR", help="address to serve metrics on (default 0.0.0.0)")
    run.add_argument("--workers", type=int, metavar="N", help="worker processes in the group (default 1)")
    run.add_argument("--max-post-bytes", type=int, metavar="N", help="larger records are dead-lettered")
    run.add_argument("--kafka-option", action="append", metavar="KEY=VALUE",
                     help="kafka-python option for consumer and producer (repeatable), e.g. security_protocol=SASL_SSL")

    lex = sub.add_parser("lexicon", help="lexicon tools")
    lex_sub = lex.add_subparsers(dest="lexicon_command", required=True)
    check = lex_sub.add_parser("check", help="validate a lexicon directory; errors and warnings")
    check.add_argument("directory", metavar="DIR")
    check.add_argument("--strict", action="store_true", help="warnings fail too")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    cli = {k: v for k, v in vars(args).items() if k not in ("command", "files", "text", "json", "config")}
    return load_settings(cli, config_file=args.config)


def _screener(settings: Settings) -> Screener:
    return Screener(load_lexicons(settings.lexicons), settings.matcher)


def cmd_scan(args: argparse.Namespace) -> int:
    from .scan import run_scan

    settings = _settings(args)
    screener = _screener(settings)
    print(f"screener: matcher {screener.matcher_name} ({settings.matcher}), lexicon {settings.lexicons} "
          f"version {screener.version}, {screener.lexicons.term_count} terms", file=sys.stderr)
    summary = run_scan(settings, screener, args.files, sys.stdout.buffer)
    print(summary.line(screener.matcher_name, screener.version), file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, render

    report = explain(_screener(_settings(args)), args.text)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    else:
        print(render(report))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .stream.run import run

    return run(_settings(args))


def cmd_lexicon_check(args: argparse.Namespace) -> int:
    lexicons = load_lexicons(args.directory)  # LexiconError → main prints problems
    for warning in lexicons.warnings:
        print(f"{warning} [warning]", file=sys.stderr)
    print(f"OK: {len(lexicons.categories)} categories, {lexicons.term_count} terms, "
          f"{len(lexicons.patterns)} patterns, {len(lexicons.warnings)} warnings, version {lexicons.version}")
    return 1 if args.strict and lexicons.warnings else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"scan": cmd_scan, "explain": cmd_explain, "run": cmd_run, "lexicon": cmd_lexicon_check}[args.command]
    try:
        return handler(args)
    except LexiconError as exc:
        for problem in exc.problems:
            print(f"{problem} [error]", file=sys.stderr)
        print(f"lexicon rejected: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 2
    except (ConfigError, MatcherUnavailable) as exc:
        print(f"screener: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `screener scan | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
