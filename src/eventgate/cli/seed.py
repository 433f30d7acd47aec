"""`eventgate seed`, and the seeding options it shares with `eventgate cluster`: a volume
(--scale) or a shape (--profile), single numbers overriding either, and the load with a
progress bar."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import psycopg
from rich.progress import Progress

from eventgate.bundle import Bundle
from eventgate.cli.common import connect_target, given_bundle, require_dsn
from eventgate.cli.console import console
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy, load
from eventgate.seed.profiles import PROFILES, profile
from eventgate.seed.scales import SCALES, scale


class LineKeepingHelp(argparse.HelpFormatter):
    """Wraps option help as usual but keeps its line breaks, so each profile gets its own
    line in --help."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        lines: list[str] = []
        for line in text.splitlines():
            lines += super()._split_lines(line, width)
        return lines


def configure_seed_options(p: argparse.ArgumentParser) -> None:
    p.formatter_class = LineKeepingHelp
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--scale", choices=sorted(SCALES), help="a named volume (default small)")
    shape.add_argument("--profile", choices=list(PROFILES), metavar="NAME",
                       help="a named data shape instead of a volume:\n" + "\n".join(
                           f"{named.name}: {named.description}" for named in PROFILES.values()))
    p.add_argument("--weddings", type=int, help="number of weddings")
    p.add_argument("--guests-per-wedding", type=int, help="average invitations per wedding")
    p.add_argument("--tenants", type=int, help="number of tenants (default: weddings/20, "
                   "3 to 1000)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42); the same "
                   "seed and options always give the same rows")


def configure_seed(p: argparse.ArgumentParser) -> None:
    configure_seed_options(p)
    p.add_argument("--no-schema", action="store_true",
                   help="load into legacy tables that already exist (they must be empty)")


def plan_from(args: argparse.Namespace) -> SeedPlan:
    """The profile's or the scale's plan, with the numbers given on the command line."""
    base = profile(args.profile) if getattr(args, "profile", None) else scale(
        args.scale or "small")
    given = {"weddings": args.weddings, "guests_per_wedding": args.guests_per_wedding,
             "tenants": args.tenants}
    return replace(base, seed=args.seed, **{k: v for k, v in given.items() if v is not None})


def seed_into(conn: psycopg.Connection, args: argparse.Namespace, bundle: Bundle) -> None:
    plan = plan_from(args)
    shape = f", profile {args.profile}" if getattr(args, "profile", None) else ""
    console.print(f"seeding {plan.weddings} weddings, ~{plan.guests_per_wedding} guests each, "
                  f"{plan.tenant_count} tenants{shape}, seed {plan.seed}")
    started = time.monotonic()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("COPY", total=None)

        def tick(table: str, rows: int) -> None:
            bar.update(task, advance=rows, description=f"COPY {table}")

        counts = (load(conn, plan, tick, bundle=bundle) if getattr(args, "no_schema", False)
                  else build_legacy(conn, bundle, plan, tick))
    console.print(f"[green]seeded[/] {counts.tenants} tenants, {counts.weddings} weddings, "
                  f"{counts.invitations} invitations, {counts.sections} sections in "
                  f"{time.monotonic() - started:.2f} s")


def cmd_seed(args: argparse.Namespace) -> int:
    """Create the legacy wedding schema in an empty database and load deterministic data
    with COPY (the same --seed always gives the same rows): a volume (--scale) or a named
    data shape (--profile)."""
    with connect_target(require_dsn(args)) as conn:
        seed_into(conn, args, given_bundle(args))
    return 0
