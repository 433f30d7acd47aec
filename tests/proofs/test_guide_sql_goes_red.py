"""The guide's validation SQL can fail: a migrated wedding lost behind the change record makes
its count check mark ❌ and the gate names the row; the same count changed by a recorded,
legitimate write is not proven instead (the guide compares totals)."""

from pathlib import Path

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.guide_sql import run_guide_sql
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive


def _integrity(bundle: Bundle) -> Path:
    return bundle.root / "guide" / "data-integrity-validation.sql"


def test_the_guides_count_check_names_a_lost_wedding(migrated_db: Database,
                                                      bundle: Bundle) -> None:
    assert run_guide_sql(migrated_db.dsn, bundle.root, _integrity(bundle)).passed
    with migrated_db.connect(autocommit=False) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")  # past the change record
        conn.execute("DELETE FROM events WHERE id = (SELECT min(id) FROM events "
                     "WHERE event_type = 'wedding')")
        conn.commit()
    result = run_guide_sql(migrated_db.dsn, bundle.root, _integrity(bundle))
    assert result.outcome == "failed", result.explain()
    assert any("Data migration failed" in d for d in result.details), result.explain()


def test_a_recorded_write_makes_the_count_check_not_proven(migrated_db: Database,
                                                           bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("DELETE FROM events WHERE id = (SELECT max(id) FROM events "
                     "WHERE event_type = 'wedding')")
    result = run_guide_sql(migrated_db.dsn, bundle.root, _integrity(bundle))
    assert result.outcome == "not proven", result.explain()
    assert "change record" in result.summary


def test_the_performance_script_runs_with_a_tenant_drawn_from_the_data(
        migrated_db: Database, bundle: Bundle) -> None:
    result = run_guide_sql(migrated_db.dsn, bundle.root,
                           bundle.root / "guide" / "performance-validation.sql")
    assert result.passed, result.explain()
    assert result.data["variables"]["tenant_id"] and len(result.data["timings_ms"]) == 3
