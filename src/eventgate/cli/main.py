"""The `eventgate` command: the parser built from the verb modules, and the dispatch with the
one way a failure ends (`FAILED: <message>`, exit 1; Ctrl-C exit 130)."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback
from typing import NamedTuple

import psycopg
from rich.markup import escape

from eventgate import __version__, operator_env
from eventgate import dsn as dsn_mod
from eventgate.cli.common import Configure, Handler
from eventgate.cli.console import console
from eventgate.errors import EventgateError


class Verb(NamedTuple):
    """One verb: the module of its group, its command function there (whose docstring is its
    --help) and the function adding its own options (None: only the common ones)."""

    name: str
    module: str
    handler: str
    configure: str | None

    def load(self) -> tuple[Handler, Configure | None]:
        # Imported when asked for: a verb group pulls in its own stack (pytest for the gate,
        # the web stack for serve), and every command would pay for all of them (0.7 s per
        # start of the engine, which the suites start dozens of times).
        module = importlib.import_module(f"eventgate.cli.{self.module}")
        handler: Handler = getattr(module, self.handler)
        configure: Configure | None = (getattr(module, self.configure) if self.configure
                                       else None)
        return handler, configure


# In the order `eventgate --help` lists them.
VERBS = (
    Verb("migrate", "migrate", "cmd_migrate", "configure_migrate"),
    Verb("rollback", "migrate", "cmd_rollback", "configure_rollback"),
    Verb("preflight", "preflight", "cmd_preflight", "configure_preflight"),
    Verb("backup", "backup", "cmd_backup", "configure_backup"),
    Verb("restore", "backup", "cmd_restore", "configure_restore"),
    Verb("rehearse", "rehearse", "cmd_rehearse", "configure_rehearse"),
    Verb("status", "migrate", "cmd_status", None),
    Verb("seed", "seed", "cmd_seed", "configure_seed"),
    Verb("cluster", "cluster", "cmd_cluster", "configure_cluster"),
    Verb("gate", "gate", "cmd_gate", "configure_gate"),
    Verb("serve", "serve", "cmd_serve", "configure_serve"),
    Verb("token", "token", "cmd_token", "configure_token"),
    Verb("watch", "watch", "cmd_watch", "configure_watch"),
    Verb("report", "report", "cmd_report", "configure_report"),
    Verb("selftest", "selftest", "cmd_selftest", "configure_selftest"),
    Verb("docs", "docs", "cmd_docs", "configure_docs"),
    Verb("config", "config", "cmd_config", None),
)


def _add_verb(sub: argparse._SubParsersAction[argparse.ArgumentParser], verb: Verb) -> None:
    """The verb's parser: help from the handler's docstring (its first clause in the overview),
    the options every verb takes, then the verb's own."""
    handler, configure = verb.load()
    doc = " ".join((handler.__doc__ or "").split())
    p = sub.add_parser(verb.name, help=doc.split(";")[0].split(". ")[0], description=doc)
    p.set_defaults(handler=handler)
    p.add_argument("--dsn", help="target database [env EVENTGATE_DSN, DATABASE_URL, the "
                   "guide's DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD, or libpq's PG*]")
    p.add_argument("--env-file", metavar="FILE", help="settings file read with python-dotenv "
                   "for what the environment does not set [env EVENTGATE_ENV_FILE; default "
                   ".env.migration when present]")
    p.add_argument("--bundle", help="migration bundle directory [env EVENTGATE_BUNDLE; "
                   "default: the reference FASE 0 bundle]")
    p.add_argument("--traceback", action="store_true", help="show the full traceback of "
                   "a failure")
    if configure is not None:
        configure(p)


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    """The whole parser for the overview, an unknown verb or none; only the named verb's
    otherwise (its --help and errors are the same either way)."""
    parser = argparse.ArgumentParser(prog="eventgate", description=(
        "Migration acceptance suite for the Event Management Engine's FASE 0 transformation."))
    parser.add_argument("--version", action="version", version=f"eventgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = [v for v in VERBS if argv[:1] == [v.name]]
    for verb in named or VERBS:
        _add_verb(sub, verb)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM's default action skips finally blocks; as SystemExit, a cluster this process
    # started is still stopped and deleted.
    signal.signal(signal.SIGTERM, _terminate)
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(argv).parse_args(argv)
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
