"""Pooled connections for request handlers: every foreseeable database failure becomes a
problem (503 for an unreachable, unmigrated or slow database, 409/422 for rejected data),
never a bare 500."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from eventgate.engine.problems import ProblemError
from eventgate.engine.store import TENANT_SETTING

POOL_WAIT_S = 5  # how long a request waits for a free pooled connection


def unavailable() -> ProblemError:
    """The problem for a database that did not answer (pool timeout, lost connection)."""
    return ProblemError(503, "Database unavailable", "the database did not answer; try again "
                        "shortly")


@contextlib.contextmanager
def database(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """A pooled connection; database failures become problems, never a bare 500."""
    try:
        with pool.connection(timeout=POOL_WAIT_S) as conn:
            yield conn
    except ProblemError:
        raise
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise unavailable() from exc
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        raise ProblemError(503, "Database not migrated", f"{_db_detail(exc)}; run eventgate "
                           "migrate --execute against the engine's database") from exc
    except psycopg.errors.QueryCanceled as exc:
        raise ProblemError(503, "Database too slow", "the query was cancelled by its "
                           "statement_timeout; try again shortly") from exc
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(409, "Conflict", _db_detail(exc)) from exc
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
        raise ProblemError(422, "Rejected by the database", _db_detail(exc)) from exc


@contextlib.contextmanager
def tenant_database(pool: ConnectionPool, tenant: UUID) -> Iterator[psycopg.Connection]:
    """A pooled connection in one transaction that names `tenant` in the setting the tables'
    row-level security reads (SET LOCAL: it ends with the transaction, so the next request on
    this connection starts with no tenant). Every tenant's data goes through here, so a query
    that forgets its own tenant filter still sees this tenant's rows only."""
    with database(pool) as conn, conn.transaction():
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant)))
        yield conn


def _db_detail(exc: psycopg.Error) -> str:
    diag = exc.diag
    return (diag.message_primary or str(exc)).strip() + (
        f" ({diag.message_detail.strip()})" if diag.message_detail else "")
