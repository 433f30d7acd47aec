"""The operator's settings, the deployment guide's way: its `.env.migration` (read with
python-dotenv), its variable names, and libpq's own PG* variables, resolved by one rule:

    a flag  >  the environment  >  the env file  >  the default

The env file fills only what the environment does not set (python-dotenv, override=False), so
everything that reads the environment sees the same values. `eventgate config` shows each
resolved value and where it came from, secrets masked."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from psycopg.conninfo import make_conninfo

from eventgate import dsn as dsn_mod
from eventgate.errors import ConfigError

ENV_FILE = ".env.migration"  # the guide's file, read from the working directory when present
ENV_FILE_VARIABLE = "EVENTGATE_ENV_FILE"
# What the guide's file holds, and what else eventgate reads; True: a secret, never shown.
KNOWN = {
    "EVENTGATE_DSN": True, "DATABASE_URL": True,
    "DB_HOST": False, "DB_PORT": False, "DB_NAME": False, "DB_USER": False, "DB_PASSWORD": True,
    "PGHOST": False, "PGPORT": False, "PGDATABASE": False, "PGUSER": False, "PGPASSWORD": True,
    "PGSERVICE": False, "PGCONNECT_TIMEOUT": False,
    "MIGRATION_MODE": False, "DRY_RUN": False, "BACKUP_RETENTION_DAYS": False,
    "SLACK_WEBHOOK_URL": True, "EMAIL_ALERTS": False,
    "EVENTGATE_BUNDLE": False, "EVENTGATE_BACKUP_DIR": False,
}
MODES = ("development", "staging", "production")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Loaded:
    """What the env file gave: its path (None: no file) and the names it set."""

    path: Path | None
    names: frozenset[str] = frozenset()


_loaded = Loaded(None)


def load_env_file(given: str | None, environ: MutableMapping[str, str] = os.environ) -> Loaded:
    """Read `given` (--env-file), else EVENTGATE_ENV_FILE, else ./.env.migration when it exists,
    into `environ` for the names it does not have yet. A file named but missing is an error."""
    global _loaded
    named = given or environ.get(ENV_FILE_VARIABLE)
    path = Path(named) if named else Path(ENV_FILE)
    if not path.is_file():
        if named:
            raise ConfigError(f"the env file {path} does not exist (given by "
                              f"{'--env-file' if given else ENV_FILE_VARIABLE}); nothing was run")
        _loaded = Loaded(None)
        return _loaded
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the env file {path} could not be read: {exc}") from exc
    names = set()
    for name, value in values.items():
        if value is not None and name not in environ:
            environ[name] = value
            names.add(name)
    _loaded = Loaded(path, frozenset(names))
    return _loaded


def loaded() -> Loaded:
    """What the last load_env_file read."""
    return _loaded


def source(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """Where the value of `name` came from: the env file, the environment, or nowhere."""
    if name in _loaded.names:
        return str(_loaded.path)
    return "environment" if name in environ else "default"


def guide_dsn(environ: Mapping[str, str] = os.environ) -> str | None:
    """The target from the environment when no --dsn is given: EVENTGATE_DSN, DATABASE_URL, the
    guide's DB_HOST/DB_PORT/DB_NAME/DB_USER (the password stays in PGPASSWORD, see
    password_from_guide), or libpq's PG* variables; None when none is set."""
    for name in ("EVENTGATE_DSN", "DATABASE_URL"):
        if environ.get(name):
            return environ[name]
    guide = {"host": "DB_HOST", "port": "DB_PORT", "dbname": "DB_NAME", "user": "DB_USER"}
    libpq = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
             "service": "PGSERVICE"}
    for names in (guide, libpq):
        parts = {k: environ[v] for k, v in names.items() if environ.get(v)}
        if parts:
            return make_conninfo("", **parts)
    return None


def password_from_guide(environ: MutableMapping[str, str] = os.environ) -> None:
    """DB_PASSWORD as libpq's PGPASSWORD (unless that is set): libpq reads it at connect, so the
    password is in no DSN, no log line and no process list."""
    if environ.get("DB_PASSWORD") and not environ.get("PGPASSWORD"):
        environ["PGPASSWORD"] = environ["DB_PASSWORD"]


def connect_timeout(environ: Mapping[str, str] = os.environ, default: int = 10) -> int:
    """PGCONNECT_TIMEOUT (seconds) as libpq reads it; the default when unset."""
    value = environ.get("PGCONNECT_TIMEOUT", "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ConfigError(f"PGCONNECT_TIMEOUT={value!r} is not a whole number of seconds")
    return max(int(value), 2) if int(value) else 0  # libpq: 0 waits forever, 1 means 2


def migration_mode(environ: Mapping[str, str] = os.environ) -> str:
    value = environ.get("MIGRATION_MODE", "development").strip().lower() or "development"
    if value not in MODES:
        raise ConfigError(f"MIGRATION_MODE={value!r} is not one of {', '.join(MODES)}")
    return value


def flag(name: str, environ: Mapping[str, str] = os.environ) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is neither true nor false")


def retention_days(environ: Mapping[str, str] = os.environ) -> int | None:
    value = environ.get("BACKUP_RETENTION_DAYS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"BACKUP_RETENTION_DAYS={value!r} is not a whole number of days "
                          "above 0")
    return int(value)


def shown(name: str, value: str) -> str:
    """A value as `eventgate config` prints it: secrets masked, DSNs without passwords."""
    if name in ("EVENTGATE_DSN", "DATABASE_URL"):
        return dsn_mod.redact(value)
    if KNOWN.get(name):
        return "****" if value else ""
    return value


def resolved(environ: Mapping[str, str] = os.environ) -> list[tuple[str, str, str]]:
    """(name, value as shown, source) for every known setting that is set."""
    return [(name, shown(name, environ[name]), source(name, environ))
            for name in KNOWN if name in environ]
