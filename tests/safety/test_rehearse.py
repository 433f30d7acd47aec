"""`eventgate rehearse` against a real PostgreSQL: the newest verified backup restored into a
scratch database, the migration run there with lock-wait probes, the gate and the rollback
round trip reported, the scratch database dropped and the original never touched."""

from pathlib import Path

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.cli.main import main
from eventgate.errors import BackupError
from eventgate.pg.databases import Database
from eventgate.safety.backup import take_backup
from eventgate.safety.rehearse import rehearse

pytestmark = pytest.mark.destructive

MARGIN_MS = 500  # the probes' waits are wall-clock figures on a busy machine


def _rehearsal_databases(db: Database) -> list[str]:
    with db.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE strpos(datname, '_rehearse_') > 0"
        ).fetchall()]


def test_a_rehearsal_migrates_gates_and_rolls_back_a_restored_copy(
        legacy_db: Database, reference_bundle: Bundle, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    record = take_backup(legacy_db.dsn, backups, verify=True)
    assert record.verified
    with legacy_db.connect() as conn:
        before = fingerprint(conn)
    lines: list[str] = []
    result = rehearse(legacy_db.dsn, backups, reference_bundle, reports=tmp_path / "reports",
                      progress=lines.append)

    assert result.problems == []
    assert result.preflight == "ready"
    assert [m.label for m in result.migrations] == [
        m.label for m in reference_bundle.migrations]
    assert all(m.duration_s > 0 for m in result.migrations)
    copy = next(m for m in result.migrations if m.rows)  # the one that copies the rows
    assert copy.rows_per_s > 0
    budget = reference_bundle.expectations.locks
    for m in result.migrations:
        if m.longest_write is None or m.longest_read is None:
            # No probe round (every 20 ms) fell inside a migration this quick: nothing to judge.
            assert m.duration_s < 0.2, m
            continue
        assert m.longest_write.ms <= budget.max_write_wait_ms + MARGIN_MS, m
        assert m.longest_read.ms <= budget.max_read_wait_ms + MARGIN_MS, m
    assert result.gate == "go", (tmp_path / "reports" / "gate.log").read_text()[-3000:]
    assert result.round_trip == "passed"
    assert result.ok
    assert any(line.startswith("restoring") for line in lines)
    assert any(line.startswith("migrating: 010_") for line in lines)
    data = result.to_json()
    assert data["ok"] and data["migrations"][0]["rows_per_s"] >= 0

    assert _rehearsal_databases(legacy_db) == []
    with legacy_db.connect() as conn:
        assert differences(before, fingerprint(conn)) == []


def test_no_verified_backup_names_the_directory_and_how_to_make_one(
        legacy_db: Database, reference_bundle: Bundle, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    take_backup(legacy_db.dsn, tmp_path, verify=False)  # a backup, but never verified
    with pytest.raises(BackupError) as refused:
        rehearse(legacy_db.dsn, tmp_path, reference_bundle, reports=tmp_path / "reports")
    message = str(refused.value)
    assert str(tmp_path.resolve()) in message
    assert "none verified" in message and "eventgate backup --verify" in message

    empty = tmp_path / "nothing-here"
    assert main(["rehearse", "--dsn", legacy_db.dsn, "--backup-dir", str(empty)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "FAILED: nothing to rehearse: no verified backup" in out
    assert "that directory does not exist" in out and "eventgate backup --verify" in out
    assert _rehearsal_databases(legacy_db) == []
