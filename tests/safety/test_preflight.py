"""`eventgate preflight` against real databases: a clean legacy database passes, each kind of
bad row, lock, session or missing backup fails exactly its own check naming what it found, the
migration refuses what preflight refuses, and preflight itself changes nothing."""

from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from eventgate.bundle import load_bundle
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.cli.main import main
from eventgate.cli.preflight import cmd_preflight, configure_preflight
from eventgate.errors import EventgateError, MigrationError
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database
from eventgate.safety import preflight
from eventgate.safety.catalog import BackupRecord, Verification
from eventgate.safety.preflight import Options, Report, run_preflight

pytestmark = pytest.mark.destructive

DATA_CHECKS = [rule.name for rule in preflight.DATA_RULES]


def save_backup(directory: Path, database: str, *, age: timedelta = timedelta(hours=1),
                verified: bool = True, name: str = "legacy") -> BackupRecord:
    """A backup as the backup command leaves one: a dump and its metadata beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.dump").write_bytes(b"PGDMP placeholder")
    created = datetime.now(UTC) - age
    record = BackupRecord(
        database=database, created_at=created.isoformat(), dump_file=f"{name}.dump",
        size_bytes=17, sha256="0" * 64, server_version="15", migration_version=None,
        tables={}, verification=Verification(at=created.isoformat(), ok=True,
                                              scratch_database="scratch") if verified else None)
    record.save(directory / f"{name}.json")
    return record


def rehearsal(tmp_path: Path, **changes: object) -> Options:
    """Options for a check that is not about the backup: its absence only warns."""
    settings: dict[str, object] = {"backup_dir": tmp_path / "backups", "skip_backup_check": True}
    settings.update(changes)
    return Options(**settings)  # type: ignore[arg-type]


def not_ok(report: Report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks if c.status != "ok"}


def names(text: str, value: str) -> bool:
    """Whether `text` names `value`: a number as a whole number, not inside a longer one."""
    if value.isdigit():
        return re.search(rf"(?<!\d){value}(?!\d)", text) is not None
    return value in text


def scalar(conn: psycopg.Connection, query: str) -> str:
    row = conn.execute(query).fetchone()
    assert row is not None, query
    return str(row[0])


# -- a clean database --------------------------------------------------------------------------


def test_a_clean_legacy_database_with_a_fresh_backup_is_ready(legacy_db: Database,
                                                              tmp_path: Path) -> None:
    save_backup(tmp_path / "backups", legacy_db.name)
    report = run_preflight(legacy_db.dsn, Options(backup_dir=tmp_path / "backups"))

    assert report.ok, [c for c in report.checks if c.status == "fail"]
    # The seed holds weddings without a date on purpose (they migrate, so they only warn); the
    # memory check depends on the machine and may warn, never fail.
    assert set(not_ok(report)) <= {"missing wedding dates", "memory"}, not_ok(report)
    assert report.check("backup").detail.startswith("verified backup legacy.dump")
    counts = report.check("legacy tables").detail
    with legacy_db.connect() as conn:
        invitations = int(scalar(conn, "SELECT count(*) FROM wedding_invitations"))
        undated = [r[0] for r in conn.execute(
            "SELECT id FROM wedding_events WHERE wedding_date IS NULL ORDER BY id").fetchall()]
    assert f"wedding_invitations {invitations:,}" in counts
    assert "no migration applied yet" in counts
    if undated:
        assert all(names(report.check("missing wedding dates").detail, str(i))
                   for i in undated[:10])
    disk = report.check("disk space").detail
    assert "need ≥ 2 x legacy tables' size (incl. indexes and toast) = " in disk
    assert "free " in disk
    memory = report.check("memory").detail
    assert "MemAvailable" in memory and "maintenance_work_mem" in memory


def test_preflight_changes_nothing_and_cannot_write(legacy_db: Database, tmp_path: Path) -> None:
    with legacy_db.connect() as conn:
        before = fingerprint(conn)
    run_preflight(legacy_db.dsn, rehearsal(tmp_path))
    with legacy_db.connect() as conn:
        after = fingerprint(conn)
    assert before == after, differences(before, after)

    with preflight.connect(legacy_db.dsn) as session:
        assert scalar(session, "SHOW application_name") == "eventgate preflight"
        assert scalar(session, "SHOW statement_timeout") == "30s"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            session.execute("DELETE FROM wedding_sections")


def test_a_migrated_database_is_reported_as_such_with_the_data_checks_skipped(
        migrated_db: Database, tmp_path: Path) -> None:
    report = run_preflight(migrated_db.dsn, rehearsal(tmp_path))

    legacy = report.check("legacy tables")
    assert (legacy.status, legacy.detail) == (
        "ok", "already migrated (ledger at 010); data checks skipped")
    for name in [*DATA_CHECKS, "disk space"]:
        check = report.check(name)
        assert check.status == "skip", check
        assert "already migrated (ledger at 010)" in check.detail
    assert report.ok, report.failed


# -- legacy rows the migration refuses ---------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    check: str  # the one check it must turn red
    damage: Callable[[psycopg.Connection], str]  # changes the database, returns what is named


def _row(offset: int) -> str:
    """A distinct existing wedding per injection, so that all of them fit in one database."""
    return f"(SELECT id FROM wedding_events ORDER BY id OFFSET {offset} LIMIT 1)"


INJECTIONS = {
    "orphan invitation": Injection("orphan invitations", lambda c: scalar(c, (
        "INSERT INTO wedding_invitations (wedding_id, guest_name) "
        "VALUES (987654321, 'Nobody') RETURNING id"))),
    "orphan section": Injection("orphan sections", lambda c: scalar(c, (
        "INSERT INTO wedding_sections (wedding_id, section_type) "
        "VALUES (987654321, 'story') RETURNING id"))),
    "duplicate slug": Injection("duplicate slugs", lambda c: scalar(c, (
        "INSERT INTO wedding_events (tenant_id, slug, bride_name, groom_name, wedding_date, "
        "timezone, status) SELECT tenant_id, slug, 'Ann', 'Bob', '2030-05-01', timezone, status "
        f"FROM wedding_events WHERE id = {_row(1)} RETURNING tenant_id || '/' || slug"))),
    "invalid rsvp": Injection("rsvp values", lambda c: scalar(c, (
        "UPDATE wedding_invitations SET rsvp_status = 'yes' "
        "WHERE id = (SELECT min(id) FROM wedding_invitations) RETURNING quote_literal('yes')"))),
    "negative party size": Injection("party sizes", lambda c: scalar(c, (
        "UPDATE wedding_invitations SET party_size = -2 "
        "WHERE id = (SELECT max(id) FROM wedding_invitations) RETURNING id"))),
    "unknown time zone": Injection("time zones", lambda c: scalar(c, (
        f"UPDATE wedding_events SET timezone = 'Mars/Olympus' WHERE id = {_row(2)} "
        "RETURNING quote_literal(timezone)"))),
    "invalid status": Injection("status values", lambda c: scalar(c, (
        f"UPDATE wedding_events SET status = 'deleted' WHERE id = {_row(3)} "
        "RETURNING quote_literal(status)"))),
    "ceremony at 24:00": Injection("dates that do not exist", lambda c: scalar(c, (
        "UPDATE wedding_events SET wedding_date = '2030-06-01', ceremony_time = '24:00', "
        f"timezone = 'Europe/Madrid' WHERE id = {_row(4)} RETURNING id"))),
    "a day the zone skipped": Injection("dates that do not exist", lambda c: scalar(c, (
        "UPDATE wedding_events SET wedding_date = '2011-12-30', ceremony_time = '10:00', "
        f"timezone = 'Pacific/Apia' WHERE id = {_row(5)} RETURNING id"))),
}


@pytest.mark.parametrize("injection", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_each_bad_legacy_row_fails_its_own_check_naming_it(
        legacy_db: Database, tmp_path: Path, injection: Injection) -> None:
    with legacy_db.connect() as conn:
        named = injection.damage(conn)
    report = run_preflight(legacy_db.dsn, rehearsal(tmp_path))

    assert {c.name for c in report.failed} == {injection.check}, not_ok(report)
    failed = report.check(injection.check)
    assert names(failed.detail, named), failed.detail
    assert failed.detail.startswith("1 "), failed.detail  # one row, one pair, one value
    assert "010 refuses to migrate" in failed.fix
    assert not report.ok


def test_preflight_and_migration_010_refuse_the_same_rows(legacy_db: Database,
                                                          tmp_path: Path) -> None:
    with legacy_db.connect() as conn:
        named = {label: (i.check, i.damage(conn)) for label, i in INJECTIONS.items()}
    report = run_preflight(legacy_db.dsn, rehearsal(tmp_path))
    with legacy_db.connect() as conn, pytest.raises(MigrationError) as refused:
        Runner(conn, load_bundle()).execute()

    message = str(refused.value)
    assert "legacy data the events schema cannot hold; nothing was migrated" in message
    for label, (check, value) in named.items():
        assert names(report.check(check).detail, value), (label, report.check(check))
        assert names(message, value), (label, value, message)
    assert {c.name for c in report.failed} == {i.check for i in INJECTIONS.values()}


def test_weddings_without_a_date_only_warn(legacy_db: Database, tmp_path: Path) -> None:
    with legacy_db.connect() as conn:
        undated = scalar(conn, f"UPDATE wedding_events SET wedding_date = NULL "
                               f"WHERE id = {_row(7)} RETURNING id")
    report = run_preflight(legacy_db.dsn, rehearsal(tmp_path))
    check = report.check("missing wedding dates")
    assert check.status == "warn" and names(check.detail, undated), check
    assert report.ok


# -- sessions and locks ------------------------------------------------------------------------


def wait_until_waiting(db: Database, pid: int) -> None:
    deadline = time.monotonic() + 10
    with db.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s "
                            "AND wait_event_type = 'Lock'", (pid,)).fetchone():
                return
            time.sleep(0.02)
    raise AssertionError(f"pid {pid} never waited for a lock")


@pytest.fixture
def blocked_reader(legacy_db: Database) -> Iterator[tuple[int, int]]:
    """Session A holds ACCESS EXCLUSIVE on wedding_events; session B, in a thread, waits to
    read it. Yields (A's pid, B's pid); A rolls back afterwards, which lets B finish."""
    holder = legacy_db.connect(autocommit=False)
    holder.execute("LOCK TABLE wedding_events IN ACCESS EXCLUSIVE MODE")
    reader = psycopg.connect(legacy_db.dsn, autocommit=True, application_name="wedding-app",
                             options="-c statement_timeout=60000")
    failures: list[BaseException] = []

    def read() -> None:
        try:
            reader.execute("SELECT count(*) FROM wedding_events")
        except psycopg.Error as exc:  # kept for the assertion below, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        wait_until_waiting(legacy_db, reader.info.backend_pid)
        yield holder.info.backend_pid, reader.info.backend_pid
    finally:
        holder.rollback()
        holder.close()
        thread.join(30)
        reader.close()
    assert not failures, failures


def test_a_blocking_lock_fails_naming_both_sessions(
        legacy_db: Database, tmp_path: Path, blocked_reader: tuple[int, int]) -> None:
    holder, reader = blocked_reader
    report = run_preflight(legacy_db.dsn, rehearsal(tmp_path))

    blocking = report.check("blocking locks")
    assert blocking.status == "fail"
    assert f"pid {holder} (" in blocking.detail and f"pid {reader} (" in blocking.detail
    assert "LOCK TABLE wedding_events IN ACCESS EXCLUSIVE MODE" in blocking.detail
    assert "'wedding-app', active, waiting" in blocking.detail
    assert "SELECT count(*) FROM wedding_events" in blocking.detail
    assert "pg_terminate_backend" in blocking.fix
    # Preflight does not queue behind the lock: it names the holder and leaves the table be.
    legacy = report.check("legacy tables")
    assert legacy.status == "fail" and f"pid {holder} (" in legacy.detail, legacy
    assert "holds ACCESS EXCLUSIVE" in legacy.detail
    assert report.check("orphan invitations").status == "skip"
    assert report.check("rsvp values").status == "ok"  # wedding_invitations is not locked
    assert report.duration_s < Options().lock_timeout_ms / 1000


def test_an_idle_transaction_holding_a_legacy_lock_fails(legacy_db: Database,
                                                         tmp_path: Path) -> None:
    with legacy_db.connect(autocommit=False) as idle:
        idle.execute("SELECT 1 FROM wedding_sections LIMIT 1")
        pid = idle.info.backend_pid
        time.sleep(0.05)
        report = run_preflight(legacy_db.dsn,
                               rehearsal(tmp_path, max_idle_in_transaction_s=0.01))
        patient = run_preflight(legacy_db.dsn, rehearsal(tmp_path))
        idle.rollback()

    check = report.check("idle transactions")
    assert check.status == "fail", check
    assert f"pid {pid} (" in check.detail
    assert "holds wedding_sections AccessShareLock" in check.detail
    assert patient.check("idle transactions").status == "ok"  # under the default 60 s


def test_many_other_connections_warn_with_a_summary(legacy_db: Database, tmp_path: Path) -> None:
    sessions = [psycopg.connect(legacy_db.dsn, application_name="wedding-app")
                for _ in range(3)]
    try:
        report = run_preflight(legacy_db.dsn, rehearsal(tmp_path, max_connections=2))
    finally:
        for session in sessions:
            session.close()
    check = report.check("other connections")
    assert check.status == "warn", check
    assert check.detail.startswith("3 other sessions on this database (warn above 2): "
                                   "3 from wedding-app as postgres")
    assert report.ok


# -- disk --------------------------------------------------------------------------------------


def test_an_absurd_disk_need_fails_stating_need_and_free(legacy_db: Database,
                                                         tmp_path: Path) -> None:
    report = run_preflight(legacy_db.dsn, rehearsal(tmp_path, disk_factor=1e12))
    disk = report.check("disk space")
    assert disk.status == "fail", disk
    assert re.search(r"need ≥ 1e\+12 x legacy tables' size \(incl\. indexes and toast\) = "
                     r"1e\+12 x [\d.]+ [kMG]?B = [\d.]+ [A-Z]B; free [\d.]+ [kMGT]?B on /",
                     disk.detail), disk.detail
    assert "--disk-factor" in disk.fix


def test_the_server_is_recognised_by_its_postmaster_pid() -> None:
    pid_file = "4242\n/srv/pg/data\n1700000000\n5432\n/run/postgresql\n*\n  1  2\nready\n"
    assert preflight.postmaster_mismatch(pid_file, "/srv/pg/data", 1700000000.4, "5432") is None
    assert "another time" in (preflight.postmaster_mismatch(
        pid_file, "/srv/pg/data", 1700009999.0, "5432") or "")
    assert "port 5432" in (preflight.postmaster_mismatch(
        pid_file, "/srv/pg/data", 1700000000.0, "5433") or "")
    assert "/srv/pg/data" in (preflight.postmaster_mismatch(
        pid_file, "/var/lib/pg", 1700000000.0, "5432") or "")


# -- backup ------------------------------------------------------------------------------------


def test_an_old_backup_fails_naming_its_age(legacy_db: Database, tmp_path: Path) -> None:
    save_backup(tmp_path / "backups", legacy_db.name, age=timedelta(days=2))
    report = run_preflight(legacy_db.dsn, Options(backup_dir=tmp_path / "backups"))
    backup = report.check("backup")
    assert backup.status == "fail"
    assert "legacy.dump, is 48.0 h old (limit 24 h)" in backup.detail
    assert "eventgate backup --verify" in backup.fix
    relaxed = run_preflight(legacy_db.dsn, Options(backup_dir=tmp_path / "backups",
                                                   max_backup_age_h=72))
    assert relaxed.check("backup").status == "ok"


def test_no_verified_backup_fails_naming_the_directory(legacy_db: Database,
                                                       tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    save_backup(directory, legacy_db.name, verified=False, name="unverified")
    save_backup(directory, "another_database", name="other")
    report = run_preflight(legacy_db.dsn, Options(backup_dir=directory))
    backup = report.check("backup")
    assert backup.status == "fail"
    assert f"no verified backup of {legacy_db.name} in {directory}" in backup.detail
    assert "newest seen: unverified.dump, 1.0 h old, never verified" in backup.detail
    assert f"eventgate backup --verify` into {directory}" in backup.fix

    missing = run_preflight(legacy_db.dsn, Options(backup_dir=tmp_path / "nowhere"))
    assert f"in {tmp_path / 'nowhere'}; the directory does not exist" in (
        missing.check("backup").detail)

    rehearsed = run_preflight(legacy_db.dsn, Options(backup_dir=directory,
                                                     skip_backup_check=True))
    assert rehearsed.check("backup").status == "warn"
    assert rehearsed.check("backup").detail.startswith(
        "not enforced (--skip-backup-check, for rehearsals): no verified backup")


# -- the command -------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    """The verb's arguments as the CLI builds them: cli/main.py's verb table adds --dsn and
    the rest."""
    parser = argparse.ArgumentParser(prog="eventgate preflight")
    parser.add_argument("--dsn")
    parser.add_argument("--bundle")
    parser.add_argument("--traceback", action="store_true")
    configure_preflight(parser)
    return parser.parse_args(argv)


def test_the_command_prints_a_table_and_exits_0_when_ready(
        legacy_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_backup(tmp_path / "backups", legacy_db.name)
    code = main(["preflight", "--dsn", legacy_db.dsn, "--backup-dir", str(tmp_path / "backups")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "eventgate preflight" in out and "orphan invitations" in out
    assert "ready: no check failed" in out


def test_the_json_report_parses_and_says_not_ok_on_failure(
        legacy_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with legacy_db.connect() as conn:
        orphan = scalar(conn, "INSERT INTO wedding_sections (wedding_id, section_type) "
                              "VALUES (987654321, 'story') RETURNING id")
    code = main(["preflight", "--dsn", legacy_db.dsn, "--json", "--backup-dir",
                 str(tmp_path / "backups"), "--skip-backup-check"])
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    assert document["ok"] is False
    assert document["database"].endswith(f"/{legacy_db.name}")
    datetime.fromisoformat(document["at"])
    checks = {c["name"]: c for c in document["checks"]}
    assert set(checks) >= {"server version", "disk space", "memory", "legacy tables",
                           "other connections", "blocking locks", "backup", *DATA_CHECKS}
    assert all(set(c) == {"name", "status", "detail", "fix"} for c in checks.values())
    assert checks["orphan sections"]["status"] == "fail"
    assert f"id {orphan} (wedding_id 987654321)" in checks["orphan sections"]["detail"]
    assert checks["backup"]["status"] == "warn"


def test_negative_limits_are_refused() -> None:
    with pytest.raises(EventgateError, match=r"--disk-factor -1\.0 is negative"):
        cmd_preflight(parse("--dsn", "postgresql://ops@127.0.0.1:1/prod", "--disk-factor", "-1"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_an_unreachable_server_fails_clearly_without_the_password(
        capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    dsn = f"postgresql://ops:s3cret@127.0.0.1:{port}/prod"
    with pytest.raises(EventgateError) as failed:
        cmd_preflight(parse("--dsn", dsn))
    message = str(failed.value)
    assert message.startswith(f"preflight could not connect to ops@127.0.0.1:{port}/prod: ")
    assert "check that the server runs" in message

    code = cmd_preflight(parse("--dsn", dsn, "--json"))
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert code == 1 and document["ok"] is False
    assert document["error"].startswith("preflight could not connect to ops@127.0.0.1")
    assert "s3cret" not in message + captured.out + captured.err

    assert main(["preflight", "--dsn", dsn]) == 1
    printed = capsys.readouterr().out
    assert "FAILED: preflight could not connect to ops@127.0.0.1" in " ".join(printed.split())
    assert "s3cret" not in printed


def test_unreadable_backup_metadata_beside_a_good_backup_is_a_warning(
        legacy_db: Database, tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    save_backup(directory, legacy_db.name)
    (directory / "broken.json").write_text("[1, 2]")
    backup = run_preflight(legacy_db.dsn, Options(backup_dir=directory)).check("backup")
    assert backup.status == "warn"
    assert "1 metadata files could not be read: " in backup.detail and "broken.json" in (
        backup.detail)
