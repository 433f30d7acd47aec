"""Settings the deployment guide's way: its .env.migration, its variable names, one precedence
rule (flag > environment > env file > default), and what DRY_RUN, MIGRATION_MODE,
BACKUP_RETENTION_DAYS and PGCONNECT_TIMEOUT change. Run as an operator runs eventgate: a
subprocess with only the guide's variables set."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive

PASSWORD = "s3cret-guide-pw"


def _guide_env_file(tmp_path: Path, db: Database, **extra: str) -> Path:
    info = psycopg.conninfo.conninfo_to_dict(db.dsn)
    lines = [f"DB_HOST={info['host']}", f"DB_PORT={info['port']}", f"DB_NAME={info['dbname']}",
             f"DB_USER={info['user']}", f"DB_PASSWORD={PASSWORD}", "MIGRATION_MODE=development",
             "BACKUP_RETENTION_DAYS=30", "DRY_RUN=false",
             "SLACK_WEBHOOK_URL=", "EMAIL_ALERTS=admin@example.org"]
    lines += [f"{k}={v}" for k, v in extra.items()]
    path = tmp_path / ".env.migration"
    path.write_text("# the guide's file\n" + "\n".join(lines) + "\n")
    return path


def _eventgate(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("EVENTGATE_", "PG", "DB_")) and k not in (
                 "DATABASE_URL", "SLACK_WEBHOOK_URL", "MIGRATION_MODE", "DRY_RUN")}
    return subprocess.run([sys.executable, "-m", "eventgate.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**clean, "COLUMNS": "200", **env})


def test_the_guides_env_file_is_the_target_and_config_says_where_each_setting_came_from(
        legacy_db: Database, tmp_path: Path) -> None:
    _guide_env_file(tmp_path, legacy_db)
    status = _eventgate(tmp_path, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "pending" in status.stdout and legacy_db.name in status.stdout
    shown = _eventgate(tmp_path, "config", DB_NAME="from_the_environment")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    out = shown.stdout
    assert PASSWORD not in out + shown.stderr
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 3}
    assert "****" in lines["DB_PASSWORD"] and ".env.migration" in lines["DB_PASSWORD"]
    assert "from_the_environment" in lines["DB_NAME"] and "environment" in lines["DB_NAME"]
    assert "admin@example.org" in lines["EMAIL_ALERTS"]
    assert "development" in lines["MIGRATION_MODE"]
    # A flag beats both.
    flagged = _eventgate(tmp_path, "config", "--dsn", "dbname=from_the_flag host=/nowhere")
    assert "from_the_flag" in flagged.stdout and "--dsn" in flagged.stdout


def test_dry_run_true_turns_execute_into_a_dry_run(legacy_db: Database, tmp_path: Path) -> None:
    _guide_env_file(tmp_path, legacy_db).write_text(
        _guide_env_file(tmp_path, legacy_db).read_text().replace("DRY_RUN=false", "DRY_RUN=true"))
    run = _eventgate(tmp_path, "migrate", "--execute")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "DRY_RUN=true" in run.stdout and "instead of --execute" in run.stdout
    with legacy_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('events')").fetchone() == (None,)


def test_production_mode_migrates_only_with_a_verified_backup(
        legacy_db: Database, tmp_path: Path) -> None:
    _guide_env_file(tmp_path, legacy_db, EVENTGATE_BACKUP_DIR=str(tmp_path / "backups"))
    run = _eventgate(tmp_path, "migrate", "--execute", MIGRATION_MODE="production")
    assert run.returncode == 1
    assert "MIGRATION_MODE=production (environment) migrates only with a verified backup" in (
        " ".join(run.stdout.split()))
    assert "nothing was changed" in run.stdout
    with legacy_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('events')").fetchone() == (None,)
    backup = _eventgate(tmp_path, "backup", "--verify", "--backup-dir", str(tmp_path / "backups"))
    assert backup.returncode == 0, backup.stdout + backup.stderr
    run = _eventgate(tmp_path, "migrate", "--execute", MIGRATION_MODE="production")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "production: verified backup" in run.stdout


@pytest.mark.parametrize(("setting", "message"), [
    ("PGCONNECT_TIMEOUT=soon", "PGCONNECT_TIMEOUT='soon' is not a whole number of seconds"),
    ("MIGRATION_MODE=prod", "MIGRATION_MODE='prod' is not one of development, staging, "
                            "production"),
    ("DRY_RUN=maybe", "DRY_RUN='maybe' is neither true nor false"),
])
def test_a_bad_setting_is_named(setting: str, message: str, legacy_db: Database,
                                tmp_path: Path) -> None:
    name, value = setting.split("=")
    _guide_env_file(tmp_path, legacy_db)
    run = _eventgate(tmp_path, "migrate", "--execute", **{name: value})
    assert run.returncode == 1 and message in " ".join(run.stdout.split()), run.stdout
    with legacy_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('events')").fetchone() == (None,)


def test_a_missing_env_file_and_no_target_say_how_to_fix_it(tmp_path: Path) -> None:
    missing = _eventgate(tmp_path, "status", "--env-file", "nowhere.env")
    assert missing.returncode == 1
    assert "the env file nowhere.env does not exist (given by --env-file)" in missing.stdout
    none = _eventgate(tmp_path, "status")
    assert none.returncode == 1 and "DB_HOST, DB_PORT, DB_NAME, DB_USER" in (
        " ".join(none.stdout.split()))
