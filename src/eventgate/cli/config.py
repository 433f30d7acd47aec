"""The `eventgate config` verb: the settings as the other verbs resolve them."""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from eventgate import dsn as dsn_mod
from eventgate import operator_env
from eventgate.cli.common import given_dsn
from eventgate.cli.console import console


def cmd_config(args: argparse.Namespace) -> int:
    """Print the resolved settings and where each came from (a flag, the environment, the env
    file, or the default), secrets masked: the rule is flag > environment > env file
    (.env.migration, --env-file) > default. Changes nothing."""
    table = Table(title="settings (flag > environment > env file > default)",
                  title_justify="left")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    dsn = given_dsn(args)
    table.add_row("target database", escape(dsn_mod.describe(dsn) if dsn else "none given"),
                  "--dsn" if args.dsn else "environment / env file" if dsn else "")
    table.add_row("MIGRATION_MODE", operator_env.migration_mode(),
                  operator_env.source("MIGRATION_MODE"))
    table.add_row("DRY_RUN", str(operator_env.flag("DRY_RUN")).lower(),
                  operator_env.source("DRY_RUN"))
    table.add_row("PGCONNECT_TIMEOUT", f"{operator_env.connect_timeout()} s",
                  operator_env.source("PGCONNECT_TIMEOUT"))
    for name, value, source in operator_env.resolved():
        if name not in ("MIGRATION_MODE", "DRY_RUN", "PGCONNECT_TIMEOUT"):
            table.add_row(name, escape(value), escape(source))
    console.print(table)
    loaded = operator_env.loaded()
    console.print(f"env file: {escape(str(loaded.path)) if loaded.path else 'none'}"
                  + (f" ({len(loaded.names)} settings taken from it)" if loaded.path else ""))
    return 0
