"""`eventgate restore --latest` against a real PostgreSQL: the database comes back exactly as it
was backed up, the other sessions are ended, and the state it replaced is kept, never lost."""

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from eventgate.bundle import Bundle
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.cli.main import main
from eventgate.errors import BackupError
from eventgate.pg.databases import Database, Databases
from eventgate.pg.server import Server
from eventgate.pytest_plugin.fix_db import migrate
from eventgate.safety.backup import take_backup
from eventgate.safety.catalog import BackupRecord
from eventgate.safety.restore import restore_latest

pytestmark = pytest.mark.destructive


def databases_named(server: Server, prefix: str) -> list[str]:
    with server.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE left(datname, length(%s)) = %s",
            (prefix, prefix)).fetchall()]


@pytest.fixture
def target(legacy_db: Database, pg_server: Server, databases: Databases) -> Iterator[Database]:
    """legacy_db, with whatever a restore leaves beside it (`<name>_pre_restore_...`, or a
    `_restoring_` one a failed test left) dropped afterwards."""
    yield legacy_db
    for name in databases_named(pg_server, f"{legacy_db.name}_"):
        databases.drop(Database(name, ""))


def snapshot_of(db: Database) -> dict[str, object]:
    with db.connect() as conn:
        return fingerprint(conn)


def test_restore_latest_brings_the_backup_back_and_keeps_what_it_replaced(
        target: Database, pg_server: Server, reference_bundle: Bundle, tmp_path: Path) -> None:
    before = snapshot_of(target)
    record = take_backup(target.dsn, tmp_path, verify=True)
    assert record.verified
    with target.connect() as conn:
        conn.execute("DELETE FROM wedding_invitations WHERE id % 3 = 0")
        conn.execute("CREATE TABLE written_after_the_backup (id int)")
    migrate(target, reference_bundle)
    other = target.connect()
    other.execute("SELECT 1")

    report = restore_latest(target.dsn, tmp_path)

    with pytest.raises(psycopg.OperationalError):
        other.execute("SELECT 1")
    other.close()
    assert report.sessions_ended >= 1
    assert report.record.meta_path == record.meta_path
    assert report.record.migration_version is None
    after = snapshot_of(target)
    assert differences(before, after) == []
    assert after == before
    assert report.previous_database.startswith(f"{target.name}_pre_restore_")
    previous = Database(report.previous_database, pg_server.dsn_for(report.previous_database))
    with previous.connect() as conn:
        assert conn.execute("SELECT max(version) FROM eventgate_ledger.migration_ledger"
                            ).fetchone() == (10,)
        assert conn.execute("SELECT to_regclass('written_after_the_backup') IS NOT NULL"
                            ).fetchone() == (True,)
    assert report.drop_hint() == f'DROP DATABASE "{report.previous_database}";'
    assert databases_named(pg_server, f"{target.name}_restoring_") == []


def test_restore_keeps_the_databases_owner_settings_privileges_and_comment(
        target: Database, pg_server: Server, tmp_path: Path) -> None:
    name = target.name
    owner = f"{name}_owner"  # derived from the database: unique under xdist
    setup = [
        f'CREATE ROLE "{owner}"',
        f'ALTER DATABASE "{name}" OWNER TO "{owner}"',
        f'ALTER DATABASE "{name}" SET search_path = "$user", public, "Odd, Name"',
        f"ALTER DATABASE \"{name}\" SET work_mem = '7MB'",
        f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC',
        f'GRANT CONNECT ON DATABASE "{name}" TO PUBLIC',
        f"COMMENT ON DATABASE \"{name}\" IS 'the wedding database'",
    ]
    describe = ("SELECT pg_get_userbyid(d.datdba), d.datacl::text, "
                "shobj_description(d.oid, 'pg_database'), d.datallowconn, "
                "(SELECT setconfig FROM pg_db_role_setting "
                " WHERE setdatabase = d.oid AND setrole = 0) "
                "FROM pg_database d WHERE datname = %s")
    with pg_server.connect() as conn:
        for statement in setup:
            conn.execute(statement)
        try:
            wanted = conn.execute(describe, (name,)).fetchone()
            take_backup(target.dsn, tmp_path, verify=True)
            report = restore_latest(target.dsn, tmp_path)
            assert report.settings_copied == 2
            # Nothing about privileges or role settings left uncopied; only where newer rows are.
            assert [n for n in report.notes if not n.startswith("rows written since")] == []
            assert conn.execute(describe, (name,)).fetchone() == wanted
            assert conn.execute(describe, (report.previous_database,)).fetchone() == wanted
        finally:
            for db in databases_named(pg_server, name):
                conn.execute(f'ALTER DATABASE "{db}" OWNER TO postgres')
            conn.execute(f'DROP ROLE "{owner}"')
    with target.connect() as conn:
        assert conn.execute("SHOW search_path").fetchone() == ('"$user", public, "Odd, Name"',)


def test_no_verified_backup_is_refused_naming_the_directory(
        target: Database, pg_server: Server, tmp_path: Path) -> None:
    before = snapshot_of(target)
    with pytest.raises(BackupError) as empty:
        restore_latest(target.dsn, tmp_path / "nowhere")
    message = str(empty.value)
    assert f"no verified backup in {tmp_path / 'nowhere'}" in message
    assert "that directory does not exist" in message
    assert "eventgate backup --verify" in message and "Nothing was changed" in message

    take_backup(target.dsn, tmp_path, verify=False)
    with pytest.raises(BackupError) as unverified:
        restore_latest(target.dsn, tmp_path)
    assert f"no verified backup in {tmp_path}" in str(unverified.value)
    assert "never verified" in str(unverified.value)
    assert snapshot_of(target) == before
    assert databases_named(pg_server, f"{target.name}_") == []


def test_a_restore_that_does_not_match_its_metadata_leaves_the_database_alone(
        target: Database, pg_server: Server, tmp_path: Path) -> None:
    record = take_backup(target.dsn, tmp_path, verify=True)
    with target.connect() as conn:
        conn.execute("DELETE FROM wedding_sections WHERE id % 2 = 0")
    before = snapshot_of(target)
    # Verified, but its metadata no longer describes the dump (edited, or a bug).
    record.tables["public.tenants"].checksum = "1"
    record.save(record.meta_path)  # type: ignore[arg-type]
    other = target.connect()

    with pytest.raises(BackupError) as refused:
        restore_latest(target.dsn, tmp_path)

    message = str(refused.value)
    assert "does not match its metadata" in message and "public.tenants" in message
    assert f"{target.name} is untouched" in message
    other.execute("SELECT 1")  # not ended
    other.close()
    assert snapshot_of(target) == before
    assert databases_named(pg_server, f"{target.name}_") == []


def test_a_role_that_cannot_swap_databases_is_told_what_it_lacks(
        target: Database, pg_server: Server, tmp_path: Path) -> None:
    weak = f"{target.name}_weak"
    take_backup(target.dsn, tmp_path, verify=True)
    with pg_server.connect() as conn:
        conn.execute(f'CREATE ROLE "{weak}" LOGIN')
        try:
            with pytest.raises(BackupError) as refused:
                restore_latest(f"{target.dsn} user={weak}", tmp_path)
        finally:
            conn.execute(f'DROP ROLE "{weak}"')
    message = str(refused.value)
    assert f"role {weak} cannot restore {target.name}" in message
    assert "CREATEDB" in message and "pg_signal_backend" in message
    assert "membership in postgres, the owner of" in message
    assert databases_named(pg_server, f"{target.name}_") == []


def test_a_damaged_verified_backup_is_refused(target: Database, tmp_path: Path) -> None:
    record = take_backup(target.dsn, tmp_path, verify=True)
    with record.dump_path.open("r+b") as dump:
        dump.seek(100)
        dump.write(b"\0" * 16)
    with pytest.raises(BackupError) as refused:
        restore_latest(target.dsn, tmp_path)
    assert "sha256 mismatch" in str(refused.value)
    assert "Nothing was changed" in str(refused.value)


def test_restore_command_shows_the_plan_and_acts_only_with_yes(
        target: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = take_backup(target.dsn, tmp_path, verify=True)
    with target.connect() as conn:
        conn.execute("TRUNCATE wedding_sections")
    changed = snapshot_of(target)
    args = ("restore", "--dsn", target.dsn, "--backup-dir", str(tmp_path), "--latest")

    assert main([*args]) == 2
    out = capsys.readouterr().out
    assert str(record.dump_path) in out and "add --yes to restore" in out
    assert snapshot_of(target) == changed

    assert main([*args, "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"restored {target.name}" in out and "_pre_restore_" in out
    assert "DROP DATABASE" in out
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM wedding_sections").fetchone() == (
            record.tables["public.wedding_sections"].rows,)
    assert BackupRecord.load(record.meta_path).verified  # type: ignore[arg-type]


def test_restore_command_requires_latest(target: Database, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["restore", "--dsn", target.dsn, "--backup-dir", str(tmp_path), "--yes"])
    assert usage.value.code == 2


def test_emergency_path_through_the_cli_returns_the_legacy_database_and_names_what_it_set_aside(
        target: Database, bundle: Bundle, pg_server: Server, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The guide's emergency rollback, as DevOps runs it: backup --verify, migrate, the new
    application writes a conference, then restore --latest --yes."""
    before = snapshot_of(target)
    backups = str(tmp_path / "backups")
    assert main(["backup", "--dsn", target.dsn, "--backup-dir", backups, "--verify"]) == 0
    assert main(["migrate", "--execute", "--dsn", target.dsn]) == 0
    with target.connect() as conn:
        conn.execute("INSERT INTO events (tenant_id, event_type, title, slug) SELECT id, "
                     "'conference', 'DevConf', 'devconf' FROM tenants ORDER BY id LIMIT 1")
    capsys.readouterr()
    assert main(["restore", "--latest", "--yes", "--dsn", target.dsn,
                   "--backup-dir", backups]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert differences(before, snapshot_of(target)) == []
    kept = databases_named(pg_server, f"{target.name}_pre_restore_")
    assert len(kept) == 1
    assert f"tables the backup does not have, kept in {kept[0]}:" in out
    assert "public.events (" in out
    with psycopg.connect(pg_server.dsn_for(kept[0])) as conn:
        assert conn.execute("SELECT slug FROM events WHERE event_type = 'conference'"
                            ).fetchall() == [("devconf",)]


def test_a_restore_that_cannot_count_the_previous_database_still_reports_it(
        target: Database, pg_server: Server, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The swap is committed before what only the previous database holds is counted: if that
    fails (here the previous database makes our sessions run as a role that may not read a new
    table), the restore has still happened and says where the previous database went."""
    name, limited = target.name, f"{target.name}_limited"
    backups = tmp_path / "backups"
    assert main(["backup", "--dsn", target.dsn, "--backup-dir", str(backups), "--verify"]) == 0
    with target.connect() as conn:
        conn.execute("CREATE TABLE written_after_the_backup AS SELECT 1 AS id")
    with pg_server.connect() as conn:
        conn.execute(f'CREATE ROLE "{limited}" NOLOGIN')
        try:
            conn.execute(f'ALTER ROLE current_user IN DATABASE "{name}" SET role = "{limited}"')
            capsys.readouterr()
            code = main(["restore", "--latest", "--yes", "--dsn", target.dsn,
                           "--backup-dir", str(backups)])
        finally:
            for db in databases_named(pg_server, name):
                conn.execute(f'ALTER ROLE current_user IN DATABASE "{db}" RESET role')
            conn.execute(f'DROP ROLE "{limited}"')
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    kept = databases_named(pg_server, f"{name}_pre_restore_")
    assert len(kept) == 1
    assert f"restored {name}" in out and f"the previous database is kept as {kept[0]}" in out
    assert f'DROP DATABASE "{kept[0]}";' in out
    assert f"could not list what only {kept[0]} holds: " in out
    assert "permission denied" in out and "written_after_the_backup" in out
    assert "FAILED" not in out
    with target.connect() as conn:
        assert conn.execute("SELECT to_regclass('written_after_the_backup')").fetchone() == (
            None,)


def test_a_database_closed_by_a_killed_restore_is_refused_with_the_command_to_reopen_it(
        target: Database, pg_server: Server, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    name = target.name
    take_backup(target.dsn, tmp_path, verify=True)
    leftover = f"{name}_restoring_20300101_000000"
    reopen = f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    with pg_server.connect() as conn:
        # What a restore killed while ending sessions leaves: its new database, and the live
        # one closed to connections.
        conn.execute(f'CREATE DATABASE "{leftover}"')
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            with pytest.raises(BackupError) as refused:
                restore_latest(target.dsn, tmp_path)
            capsys.readouterr()
            code = main(["restore", "--latest", "--dsn", target.dsn,
                           "--backup-dir", str(tmp_path)])
            out = " ".join(capsys.readouterr().out.split())
            assert conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s",
                                (name,)).fetchone() == (False,), "nothing changed"
        finally:
            conn.execute(reopen)
    message = str(refused.value)
    assert f"refusing to restore {name}: it does not accept connections" in message
    assert f"re-open it: {reopen};" in message and "Nothing was changed" in message
    assert f'DROP DATABASE "{leftover}";' in message
    assert code == 1 and "FAILED" in out and reopen in out
    assert databases_named(pg_server, f"{name}_pre_restore_") == []

    # Re-opened, it restores; the leftover is named, and the way back from a kill was shown
    # while the database was closed.
    lines: list[str] = []
    report = restore_latest(target.dsn, tmp_path, progress=lines.append)
    assert any(leftover in note and f'DROP DATABASE "{leftover}";' in note
               for note in report.notes), report.notes
    closing = next(i for i, line in enumerate(lines) if line.startswith(f"closing {name}"))
    renaming = next(i for i, line in enumerate(lines) if line.startswith(f"renaming {name}"))
    assert all(f"re-open {name}: {reopen}" in line for line in lines[closing:renaming + 1])
    with target.connect() as conn:
        conn.execute("SELECT 1")


def test_restore_plan_names_unreadable_metadata_and_still_uses_the_good_backup(
        target: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = take_backup(target.dsn, tmp_path, verify=True)
    (tmp_path / "list.json").write_text("[]")
    data = record.to_json()
    (tmp_path / "naive.json").write_text(json.dumps(
        {**data, "created_at": "2099-01-01T00:00:00"}))

    code = main(["restore", "--latest", "--dsn", target.dsn, "--backup-dir", str(tmp_path)])

    out = " ".join(capsys.readouterr().out.split())
    assert code == 2, out
    assert str(record.dump_path) in out
    assert f"unreadable backup metadata, ignored: {tmp_path / 'list.json'} is not" in out
    assert "'2099-01-01T00:00:00' has no time zone" in out
