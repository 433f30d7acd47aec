"""environment.properties: what was tested, with which versions (PostgreSQL, the migrations
applied or bundled, the engine, eventgate, Python), and with which data, none of it holding a
password."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import psycopg

import eventgate
from eventgate import dsn as dsn_mod
from eventgate import http_client
from eventgate.bundle import load_bundle
from eventgate.errors import EventgateError
from eventgate.migrate import ledger
from eventgate.pg.connect import connect
from eventgate.pytest_plugin.settings import Settings
from eventgate.reports.redact import redact_url


@dataclass(frozen=True)
class Target:
    """What the plugin found at session start: where PostgreSQL comes from."""

    kind: str  # "embedded", "external DSN", "testcontainers" or "none"
    description: str  # password-free
    server_version: str | None


def _escape(text: str, key: bool = False) -> str:
    """java.util.Properties escaping, in ASCII: Allure 2 reads the file as ISO-8859-1, Allure 3
    as UTF-8, and both decode \\uXXXX."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    out = out.replace("\t", "\\t")
    if key:  # in a value these are plain characters
        for char in "=: #!":
            out = out.replace(char, "\\" + char)
    elif out.startswith(" "):
        out = "\\" + out
    chars = []
    for char in out:
        code = ord(char)
        if 0x20 <= code < 0x7F:
            chars.append(char)
        elif code <= 0xFFFF:
            chars.append(f"\\u{code:04x}")
        else:  # outside the BMP: a UTF-16 surrogate pair, as Java writes it
            code -= 0x10000
            chars.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(chars)


def format_properties(properties: Mapping[str, str]) -> str:
    return "".join(f"{_escape(k, key=True)}={_escape(dsn_mod.redact(v))}\n"
                   for k, v in properties.items())


def _ledger_rows(dsn: str) -> list[tuple[int, str, str]]:
    """The target's ledger, read in a read-only session that gives up within seconds."""
    with connect(dsn, read_only=True, statement_timeout_ms=5000, connect_timeout=5,
                 application_name="eventgate report environment") as conn:
        if not ledger.exists(conn):
            return []
        rows = conn.execute(f"SELECT version, name, sha256 FROM {ledger.SCHEMA}.{ledger.TABLE} "
                            "ORDER BY version").fetchall()
    return [(int(r[0]), str(r[1]), str(r[2]).strip()) for r in rows]


def _first_line(exc: BaseException) -> str:
    lines = dsn_mod.redact(str(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _migrations(settings: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    source = ""
    if settings.dsn:
        try:  # EventgateError: the server was out of reach (pg.connect's wording)
            rows = _ledger_rows(settings.dsn)
        except (psycopg.Error, EventgateError) as exc:
            source = f"bundle (the target's ledger could not be read: {_first_line(exc)})"
        else:
            if rows:
                found = {f"migration.{v:03d}": f"{name} sha256={sha}" for v, name, sha in rows}
                source = "ledger of the target database"
            else:
                source = "bundle (the target database has no migration ledger)"
    if not found:
        try:
            bundle = load_bundle(settings.bundle)
        except EventgateError as exc:
            return {"migrations.source": f"none: the bundle cannot be read ({_first_line(exc)})"}
        found = {f"migration.{m.version:03d}": f"{m.name} sha256={m.sha256}"
                 for m in bundle.migrations}
        source = source or "bundle (the embedded target is migrated from it every session)"
    return {"migrations.source": source, **found}


def _engine(settings: Settings) -> dict[str, str]:
    if not settings.base_url:
        engine = settings.engine_factory or "the reference engine"
        return {"engine": f"{engine}, started by the suite",
                "engine.version": eventgate.__version__}
    base = settings.base_url.rstrip("/")
    properties = {"engine": f"external, {redact_url(base)}"}
    try:
        response = http_client.get(f"{base}/health", timeout=3)
        version = response.json().get("version")
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        version = None
        properties["engine.version"] = f"unknown (/health did not answer: {type(exc).__name__})"
    if version is not None:
        properties["engine.version"] = f"{version} (from its /health)"
    elif "engine.version" not in properties:
        properties["engine.version"] = "unknown (its /health names no version)"
    return properties


def environment(settings: Settings, target: Target) -> dict[str, str]:
    """The keys of environment.properties, none of them holding a password."""
    properties = {
        "postgresql.version": target.server_version or "unknown",
        "target.kind": target.kind,
        "target": target.description,
        "bundle": str(settings.bundle),
        "scale": settings.scale,
        # The data the gates ran on, for QA to replay a failure (an external target has none).
        **({} if settings.external or settings.seed is None else {"seed": str(settings.seed)}),
        **({"profile": settings.profile} if settings.profile else {}),
        **_migrations(settings),
        **_engine(settings),
        "eventgate.version": eventgate.__version__,
        "python.version": platform.python_version(),
        "allow_destructive": "yes" if settings.allow_destructive else "no",
    }
    return {key: dsn_mod.redact(value) for key, value in properties.items()}
