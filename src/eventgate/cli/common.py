"""What every verb reads from its command line the same way: the target database (--dsn or
EVENTGATE_DSN), the bundle (--bundle or EVENTGATE_BUNDLE), and the session on that database."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import psycopg
from rich.markup import escape

from eventgate import dsn as dsn_mod
from eventgate import operator_env
from eventgate.bundle import Bundle, load_bundle
from eventgate.cli.console import console
from eventgate.errors import ConfigError
from eventgate.migrate.notify import WebhookNotifier, notifier_from_env
from eventgate.pg.connect import connect

# A verb's command function: the parsed arguments in, the exit code out.
Handler = Callable[[argparse.Namespace], int]
# What a verb module adds to its verb's parser, after main's common options.
Configure = Callable[[argparse.ArgumentParser], None]

APPLICATION_NAME = "eventgate migrate"  # what pg_stat_activity shows for the CLI's sessions
DEFAULT_BACKUP_DIR = "backups"


def given_dsn(args: argparse.Namespace) -> str | None:
    """--dsn, else the environment (or env file) as operator_env.guide_dsn reads it, checked to
    parse; None when nothing is given."""
    value: str | None = args.dsn or operator_env.guide_dsn()
    if value:
        dsn_mod.parse(value)
    return value or None


def require_dsn(args: argparse.Namespace) -> str:
    """The target database of a verb that needs one, or a ConfigError saying how to give it."""
    value = given_dsn(args)
    if not value:
        raise ConfigError("no database given: pass --dsn 'postgresql://user@host:5432/dbname', "
                          "set EVENTGATE_DSN, or the guide's DB_HOST, DB_PORT, DB_NAME, DB_USER "
                          "and DB_PASSWORD (in the environment or .env.migration); eventgate "
                          "cluster starts a rehearsal database and prints its DSN")
    return value


def given_bundle(args: argparse.Namespace) -> Bundle:
    """--bundle, EVENTGATE_BUNDLE, or the reference bundle."""
    return load_bundle(args.bundle or os.environ.get("EVENTGATE_BUNDLE"))


def given_backup_dir(args: argparse.Namespace) -> Path:
    """--backup-dir, EVENTGATE_BACKUP_DIR, or backups: where backup writes, restore reads and
    preflight looks for a recent verified backup."""
    return Path(getattr(args, "backup_dir", None) or os.environ.get("EVENTGATE_BACKUP_DIR")
                or DEFAULT_BACKUP_DIR)


def connect_target(dsn: str) -> psycopg.Connection:
    """An autocommit session; "could not connect to <target>: ..." when out of reach."""
    return connect(dsn, application_name=APPLICATION_NAME)


def notifier() -> WebhookNotifier | None:
    """The webhook and email channels from the environment; a malformed setting turns
    notifications off with a warning, never stops a migration, a backup or an emergency
    rollback."""
    try:
        return notifier_from_env()
    except ConfigError as exc:
        warn(f"notifications off: {exc}")
        return None


def warn(text: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)
