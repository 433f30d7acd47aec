"""The `eventgate` command against a real database, as DevOps runs it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eventgate.bundle import default_bundle_path, load_bundle
from eventgate.pg.databases import Database
from eventgate.reports.schema_docs import render

ROOT = Path(__file__).resolve().parents[2]


def eventgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventgate.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


@pytest.mark.destructive
def test_migrate_dry_run_execute_validate_status_rollback(legacy_db: Database,
                                                         tmp_path: Path) -> None:
    dry = eventgate("migrate", "--dry-run", "--dsn", legacy_db.dsn)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run (rolled back, nothing changed)" in dry.stdout
    assert "010_wedding_data_migration.sql" in dry.stdout

    pending = eventgate("status", "--dsn", legacy_db.dsn)
    assert pending.stdout.count("pending") == 5

    done = eventgate("migrate", "--execute", "--dsn", legacy_db.dsn)
    assert done.returncode == 0 and "applied 5 migrations" in done.stdout

    valid = eventgate("migrate", "--validate", "--dsn", legacy_db.dsn)
    assert valid.returncode == 0 and "valid" in valid.stdout

    status = eventgate("status", "--dsn", legacy_db.dsn)
    assert status.returncode == 0 and status.stdout.count("applied") >= 5

    back = eventgate("rollback", "--to", "base", "--dsn", legacy_db.dsn,
                     "--export-dir", str(tmp_path))
    assert back.returncode == 0 and "rolled back 5 migrations" in back.stdout
    # The event types go with 006, so they are written out first, and the operator told.
    assert "3 event_types" in back.stdout and (tmp_path / next(tmp_path.iterdir())).is_dir()


@pytest.mark.destructive
def test_validate_fails_naming_a_missing_index(legacy_db: Database) -> None:
    assert eventgate("migrate", "--execute", "--dsn", legacy_db.dsn).returncode == 0
    import psycopg

    with psycopg.connect(legacy_db.dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX event_participants_email_idx")
    valid = eventgate("migrate", "--validate", "--dsn", legacy_db.dsn)
    assert valid.returncode == 1
    assert "event_participants has no valid, non-partial btree index on (email)" in valid.stdout


def test_a_bad_dsn_fails_in_one_line_without_the_password() -> None:
    result = eventgate("status", "--dsn", "postgresql://ops:hunter2@127.0.0.1:1/prod")
    assert result.returncode == 1
    assert result.stdout.startswith("FAILED: could not connect to ops@127.0.0.1:1/prod")
    assert "hunter2" not in result.stdout + result.stderr


def test_no_dsn_says_how_to_give_one() -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "EVENTGATE_DSN"}
    result = eventgate("migrate", "--execute", env=env)
    assert result.returncode == 1 and "no database given: pass --dsn" in result.stdout


def test_seed_is_deterministic_and_refuses_a_loaded_database(databases) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    sums = []
    for _ in range(2):
        db = databases.create("seed")
        args = ("seed", "--weddings", "30", "--guests-per-wedding", "4", "--seed", "7")
        assert eventgate(*args, "--dsn", db.dsn).returncode == 0
        with psycopg.connect(db.dsn) as conn:
            sums.append(conn.execute(
                "SELECT (SELECT count(*) FROM wedding_invitations), "
                "(SELECT sum(hashtext(w::text)) FROM wedding_events w), "
                "(SELECT sum(hashtext(i::text)) FROM wedding_invitations i)").fetchone())
        again = eventgate(*args, "--dsn", db.dsn)
        assert again.returncode == 1 and "already has legacy tables" in again.stdout
        databases.drop(db)
    assert sums[0] == sums[1]


def test_docs_schema_md_matches_the_bundle() -> None:
    committed = (ROOT / "docs" / "schema.md").read_text()
    assert committed == render(load_bundle()), "regenerate with: eventgate docs --output " \
                                               "docs/schema.md"


@pytest.mark.destructive
def test_gate_says_no_go_naming_the_missing_index(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    indexing = bundle / "migrations" / "008_enhanced_indexing.sql"
    indexing.write_text(indexing.read_text().replace(
        "CREATE INDEX events_tenant_start_idx ON events (tenant_id, start_date);\n", ""))
    rollback = bundle / "rollback" / "008_enhanced_indexing_rollback.sql"
    rollback.write_text(rollback.read_text().replace("DROP INDEX events_tenant_start_idx;\n", ""))
    reports = tmp_path / "reports"
    # Only the index gates, to keep the run short; the verdict path is the same.
    result = eventgate("gate", "--bundle", str(bundle), "--reports", str(reports), "--",
                       "-k", "required_index")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NO-GO" in result.stdout
    assert "test_required_index_exists[events_tenant_start_idx]" in result.stdout
    verdict = json.loads((reports / "verdict.json").read_text())
    assert verdict["verdict"] == "no-go"
    assert [f["test"] for f in verdict["failed"]] == [
        "test_indexes::test_required_index_exists[events_tenant_start_idx]"]
    assert "events has no valid, non-partial btree index on (tenant_id, start_date)" in (
        verdict["failed"][0]["reason"])
    assert (reports / "junit.xml").exists() and any((reports / "allure-results").iterdir())
