"""The PostgreSQL client tools a backup and a restore run: pg_dump and pg_restore as new as the
server, given the connection without a password on their command line, their errors quoted
without one either."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg.conninfo

from eventgate import dsn as dsn_mod
from eventgate.errors import BackupError
from eventgate.pg import binaries

TAIL = 1200  # characters of a tool's stderr quoted in an error


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path
    version: str


def major(version: str) -> int:
    return int(version.split(".")[0])


def find_tool(name: str, for_server: str, bindir: str | Path | None = None) -> Tool:
    """The first pg_dump / pg_restore at least as new as the server: an older one cannot read a
    newer server's catalog (pg_dump refuses) or a newer archive (pg_restore refuses)."""
    wanted = major(for_server)
    tried = []
    for how, path in binaries.client_tool_candidates(name, bindir):
        version = binaries.tool_version(path)
        if version is None:
            tried.append(f"{path} ({how}): missing, or does not run")
        elif major(version) < wanted:
            tried.append(f"{path} ({how}): version {version}, older than the server")
        else:
            return Tool(name, path, version)
    where = "; ".join(tried) or (f"nothing found (server binaries, PATH, "
                                 f"{binaries.DEBIAN_ROOT}/*/bin)")
    raise BackupError(
        f"no usable {name} for PostgreSQL {for_server}: it must be of major version {wanted} or "
        f"newer; tried: {where}. Install the client tools of version {wanted} or newer "
        f"(Debian/Ubuntu: apt-get install postgresql-client-{wanted}) or pass --pg-bindir with "
        "the directory holding them"
    )


def tool_connection(dsn: str, dbname: str) -> tuple[str, dict[str, str], str | None]:
    """(conninfo without the password, environment with PGPASSWORD, the password): a password
    on a command line is visible to every local user in `ps`, the environment is not."""
    params = dict(dsn_mod.parse(dsn))
    password = params.pop("password", None) or None
    params["dbname"] = dbname
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    return psycopg.conninfo.make_conninfo(**params), env, password


def tail(text: str, password: str | None) -> str:
    """The end of a tool's stderr, with no password in it whatever the tool printed."""
    if password:
        text = text.replace(password, "****")
    text = dsn_mod.redact(text).strip()
    return ("…" + text[-TAIL:]) if len(text) > TAIL else (text or "(no message)")


def run_pg_restore(tool: Tool, dump: Path, dsn: str, dbname: str, *, keep_owners: bool) -> None:
    """pg_restore `dump` into the existing, empty database `dbname`, stopping at the first
    error. Keeping owners needs a superuser (ALTER ... OWNER TO another role)."""
    conninfo, env, password = tool_connection(dsn, dbname)
    argv = [str(tool.path), "--exit-on-error", "--no-password", f"--dbname={conninfo}"]
    if not keep_owners:
        argv.append("--no-owner")
    argv.append(str(dump))
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=env, check=False)
    except OSError as exc:
        raise BackupError(
            f"could not run pg_restore {tool.version} ({tool.path}) on {dump.name}: {exc}; "
            "check that it is still installed and executable, or pass --pg-bindir with the "
            "directory of a working one") from exc
    if done.returncode != 0:
        raise BackupError(
            f"pg_restore {tool.version} of {dump.name} into database {dbname} failed (exit "
            f"{done.returncode}): {tail(done.stderr, password)}"
        )
