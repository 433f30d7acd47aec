"""Parsing, validating and printing database connection strings without leaking passwords."""

from __future__ import annotations

import re

import psycopg.conninfo

from eventgate.errors import ConfigError

# Up to the last '@' of the authority: a password may itself contain '@'. The scheme starts at
# a word boundary and is bounded, so a long run of letters (an HTTP body) is one linear scan, not
# a backtrack from every position.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]{0,40}://[^:/@\s]*:)(?P<pw>[^\s/]*)(?=@[^@/\s]*(?:[/?\s]|$))",
    re.I)
_KW_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)


def redact(text: str) -> str:
    """Hide every password in a DSN (URL or key=value form), or in any text that quotes one."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "****", text)
    return _KW_PASSWORD.sub(lambda m: m.group("head") + "****", text)


def parse(dsn: str) -> dict[str, str]:
    """Split a DSN into libpq parameters, or raise a ConfigError that never shows the password."""
    if not dsn.strip():
        raise ConfigError("the DSN is empty: pass --dsn 'postgresql://user@host:5432/dbname'")
    try:
        return psycopg.conninfo.conninfo_to_dict(dsn)  # type: ignore[return-value]
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"the DSN {redact(dsn)!r} is malformed ({redact(str(exc)).strip()}); "
            "expected 'postgresql://user:password@host:5432/dbname' "
            "or 'host=... port=... dbname=... user=...'"
        ) from exc


def with_dbname(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    params = parse(dsn)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)


def describe(dsn: str) -> str:
    """A short, password-free name for the target: user@host:port/dbname."""
    params = parse(dsn)
    host = params.get("host") or params.get("hostaddr") or "local socket"
    port = params.get("port", "5432")
    user = params.get("user", "")
    dbname = params.get("dbname", "")
    return f"{user + '@' if user else ''}{host}:{port}/{dbname}"
