"""`eventgate cluster`: a throwaway PostgreSQL with a seeded legacy database to rehearse
migrations and rollbacks on, running until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal

from eventgate.cli.common import connect_target, given_bundle
from eventgate.cli.console import console
from eventgate.cli.seed import configure_seed_options, seed_into
from eventgate.pg import provision


def configure_cluster(p: argparse.ArgumentParser) -> None:
    configure_seed_options(p)
    p.add_argument("--pg-bindir", help="directory holding initdb and postgres")


def cmd_cluster(args: argparse.Namespace) -> int:
    """Start a throwaway PostgreSQL with a seeded legacy wedding database for rehearsing
    migrations and rollbacks; prints its DSN and runs until Ctrl-C, then deletes everything."""
    bundle = given_bundle(args)
    with provision(None, args.pg_bindir) as server:
        with server.connect() as conn:
            conn.execute("CREATE DATABASE wedding_legacy")
        dsn = server.dsn_for("wedding_legacy")
        with connect_target(dsn) as conn:
            seed_into(conn, args, bundle)
        console.print(f"{server.describe()}\n\n  export EVENTGATE_DSN='{dsn}'\n\n"
                      "then: eventgate migrate --dry-run | --execute | --validate, "
                      "eventgate status, eventgate rollback --to base\nCtrl-C stops and "
                      "removes the cluster.", soft_wrap=True)
        # Blocked, then waited for: Ctrl-C and SIGTERM both end here and clean up below.
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        signal.sigwait(stop)
    return 0
