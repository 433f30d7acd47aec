"""`eventgate backup` against a real PostgreSQL: the dump and its metadata, verification in a
scratch database, what a damaged or failed backup leaves behind, and retention."""

import hashlib
import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from eventgate.checks.snapshot import content_checksums
from eventgate.cli.main import main
from eventgate.errors import BackupError
from eventgate.pg import binaries
from eventgate.pg.databases import Database
from eventgate.pg.server import Server
from eventgate.safety import catalog
from eventgate.safety.backup import take_backup
from eventgate.safety.catalog import BackupRecord, TableSum, Verification
from eventgate.safety.preflight import Options, check_backup
from eventgate.safety.retention import prune
from eventgate.safety.verify import verify_backup

pytestmark = pytest.mark.destructive

PASSWORD = "s3cret"


def databases_named(server: Server, prefix: str) -> list[str]:
    with server.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE left(datname, length(%s)) = %s",
            (prefix, prefix)).fetchall()]


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def real_tool(name: str) -> Path:
    return binaries.client_tool_candidates(name)[0][1]


def script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_backup_of_the_legacy_database_records_the_file_and_every_table(
        legacy_db: Database, tmp_path: Path) -> None:
    record = take_backup(legacy_db.dsn, tmp_path, verify=False)

    assert record.meta_path == tmp_path / record.dump_file.replace(".dump", ".json")
    assert record.dump_file.startswith(f"{legacy_db.name}-")
    assert files_in(tmp_path) == sorted([record.dump_file, record.meta_path.name])
    data = record.dump_path.read_bytes()
    assert data.startswith(b"PGDMP"), "not a custom-format archive"
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.size_bytes == len(data)
    assert record.migration_version is None
    assert record.verification is None
    with legacy_db.connect() as conn:
        counts = {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
                  for name in record.tables}
        sums = content_checksums(conn)
    assert set(record.tables) == set(sums), "every user table, nothing else"
    assert {n: t.rows for n, t in record.tables.items()} == counts
    assert all(counts.values())
    # The same algorithm as the snapshot fingerprint, so the numbers can be compared.
    assert {n: (t.rows, t.checksum) for n, t in record.tables.items()} == sums
    assert BackupRecord.load(record.meta_path) == record
    assert catalog.latest_verified(tmp_path, legacy_db.name) is None, "never verified"


def test_backup_of_the_migrated_database_records_migration_010(migrated_db: Database,
                                                               tmp_path: Path) -> None:
    record = take_backup(migrated_db.dsn, tmp_path, verify=False)
    assert record.migration_version == 10
    assert record.tables["eventgate_ledger.migration_ledger"].rows == 5
    assert "public.events" in record.tables


def test_verify_restores_into_a_scratch_database_and_drops_it(
        legacy_db: Database, pg_server: Server, tmp_path: Path) -> None:
    started = time.monotonic()
    record = take_backup(legacy_db.dsn, tmp_path, verify=True)
    took = time.monotonic() - started

    assert record.verification is not None
    assert record.verification.problems == []
    assert record.verified
    assert record.verification.scratch_database.startswith(f"{legacy_db.name}_verify_")
    assert databases_named(pg_server, f"{legacy_db.name}_verify_") == []
    saved = BackupRecord.load(record.meta_path)  # type: ignore[arg-type]
    assert saved.verified
    latest = catalog.latest_verified(tmp_path, legacy_db.name)
    assert latest is not None and latest.meta_path == record.meta_path
    assert took < 10, f"backup and verify of the small seed took {took:.1f} s"


def test_verify_refuses_a_dump_changed_after_the_backup(
        legacy_db: Database, pg_server: Server, tmp_path: Path) -> None:
    record = take_backup(legacy_db.dsn, tmp_path, verify=False)
    data = bytearray(record.dump_path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    record.dump_path.write_bytes(bytes(data))

    verification = verify_backup(record, pg_server.dsn)

    assert not verification.ok
    assert "sha256 mismatch" in verification.problems[0]
    assert record.dump_file in verification.problems[0]
    assert not BackupRecord.load(record.meta_path).verified  # type: ignore[arg-type]
    assert catalog.latest_verified(tmp_path, legacy_db.name) is None
    assert databases_named(pg_server, f"{legacy_db.name}_verify_") == []


def test_verify_names_each_table_that_does_not_match_the_metadata(
        legacy_db: Database, pg_server: Server, tmp_path: Path) -> None:
    record = take_backup(legacy_db.dsn, tmp_path, verify=False)
    real_rows = record.tables["public.tenants"].rows
    record.tables["public.wedding_sections"].checksum = "12345"
    record.tables["public.tenants"].rows += 1
    record.tables["public.gone"] = TableSum(rows=1, checksum="1")
    record.save(record.meta_path)  # type: ignore[arg-type]

    verification = verify_backup(record, pg_server.dsn)

    assert not verification.ok
    assert verification.problems[:2] == [
        "public.gone: in the backup's metadata but missing from the restore",
        f"public.tenants: {real_rows + 1} rows in the backup's metadata, {real_rows} restored",
    ]
    assert verification.problems[2].startswith(
        "public.wedding_sections: content checksum differs (12345 in the metadata, ")
    assert len(verification.problems) == 3
    assert catalog.latest_verified(tmp_path, legacy_db.name) is None
    assert databases_named(pg_server, f"{legacy_db.name}_verify_") == []


def test_the_checksums_describe_the_dump_even_when_rows_change_during_it(
        legacy_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_dump runs on the snapshot the checksums are taken in: a change committed while it
    starts is in neither, and the backup still verifies."""
    bindir = tmp_path / "bin"
    psql = real_tool("pg_dump").parent / "psql"
    script(bindir, "pg_dump", f'[ "$1" = --version ] || "{psql}" -qAt "$WRITER_DSN" -c '
           f'"UPDATE tenants SET name = name || \' (renamed)\'" >/dev/null || exit 9\n'
           f'exec "{real_tool("pg_dump")}" "$@"\n')
    (bindir / "pg_restore").symlink_to(real_tool("pg_restore"))
    monkeypatch.setenv("WRITER_DSN", legacy_db.dsn)

    record = take_backup(legacy_db.dsn, tmp_path / "backups", verify=True, bindir=bindir)

    assert record.verified, record.verification
    with legacy_db.connect() as conn:
        now = content_checksums(conn)["public.tenants"]
        renamed = conn.execute("SELECT count(*) FROM tenants WHERE name LIKE '%(renamed)'"
                               ).fetchone()
    assert renamed == (record.tables["public.tenants"].rows,), "the writer did not run"
    assert now[1] != record.tables["public.tenants"].checksum


def test_a_failing_pg_dump_leaves_nothing_and_never_shows_the_password(
        legacy_db: Database, tmp_path: Path) -> None:
    bindir, backups = tmp_path / "bin", tmp_path / "backups"
    script(bindir, "pg_dump", f"""
[ "$1" = --version ] && {{ echo 'pg_dump (PostgreSQL) 15.99'; exit 0; }}
echo "$*" > {tmp_path}/argv
printf %s "$PGPASSWORD" > {tmp_path}/password
for arg; do case "$arg" in --file=*) echo half a dump > "${{arg#--file=}}";; esac; done
echo "pg_dump: error: could not write to output file: No space left on device ($PGPASSWORD)" >&2
exit 1
""")
    dsn = f"{legacy_db.dsn} password={PASSWORD}"

    with pytest.raises(BackupError) as failed:
        take_backup(dsn, backups, verify=True, bindir=bindir)

    message = str(failed.value)
    assert "pg_dump 15.99" in message and "failed (exit 1)" in message
    assert "No space left on device" in message
    assert f"nothing was kept in {backups}" in message
    assert PASSWORD not in message
    assert files_in(backups) == []
    assert (tmp_path / "password").read_text() == PASSWORD, "passed in PGPASSWORD"
    assert PASSWORD not in (tmp_path / "argv").read_text(), "never on the command line"


def test_a_database_that_does_not_exist_fails_before_any_file_is_made(
        legacy_db: Database, tmp_path: Path) -> None:
    dsn = f"{legacy_db.dsn.replace(legacy_db.name, legacy_db.name + '_nope')} password={PASSWORD}"
    with pytest.raises(BackupError) as failed:
        take_backup(dsn, tmp_path, verify=False)
    message = str(failed.value)
    assert message.startswith("could not connect to postgres@")
    assert f"{legacy_db.name}_nope" in message
    assert PASSWORD not in message
    assert files_in(tmp_path) == []


def test_a_pg_dump_older_than_the_server_is_refused_saying_how_to_fix_it(
        legacy_db: Database, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    script(bindir, "pg_dump", "echo 'pg_dump (PostgreSQL) 9.6.24'\n")
    with pytest.raises(BackupError) as failed:
        take_backup(legacy_db.dsn, tmp_path / "backups", verify=False, bindir=bindir)
    message = str(failed.value)
    assert "no usable pg_dump for PostgreSQL 15" in message
    assert "version 9.6, older than the server" in message
    assert "apt-get install postgresql-client-15" in message
    assert files_in(tmp_path / "backups") == []


# -- retention --------------------------------------------------------------------------------


NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def fake_backup(directory: Path, database: str, age_days: float, verified: bool | None,
                now: datetime = NOW) -> BackupRecord:
    """A record and a dump file of the given age; verified None = never verified."""
    created = now - timedelta(days=age_days)
    stem = f"{database}-{created.strftime('%Y%m%dT%H%M%SZ')}"
    (directory / f"{stem}.dump").write_bytes(b"PGDMP fake")
    record = BackupRecord(
        database=database, created_at=created.isoformat(), dump_file=f"{stem}.dump",
        size_bytes=10, sha256="0" * 64, server_version="15.0", migration_version=None,
        tables={}, verification=None if verified is None else Verification(
            at=created.isoformat(), ok=verified, scratch_database="x"))
    record.save(directory / f"{stem}.json")
    return record


def test_prune_removes_old_backups_but_never_the_newest_verified_one(tmp_path: Path) -> None:
    oldest_verified = fake_backup(tmp_path, "app", 40, verified=True)
    old_unverified = fake_backup(tmp_path, "app", 30, verified=None)
    old_failed = fake_backup(tmp_path, "app", 20, verified=False)
    recent = fake_backup(tmp_path, "app", 1, verified=None)
    other_db = fake_backup(tmp_path, "other", 50, verified=None)
    stale, fresh = tmp_path / "app-x.dump.partial", tmp_path / "app-y.dump.partial"
    stale.write_bytes(b"")
    fresh.write_bytes(b"")
    two_days_ago = (NOW - timedelta(days=2)).timestamp()
    os.utime(stale, (two_days_ago, two_days_ago))
    os.utime(fresh, (NOW.timestamp(), NOW.timestamp()))

    pruned = prune(tmp_path, "app", keep_days=7, now=NOW)

    gone = {old_unverified.meta_path, old_unverified.dump_path, old_failed.meta_path,
            old_failed.dump_path, stale}
    assert set(pruned.removed) == gone
    assert not any(path.exists() for path in gone)
    for kept in (oldest_verified, recent, other_db):
        assert kept.dump_path.exists() and kept.meta_path.exists()  # type: ignore[union-attr]
    assert fresh.exists()
    assert any(oldest_verified.dump_file in note and "newest verified" in note
               for note in pruned.notes), pruned.notes

    newer_verified = fake_backup(tmp_path, "app", 10, verified=True)
    pruned = prune(tmp_path, "app", keep_days=7, now=NOW)
    assert set(pruned.removed) == {oldest_verified.meta_path, oldest_verified.dump_path}
    assert newer_verified.dump_path.exists()
    assert catalog.latest_verified(tmp_path, "app") == newer_verified


def test_prune_of_a_directory_without_verified_backups_says_so(tmp_path: Path) -> None:
    fake_backup(tmp_path, "app", 30, verified=False)
    pruned = prune(tmp_path, "app", keep_days=7, now=NOW)
    assert len(pruned.removed) == 2
    assert pruned.notes == [f"no verified backup of app in {tmp_path}: old ones are pruned by "
                            "age alone"]


# -- the command ------------------------------------------------------------------------------


def test_backup_command_verifies_and_prints_the_record_as_json(
        legacy_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = fake_backup(tmp_path, legacy_db.name, 400, verified=True, now=datetime.now(UTC))
    code = main(["backup", "--dsn", legacy_db.dsn, "--backup-dir", str(tmp_path), "--verify",
                   "--json", "--retention-days", "30"])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out)
    assert data["database"] == legacy_db.name
    assert data["verification"]["ok"] is True
    assert Path(data["metadata_file"]).is_file()
    assert not old.dump_path.exists(), "pruned: older than 30 days and no longer the newest"


def test_backup_command_says_not_verified_and_exits_1(
        legacy_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_dump").symlink_to(real_tool("pg_dump"))
    script(bindir, "pg_restore", '[ "$1" = --version ] && exec '
           f'"{real_tool("pg_restore")}" --version\n'
           'echo "pg_restore: error: could not execute query: out of memory" >&2; exit 1\n')
    backups = tmp_path / "backups"
    code = main(["backup", "--dsn", legacy_db.dsn, "--backup-dir", str(backups), "--verify",
                   "--pg-bindir", str(bindir), "--retention-days", "0"])
    out = capsys.readouterr().out
    assert code == 1
    assert "NOT VERIFIED" in out and "out of memory" in out
    assert len(list(backups.glob("*.dump"))) == 1, "kept, marked unverified, never pruned"
    assert catalog.latest_verified(backups, legacy_db.name) is None


def test_backup_command_failure_is_one_failed_line_without_the_password(
        legacy_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = f"{legacy_db.dsn.replace(legacy_db.name, 'nope_' + legacy_db.name)} password={PASSWORD}"
    code = main(["backup", "--dsn", dsn, "--backup-dir", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED: could not connect" in out
    assert PASSWORD not in out
    assert files_in(tmp_path / "b") == []


def test_the_checksum_session_ignores_the_databases_own_settings(
        legacy_db: Database, pg_server: Server, tmp_path: Path) -> None:
    """A database-level TimeZone changes how timestamptz rows print; the scratch restore has no
    such setting, so the checksums must not depend on it."""
    with pg_server.connect() as conn:
        conn.execute(f'ALTER DATABASE "{legacy_db.name}" SET TimeZone = \'Asia/Kathmandu\'')
    record = take_backup(legacy_db.dsn, tmp_path, verify=True)
    assert record.verified, record.verification
    with psycopg.connect(legacy_db.dsn) as conn:
        assert conn.execute("SHOW TimeZone").fetchone() == ("Asia/Kathmandu",)


def test_backup_command_with_retention_0_never_prunes_the_backup_it_just_took(
        legacy_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --verify nothing is verified, so only age decides: the new backup was created
    a moment before the cutoff of `now - 0 days`, and must still be kept."""
    old = fake_backup(tmp_path, legacy_db.name, 3, verified=None, now=datetime.now(UTC))
    code = main(["backup", "--dsn", legacy_db.dsn, "--backup-dir", str(tmp_path),
                   "--retention-days", "0"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    records, unreadable = catalog.scan(tmp_path, legacy_db.name)
    assert unreadable == []
    assert len(records) == 1 and records[0].meta_path != old.meta_path
    assert records[0].dump_path.is_file(), "the backup just taken was pruned"
    assert not old.dump_path.exists() and not old.meta_path.exists()  # type: ignore[union-attr]
    assert f"kept {records[0].dump_file}" in out and "the backup just taken" in out
    assert "pruned 2 files older than 0 days" in out


@pytest.mark.parametrize("days", ["-1", "nan", "inf"])
def test_a_retention_that_is_not_0_days_or_more_is_refused(
        days: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["backup", "--dsn", "postgresql://nobody@localhost/none", "--backup-dir",
                str(tmp_path), "--retention-days", days])
    assert usage.value.code == 2
    assert "the retention must be a number of days, 0 or more" in capsys.readouterr().err
    fake_backup(tmp_path, "app", 40, verified=None)
    with pytest.raises(BackupError, match="pass a number of days, 0 or more"):
        prune(tmp_path, "app", float(days), now=NOW)
    assert len(files_in(tmp_path)) == 2, "nothing pruned"


def test_prune_keeps_what_it_is_told_to_protect(tmp_path: Path) -> None:
    just_taken = fake_backup(tmp_path, "app", 0.001, verified=None)
    older = fake_backup(tmp_path, "app", 1, verified=None)
    pruned = prune(tmp_path, "app", keep_days=0, now=NOW,
                   protected=[just_taken.meta_path])  # type: ignore[list-item]
    assert set(pruned.removed) == {older.meta_path, older.dump_path}
    assert just_taken.dump_path.exists() and just_taken.meta_path.exists()  # type: ignore[union-attr]
    assert pruned.notes[-1] == (f"kept {just_taken.dump_file} although older than 0 days: it "
                                "is the backup just taken")
    assert prune(tmp_path, "app", keep_days=1e12, now=NOW).removed == [], "no overflow"


# -- malformed metadata -------------------------------------------------------------------------


def malformed_beside(good: BackupRecord, directory: Path) -> dict[str, str]:
    """Metadata files that are not what eventgate writes, each with a part of the line that
    scan must give for it."""
    data = good.to_json()
    bad: dict[str, tuple[object, str]] = {
        "list.json": ([data], "it holds a JSON list, not an object"),
        "bad_time.json": ({**data, "created_at": "last tuesday"},
                          "created_at 'last tuesday' is not an ISO 8601 timestamp"),
        "naive.json": ({**data, "created_at": "2030-05-31T12:00:00"},
                       "created_at '2030-05-31T12:00:00' has no time zone"),
        "naive_verified.json": ({**data, "verification": {**data["verification"],
                                                          "at": "2030-05-31T12:00:00"}},
                                "verification.at '2030-05-31T12:00:00' has no time zone"),
        "rows_text.json": ({**data, "tables": {"public.t": {"rows": "7", "checksum": "1"}}},
                           "tables.public.t is"),
        "escapes.json": ({**data, "dump_file": "../elsewhere.dump"},
                         "dump_file '../elsewhere.dump' is not a file name"),
        "odd_format.json": ({**data, "format": True}, "has backup metadata format True"),
    }
    expected = {}
    for name, (content, line) in bad.items():
        (directory / name).write_text(json.dumps(content))
        expected[name] = line
    (directory / "garbage.json").write_bytes(b"\x00\xffPGDMP\x01 not json")
    expected["garbage.json"] = "is not JSON"
    (directory / "a_directory.json").mkdir()
    expected["a_directory.json"] = "cannot be read"
    return expected


def test_malformed_metadata_files_are_reported_and_never_hide_a_good_backup(
        tmp_path: Path) -> None:
    good = fake_backup(tmp_path, "app", 2, verified=True)
    expected = malformed_beside(good, tmp_path)

    records, unreadable = catalog.scan(tmp_path, "app")

    assert records == [good]
    assert len(unreadable) == len(expected), unreadable
    for name, line in expected.items():
        assert sum(entry.startswith(f"{tmp_path / name} ") and line in entry
                   for entry in unreadable) == 1, (name, unreadable)
    assert catalog.latest_verified(tmp_path, "app") == good

    pruned = prune(tmp_path, "app", keep_days=0, now=NOW)
    assert pruned.removed == []
    assert sum(note.startswith("left alone, unreadable: ") for note in pruned.notes) == len(
        expected)
    assert all((tmp_path / name).exists() for name in expected), "never deleted"


def test_preflight_and_backup_with_retention_survive_malformed_metadata(
        legacy_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = fake_backup(tmp_path, legacy_db.name, 0.01, verified=True, now=datetime.now(UTC))
    malformed_beside(good, tmp_path)
    check = check_backup(legacy_db.name, Options(backup_dir=tmp_path))
    # The good backup is found; the unreadable files beside it are a warning, not a crash.
    assert check.status == "warn" and good.dump_file in check.detail

    code = main(["backup", "--dsn", legacy_db.dsn, "--backup-dir", str(tmp_path),
                   "--retention-days", "30"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    assert f"left alone, unreadable: {tmp_path / 'list.json'} is not backup metadata" in out


# -- what the file system refuses ---------------------------------------------------------------


def test_a_verification_whose_outcome_cannot_be_saved_is_not_verified(
        legacy_db: Database, pg_server: Server, tmp_path: Path) -> None:
    record = take_backup(legacy_db.dsn, tmp_path, verify=False)
    assert record.meta_path is not None
    # Something made a directory where the metadata's temporary copy goes: writing it fails.
    (record.meta_path.parent / (record.meta_path.name + ".partial")).mkdir()

    verification = verify_backup(record, pg_server.dsn)

    assert not verification.ok and record.verification == verification
    assert len(verification.problems) == 1
    problem = verification.problems[0]
    assert problem.startswith("the restore into a scratch database matched every table, but "
                              f"the outcome could not be saved in {record.meta_path}: ")
    assert "Is a directory" in problem and "restore --latest will not pick" in problem
    assert not BackupRecord.load(record.meta_path).verified
    assert catalog.latest_verified(tmp_path, legacy_db.name) is None
    assert databases_named(pg_server, f"{legacy_db.name}_verify_") == []


def test_a_pg_restore_that_vanishes_fails_the_verification_not_the_program(
        legacy_db: Database, pg_server: Server, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_dump").symlink_to(real_tool("pg_dump"))
    # Answers --version, then is gone (a package upgrade under a running backup).
    script(bindir, "pg_restore", f'rm -f "$0"; exec "{real_tool("pg_restore")}" --version\n')
    backups = tmp_path / "backups"

    code = main(["backup", "--dsn", legacy_db.dsn, "--backup-dir", str(backups), "--verify",
                   "--pg-bindir", str(bindir)])

    out = " ".join(capsys.readouterr().out.split())
    assert code == 1, out
    assert "NOT VERIFIED" in out and "could not run pg_restore" in out
    assert "No such file or directory" in out and "--pg-bindir" in out
    records, _ = catalog.scan(backups, legacy_db.name)
    assert len(records) == 1 and records[0].verification is not None
    assert not records[0].verified
    assert databases_named(pg_server, f"{legacy_db.name}_verify_") == []


def test_a_dump_that_cannot_be_put_in_place_fails_the_backup_and_keeps_nothing(
        legacy_db: Database, tmp_path: Path) -> None:
    bindir, backups = tmp_path / "bin", tmp_path / "backups"
    # Something else takes the dump's final name while pg_dump writes: the rename fails.
    script(bindir, "pg_dump", f"""
for arg; do case "$arg" in --file=*) f="${{arg#--file=}}"; mkdir "${{f%.partial}}";; esac; done
exec "{real_tool('pg_dump')}" "$@"
""")

    with pytest.raises(BackupError) as failed:
        take_backup(legacy_db.dsn, backups, verify=True, bindir=bindir)

    message = str(failed.value)
    assert "failed renaming " in message and ".dump.partial to " in message
    assert "Is a directory" in message and f"nothing was kept in {backups}" in message
    assert "free space" in message
    left = files_in(backups)
    assert len(left) == 1 and (backups / left[0]).is_dir(), "only the intruder is left"
