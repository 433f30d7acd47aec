"""The column-by-column writes through the views, and the rollback that must keep them, on data
where the tenant cannot change the easy way: every wedding in one tenant of several (the
`giant-tenant` shape with an unlucky seed), and exactly one tenant. The first must go green, its
tenant_id edit drawing another tenant from the table the foreign key names; the second cannot
change a tenant at all, so those gates are not proven, naming the column, and never failed. Twenty
weddings over several tenants must go green too: a slug edit gets a fresh slug, never another
wedding's."""

from collections.abc import Iterator

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.rollback_round_trip import rollback_keeps_view_writes
from eventgate.checks.view_column_writes import (
    column_writes_read_back,
    edits_change_their_columns,
)
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database, Databases
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy
from eventgate.seed.profiles import profile

pytestmark = pytest.mark.destructive

SHAPES = {
    "all weddings in one of three tenants": SeedPlan(weddings=30, guests_per_wedding=3,
                                                     tenants=3, first_tenant_share=1.0),
    "exactly one tenant": SeedPlan(weddings=30, guests_per_wedding=3, tenants=1),
    # Few enough weddings (20) that the slug edit drew another wedding's slug after the tenant
    # edit had moved the row into that wedding's tenant: a duplicate in the new schema's
    # (tenant_id, slug) index, and a false no-go. It must make a fresh slug.
    "twenty weddings, large-guest-lists seed 742337": profile("large-guest-lists", seed=742337),
}
SPREAD = "twenty weddings, large-guest-lists seed 742337"


@pytest.fixture(params=list(SHAPES))
def shaped(request: pytest.FixtureRequest, databases: Databases,
           bundle: Bundle) -> Iterator[tuple[str, Database, Database]]:
    """The shape's name, its legacy database and a migrated copy of it."""
    legacy = databases.create("one_tenant_legacy")
    with legacy.connect() as conn:
        build_legacy(conn, bundle, SHAPES[request.param])
        one = conn.execute("SELECT count(DISTINCT tenant_id) FROM wedding_events").fetchone()
        assert request.param == SPREAD or one == (1,), (
            "the shape must put every wedding in one tenant")
    migrated = databases.create("one_tenant_migrated", template=legacy.name)
    with migrated.connect() as conn:
        Runner(conn, bundle).execute()
    try:
        yield request.param, legacy, migrated
    finally:
        databases.drop(migrated)
        databases.drop(legacy)


def test_tenant_edits_draw_another_tenant_or_are_not_proven(
        shaped: tuple[str, Database, Database], databases: Databases, bundle: Bundle) -> None:
    shape, legacy, migrated = shaped
    mapping = next(m for m in bundle.mapping.values() if m.view and "tenant_id" in m.columns
                   and m.legacy_table != m.target)
    # Each check writes: each gets copies of its own, as in the suites.
    copies = [databases.create("one_tenant_copy", template=db.name)
              for db in (legacy, legacy, migrated, migrated)]
    try:
        with (copies[0].connect() as edited, copies[1].connect() as lc,
              copies[2].connect() as mc, copies[3].connect() as rolled):
            results = [edits_change_their_columns(edited, mapping),
                       column_writes_read_back(lc, mc, mapping),
                       rollback_keeps_view_writes(rolled, bundle)]
    finally:
        for db in copies:
            databases.drop(db)
    if shape == "exactly one tenant":
        for result in results:
            assert result.outcome == "not proven", result.explain()
            assert f"{mapping.legacy_table}.tenant_id" in result.summary, result.explain()
    else:
        for result in results:
            assert result.passed, result.explain()
