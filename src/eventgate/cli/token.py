"""`eventgate token`: tenant credentials for the reference engine. A token for one tenant,
signed with the newest of EVENTGATE_TOKEN_KEYS, or a new key to add to that list."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from uuid import UUID

from eventgate.engine.identity import KEYS_ENV, TokenKeys, issue
from eventgate.errors import ConfigError

_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def configure_token(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant", type=_tenant, help="the tenant (a UUID of the tenants table) "
                   "the token acts for")
    p.add_argument("--ttl", type=_ttl, default=3600, metavar="DURATION",
                   help="how long the token is valid: 90s, 30m, 8h, 7d [default 1h]")
    p.add_argument("--subject", default="eventgate", help="who holds the token, for the "
                   "engine's logs [default eventgate]")
    p.add_argument("--new-key", action="store_true", help="print a new key (id:secret) to "
                   f"put first in {KEYS_ENV}, instead of a token")


def _tenant(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UUID") from None


def _ttl(text: str) -> int:
    found = _DURATION.match(text.strip())
    if not found or int(found[1]) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 8h "
                                         "or 7d")
    return int(found[1]) * _SECONDS[found[2]]


def keys_from_environment() -> TokenKeys:
    """EVENTGATE_TOKEN_KEYS, or the file EVENTGATE_TOKEN_KEYS_FILE names (a secret store's
    mount); a ConfigError saying how to set them otherwise."""
    text = os.environ.get(KEYS_ENV)
    source = KEYS_ENV
    path = os.environ.get(f"{KEYS_ENV}_FILE")
    if not text and path:
        try:
            text, source = Path(path).read_text(encoding="utf-8"), f"{KEYS_ENV}_FILE ({path})"
        except OSError as exc:
            raise ConfigError(f"{KEYS_ENV}_FILE: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"no token keys: set {KEYS_ENV} (id:secret,...) or {KEYS_ENV}_FILE "
                          "to those the engine verifies with; `eventgate token --new-key` "
                          "makes one")
    return TokenKeys.parse(text, source)


def cmd_token(args: argparse.Namespace) -> int:
    """Print a tenant's token for the reference engine (Authorization: Bearer <token>),
    signed with the first key of EVENTGATE_TOKEN_KEYS; --new-key prints a new key instead.
    Rotation: put the new key first on every engine, issue with it, drop the old key once the
    tokens it signed have expired."""
    if args.new_key:
        print(TokenKeys.generate().text())
        return 0
    if args.tenant is None:
        raise ConfigError("eventgate token needs --tenant <uuid> (or --new-key)")
    print(issue(keys_from_environment(), args.tenant, ttl_s=args.ttl, subject=args.subject))
    return 0
