"""The compatibility views and row-level security: the old application, under a role of its
own that was granted the legacy tables (and, by 010, the views in their place), still reads
and writes every tenant's weddings as before; a transaction that names a tenant, as the
engine's do, sees that tenant's rows through the same views and no other."""

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from eventgate.bundle import Bundle
from eventgate.checks.parallel_views import FREE_PARALLELISM
from eventgate.pg.databases import Database
from eventgate.pg.roles import engine_login_dsn
from eventgate.pytest_plugin.proof import not_proven

pytestmark = [pytest.mark.compat, pytest.mark.destructive]
OLD_APP = "eventgate_old_wedding_app"
VIEWS = ("wedding_events", "wedding_invitations", "wedding_sections")


@pytest.fixture
def old_app(migrated_db: Database) -> Iterator[psycopg.Connection]:
    """A session of the old application's own login: no owner, no superuser, no BYPASSRLS,
    with what it had on the legacy tables, now on the views."""
    with migrated_db.connect() as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OLD_APP,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(OLD_APP)))
        for view in VIEWS:
            conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                sql.Identifier(view), sql.Identifier(OLD_APP)))
        conn.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(
            sql.Identifier(OLD_APP)))
    with psycopg.connect(make_conninfo(migrated_db.dsn, user=OLD_APP), autocommit=True) as app:
        yield app


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    return {v: int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(v))).fetchone()[0]) for v in VIEWS}  # type: ignore[index]


def _tenant_counts(conn: psycopg.Connection, tenant: UUID) -> dict[str, int]:
    rows = conn.execute(
        "SELECT (SELECT count(*) FROM wedding_events WHERE tenant_id = %(t)s), "
        "(SELECT count(*) FROM wedding_invitations i JOIN wedding_events w ON w.id = "
        "i.wedding_id WHERE w.tenant_id = %(t)s), (SELECT count(*) FROM wedding_sections s "
        "JOIN wedding_events w ON w.id = s.wedding_id WHERE w.tenant_id = %(t)s)",
        {"t": tenant}).fetchone()
    assert rows is not None
    return dict(zip(VIEWS, map(int, rows), strict=True))


def _workers(plan: dict[str, Any]) -> int:
    return int(plan.get("Workers Launched", 0)) + sum(_workers(p) for p in plan.get("Plans", []))


def _launched_workers(conn: psycopg.Connection) -> int:
    """Parallel workers one count through every view started (EXPLAIN ANALYZE)."""
    launched = 0
    for view in VIEWS:
        row = conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM {}")
                           .format(sql.Identifier(view))).fetchone()
        assert row is not None
        launched += _workers(row[0][0]["Plan"])
    return launched


def _scoped(conn: psycopg.Connection, tenant: UUID, parallel: bool = False) -> dict[str, int]:
    with conn.transaction():
        conn.execute("SELECT set_config('eventgate.tenant_id', %s, true)", (str(tenant),))
        if parallel:
            # The tenant setting must reach the parallel workers that read the rows: they
            # get the leader's settings, and the policies read it in every process.
            for name, value in FREE_PARALLELISM.items():
                conn.execute("SELECT set_config(%s, %s, true)", (name, value))
            assert _launched_workers(conn) > 0, "no parallel worker ran"
        counts = _counts(conn)
        conn.execute("ROLLBACK")  # nothing here writes; the transaction just ends
    return counts


def test_the_old_application_sees_and_writes_every_tenant_as_before(
        migrated_db: Database, old_app: psycopg.Connection) -> None:
    with migrated_db.connect(read_only=True) as owner:
        everything = _counts(owner)
        tenants = [r[0] for r in owner.execute(
            "SELECT DISTINCT tenant_id FROM wedding_events ORDER BY 1").fetchall()]
    assert _counts(old_app) == everything and all(everything.values()), everything
    # A write through a view, as the old application makes it, for the last tenant.
    wedding = old_app.execute(
        "SELECT id FROM wedding_events WHERE tenant_id = %s ORDER BY id LIMIT 1",
        (tenants[-1],)).fetchone()
    assert wedding is not None
    added = old_app.execute("INSERT INTO wedding_invitations (wedding_id, guest_name) VALUES "
                            "(%s, 'Late Guest') RETURNING id", wedding).fetchone()
    assert added is not None
    assert _counts(old_app)["wedding_invitations"] == everything["wedding_invitations"] + 1


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel-workers"])
def test_a_transaction_naming_a_tenant_sees_only_that_tenant_through_the_views(
        migrated_db: Database, old_app: psycopg.Connection, bundle: Bundle,
        parallel: bool) -> None:
    with migrated_db.connect(read_only=True) as owner:
        tenants = [r[0] for r in owner.execute(
            "SELECT tenant_id FROM wedding_events GROUP BY 1 ORDER BY count(*) DESC, 1"
            ).fetchall()]
        expected = {t: _tenant_counts(owner, t) for t in tenants[:2]}
        everything = _counts(owner)
    if len(tenants) < 2:
        not_proven("the database's weddings belong to one tenant, so no other tenant's rows "
                   "could show through the views where they must not")
    security = bundle.expectations.row_security
    assert security is not None
    with psycopg.connect(engine_login_dsn(migrated_db.dsn, security.engine_role),
                         autocommit=True) as engine:
        for tenant, counts in expected.items():
            assert _scoped(old_app, tenant, parallel) == counts, tenant
            assert _scoped(engine, tenant, parallel) == counts, tenant
            assert counts != everything
        # Naming no tenant, the engine's role sees nothing through the views either: a route
        # that forgot to name its tenant finds nothing rather than every tenant's weddings.
        assert _counts(engine) == dict.fromkeys(VIEWS, 0)
