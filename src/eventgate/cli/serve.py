"""`eventgate serve`: the reference Event Management Engine (or a wrapped one) over HTTP
against a migrated database."""

from __future__ import annotations

import argparse
import importlib
import os

from eventgate import dsn as dsn_mod
from eventgate.cli.common import given_bundle, require_dsn
from eventgate.cli.console import console


def configure_serve(p: argparse.ArgumentParser) -> None:
    # HOST and PORT: what a container sets (deploy/Dockerfile: 0.0.0.0 and the guide's 3000).
    p.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1",
                   help="address to listen on [env HOST; default 127.0.0.1]")
    p.add_argument("--port", type=_port, default=os.environ.get("PORT") or "8000",
                   help="port to listen on [env PORT; default 8000]")
    p.add_argument("--admin-token", help="bearer token for POST /api/plugins/reload "
                   "[env EVENTGATE_ADMIN_TOKEN]")
    p.add_argument("--log-level", default="warning")
    p.add_argument("--app-factory", metavar="MODULE:FUNCTION",
                   help="serve another factory taking EngineSettings (default: the "
                   "reference engine)")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number")
    return int(text)


def _row_security_warning(dsn: str) -> str | None:
    """Whether the engine's login escapes the tenant tables' row-level security (a superuser,
    BYPASSRLS, or the owner of an unforced table): then only the engine's own filters keep
    tenants apart. A database that does not answer yet is the engine's /health's business."""
    import psycopg

    from eventgate.engine import store

    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            login = store.escapes_row_security(conn)
    except psycopg.Error:
        return None
    if login is None:
        return None
    return (f"the engine logs in as {login}, which row-level security does not hold (a "
            "superuser, BYPASSRLS or the tables' owner): a query that forgets its tenant "
            "filter would read every tenant; log in as a member of event_engine "
            "(docs/tenant-isolation.md)")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the reference Event Management Engine (events API, plugins, /health, /metrics)
    against a migrated database (--dsn, EVENTGATE_DSN or DATABASE_URL, as the guide's compose
    files give it), as a role held to the tables' row-level security (a member of the bundle's
    engine role, not their owner); tenants authenticate with tokens signed by
    EVENTGATE_TOKEN_KEYS (eventgate token); the admin token enables POST
    /api/plugins/reload."""
    # Imported here: the web stack is heavy and only this verb needs it.
    import uvicorn

    from eventgate.cli.token import keys_from_environment
    from eventgate.engine.app import EngineSettings, create_app
    from eventgate.errors import ConfigError

    dsn = require_dsn(args)
    try:
        keys = keys_from_environment()
        credentials = f"tenant tokens signed by key {', '.join(keys.ids)}"
    except ConfigError as exc:
        if "no token keys" not in str(exc):
            raise
        keys, credentials = None, ("[yellow]no EVENTGATE_TOKEN_KEYS: every tenant request is "
                                   "refused (401); `eventgate token --new-key` makes a key[/]")
    settings = EngineSettings(dsn=dsn, admin_token=args.admin_token
                              or os.environ.get("EVENTGATE_ADMIN_TOKEN"),
                              final_migration=given_bundle(args).final_migration,
                              token_keys=keys)
    factory = create_app
    if args.app_factory:
        # A wrapped engine (e.g. one with a defect injected, for the sabotage proofs).
        module, _, name = args.app_factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
    console.print(f"serving the engine on http://{args.host}:{args.port} against "
                  f"{dsn_mod.describe(dsn)}; {credentials}", soft_wrap=True)
    warning = _row_security_warning(dsn)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    uvicorn.run(factory(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0
