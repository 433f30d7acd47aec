"""The `eventgate` command: the parser built from the verb modules, and the dispatch with the
one way a failure ends (`FAILED: <message>`, exit 1; Ctrl-C exit 130)."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from typing import NamedTuple

import psycopg
from rich.markup import escape

from eventgate import __version__, operator_env
from eventgate import dsn as dsn_mod
from eventgate.cli.backup import cmd_backup, cmd_restore, configure_backup, configure_restore
from eventgate.cli.cluster import cmd_cluster, configure_cluster
from eventgate.cli.common import Configure, Handler
from eventgate.cli.config import cmd_config
from eventgate.cli.console import console
from eventgate.cli.docs import cmd_docs, configure_docs
from eventgate.cli.gate import cmd_gate, configure_gate
from eventgate.cli.migrate import (
    cmd_migrate,
    cmd_rollback,
    cmd_status,
    configure_migrate,
    configure_rollback,
)
from eventgate.cli.preflight import cmd_preflight, configure_preflight
from eventgate.cli.rehearse import cmd_rehearse, configure_rehearse
from eventgate.cli.report import cmd_report, configure_report
from eventgate.cli.seed import cmd_seed, configure_seed
from eventgate.cli.selftest import cmd_selftest, configure_selftest
from eventgate.cli.serve import cmd_serve, configure_serve
from eventgate.errors import EventgateError


class Verb(NamedTuple):
    """One verb: its command function, whose docstring is its --help, and its own options
    (None: only the common ones)."""

    name: str
    handler: Handler
    configure: Configure | None


# In the order `eventgate --help` lists them.
VERBS = (
    Verb("migrate", cmd_migrate, configure_migrate),
    Verb("rollback", cmd_rollback, configure_rollback),
    Verb("preflight", cmd_preflight, configure_preflight),
    Verb("backup", cmd_backup, configure_backup),
    Verb("restore", cmd_restore, configure_restore),
    Verb("rehearse", cmd_rehearse, configure_rehearse),
    Verb("status", cmd_status, None),
    Verb("seed", cmd_seed, configure_seed),
    Verb("cluster", cmd_cluster, configure_cluster),
    Verb("gate", cmd_gate, configure_gate),
    Verb("serve", cmd_serve, configure_serve),
    Verb("report", cmd_report, configure_report),
    Verb("selftest", cmd_selftest, configure_selftest),
    Verb("docs", cmd_docs, configure_docs),
    Verb("config", cmd_config, None),
)


def _add_verb(sub: argparse._SubParsersAction[argparse.ArgumentParser], verb: Verb) -> None:
    """The verb's parser: help from the handler's docstring (its first clause in the overview),
    the options every verb takes, then the verb's own."""
    doc = " ".join((verb.handler.__doc__ or "").split())
    p = sub.add_parser(verb.name, help=doc.split(";")[0].split(". ")[0], description=doc)
    p.set_defaults(handler=verb.handler)
    p.add_argument("--dsn", help="target database [env EVENTGATE_DSN, DATABASE_URL, the "
                   "guide's DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD, or libpq's PG*]")
    p.add_argument("--env-file", metavar="FILE", help="settings file read with python-dotenv "
                   "for what the environment does not set [env EVENTGATE_ENV_FILE; default "
                   ".env.migration when present]")
    p.add_argument("--bundle", help="migration bundle directory [env EVENTGATE_BUNDLE; "
                   "default: the reference FASE 0 bundle]")
    p.add_argument("--traceback", action="store_true", help="show the full traceback of "
                   "a failure")
    if verb.configure is not None:
        verb.configure(p)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventgate", description=(
        "Migration acceptance suite for the Event Management Engine's FASE 0 transformation."))
    parser.add_argument("--version", action="version", version=f"eventgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        _add_verb(sub, verb)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM's default action skips finally blocks; as SystemExit, a cluster this process
    # started is still stopped and deleted.
    signal.signal(signal.SIGTERM, _terminate)
    args = _parser().parse_args(argv)
    try:
        operator_env.load_env_file(args.env_file)
        operator_env.password_from_guide()
        result: int = args.handler(args)
        return result
    except (EventgateError, psycopg.Error) as exc:
        if args.traceback:
            traceback.print_exc()
        console.print(f"[red]FAILED:[/] {escape(dsn_mod.redact(str(exc)).strip())}",
                      soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
