"""Rollback as a gate, with the configured bundle: rolling back keeps what the old application
wrote through the compatibility views during the blue-green window, and a round trip to the base
gives back the legacy database exactly, catalog and rows (eventgate.checks.rollback_round_trip,
which says why the runner's own verification is off there)."""

from collections.abc import Callable

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.result import CheckResult
from eventgate.checks.rollback_round_trip import rollback_keeps_view_writes, round_trip_to_base
from eventgate.pg.databases import Database
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.integrity, pytest.mark.destructive]
Record = Callable[[CheckResult], CheckResult]


def test_rolling_back_keeps_what_the_old_application_wrote_through_the_views(
        migrated_db: Database, bundle: Bundle, record_check: Record) -> None:
    with migrated_db.connect() as conn:
        hold(record_check(rollback_keeps_view_writes(conn, bundle)))


def test_a_round_trip_to_the_base_gives_back_the_legacy_database(
        legacy_db: Database, bundle: Bundle, record_check: Record) -> None:
    with legacy_db.connect() as conn:
        hold(record_check(round_trip_to_base(conn, bundle)))
