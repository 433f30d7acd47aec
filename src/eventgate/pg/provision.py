"""Choosing where PostgreSQL comes from: --dsn, local binaries, testcontainers, or one clear
error listing what was tried."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg

from eventgate import dsn as dsn_mod
from eventgate.errors import ProvisioningError
from eventgate.pg import binaries as binaries_mod
from eventgate.pg.container import container_server, docker_answers
from eventgate.pg.local import local_cluster
from eventgate.pg.server import Server, server_version

HOW_TO_GET = (
    "how to get one:\n"
    "  - use an existing server: --dsn 'postgresql://user:password@host:5432/dbname' "
    "or EVENTGATE_DSN\n"
    "  - install the server binaries: apt-get install postgresql (Debian/Ubuntu), "
    "dnf install postgresql-server (Fedora), brew install postgresql (macOS); "
    "or point --pg-bindir / EVENTGATE_PG_BINDIR at a directory holding initdb and postgres\n"
    "  - start a Docker engine, and testcontainers will run postgres in a container"
)


@dataclass(frozen=True)
class Route:
    """Which way the server will be obtained, decided without starting anything."""

    kind: str  # "dsn" | "local" | "container"
    description: str
    dsn: str | None = None
    binaries: binaries_mod.ServerBinaries | None = None
    tried: list[str] = field(default_factory=list)


def choose_route(dsn: str | None, pg_bindir: str | None = None) -> Route:
    """The first route that can work, or a ProvisioningError listing every one tried."""
    if dsn:
        dsn_mod.parse(dsn)
        return Route("dsn", f"external server {dsn_mod.describe(dsn)}", dsn=dsn)
    found, tried = binaries_mod.locate(pg_bindir)
    if found is not None:
        return Route("local", f"ephemeral local cluster, PostgreSQL {found.version} "
                     f"from {found.bindir}", binaries=found, tried=tried)
    if pg_bindir:
        raise ProvisioningError(
            f"--pg-bindir {pg_bindir} does not hold initdb and postgres; "
            "point it at PostgreSQL's bin directory (for example /usr/lib/postgresql/15/bin)"
        )
    ok, why = docker_answers()
    if ok:
        return Route("container", "testcontainers PostgreSQL", tried=tried)
    tried = [*tried, f"testcontainers: no Docker engine answered a ping ({why})"]
    raise ProvisioningError(
        "no PostgreSQL server to test against; tried, in order:\n  - no --dsn or EVENTGATE_DSN "
        "given\n" + "".join(f"  - {line}\n" for line in tried) + HOW_TO_GET
    )


def _no_connect(dsn: str, exc: psycopg.Error) -> str | None:
    """The GRANT to name when the server refused the role its database (SQLSTATE 42501)."""
    if exc.sqlstate != "42501" and "permission denied for database" not in str(exc):
        return None
    params = dsn_mod.parse(dsn)
    role = params.get("user") or getpass.getuser()
    dbname = params.get("dbname") or role
    return (f"the role '{role}' may not connect to database {dbname}: permission denied (no "
            f"CONNECT privilege); grant it with: GRANT CONNECT ON DATABASE {dbname} TO {role};")


def external_server(dsn: str) -> Server:
    try:
        version = server_version(dsn)
    except psycopg.Error as exc:
        refused = _no_connect(dsn, exc)
        if refused:
            raise ProvisioningError(refused) from exc
        raise ProvisioningError(
            f"could not connect to {dsn_mod.describe(dsn)}: {dsn_mod.redact(str(exc)).strip()}; "
            "check that the server is up, the host and port are right and the user may log in"
        ) from exc
    return Server(dsn=dsn, version=version, route=f"external server {dsn_mod.describe(dsn)}",
                  owned=False)


@contextlib.contextmanager
def provision(dsn: str | None, pg_bindir: str | None = None, *,
              in_memory: bool = False) -> Iterator[Server]:
    """Yield a running server; a server this started is stopped and removed on exit. A local
    cluster for small data (in_memory) keeps its files in memory when there is room."""
    route = choose_route(dsn, pg_bindir)
    if route.kind == "dsn":
        assert route.dsn is not None
        yield external_server(route.dsn)
    elif route.kind == "local":
        assert route.binaries is not None
        with local_cluster(route.binaries, in_memory) as server:
            yield server
    else:
        with container_server() as server:
            yield server
