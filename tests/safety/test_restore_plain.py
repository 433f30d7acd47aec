"""`eventgate restore --from FILE`: the deployment guide's backups (create-backup.sh's plain
`pg_dump --clean --create --if-exists` piped through gzip, and its backup_metadata JSON)
restored the way eventgate restores its own: proven in a new database first, then swapped in,
the live database kept. A dump that cannot be proven is refused with the live database
untouched."""

import gzip
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.cli.main import main
from eventgate.errors import BackupError
from eventgate.pg.databases import Database, Databases
from eventgate.pg.server import Server
from eventgate.pytest_plugin.fix_db import migrate
from eventgate.safety import databases as safety_databases
from eventgate.safety.plain_restore import restore_plain
from eventgate.safety.tools import find_tool, tool_connection

pytestmark = pytest.mark.destructive


@pytest.fixture
def target(legacy_db: Database, pg_server: Server, databases: Databases) -> Iterator[Database]:
    yield legacy_db
    with pg_server.connect() as conn:
        names = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            (f"{legacy_db.name}\\_%",)).fetchall()]
    for name in names:
        databases.drop(Database(name, ""))


def guide_backup(db: Database, directory: Path, stamp: str = "20261202_101500") -> Path:
    """What the guide's create-backup.sh leaves: pre_migration_backup_<stamp>.sql.gz and
    backup_metadata_<stamp>.json."""
    with db.connect() as conn:
        version = safety_databases.server_version(conn)
    dump = find_tool("pg_dump", version)
    conninfo, env, _ = tool_connection(db.dsn, db.name)
    sql_file = directory / f"pre_migration_backup_{stamp}.sql"
    with sql_file.open("wb") as out:
        subprocess.run([str(dump.path), "--clean", "--create", "--if-exists", "-d", conninfo],
                       stdout=out, env=env, check=True)
    gz = directory / f"{sql_file.name}.gz"
    gz.write_bytes(gzip.compress(sql_file.read_bytes()))
    sql_file.unlink()
    (directory / f"backup_metadata_{stamp}.json").write_text(json.dumps({
        "backup_date": "2026-12-02T10:15:00Z", "database_name": db.name,
        "backup_file": str(gz), "backup_size": gz.stat().st_size,
        "migration_phase": "pre_migration", "environment": "production"}, indent=2))
    return gz


def test_a_guide_backup_comes_back_and_what_it_replaced_is_kept(
        target: Database, reference_bundle: Bundle, tmp_path: Path) -> None:
    with target.connect() as conn:
        before = fingerprint(conn)
    gz = guide_backup(target, tmp_path)
    migrate(target, reference_bundle)
    report = restore_plain(target.dsn, gz)
    with target.connect() as conn:
        assert differences(before, fingerprint(conn)) == []
    assert report.record.verified and report.record.migration_version is None
    assert report.previous_database.startswith(f"{target.name}_pre_restore_")
    assert any("rows written since the backup (2026-12-02T10:15:00Z)" in n for n in report.notes)


def test_the_cli_shows_the_plan_then_restores_with_yes(
        target: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gz = guide_backup(target, tmp_path)
    with target.connect() as conn:
        conn.execute("DELETE FROM wedding_sections")
    assert main(["restore", "--dsn", target.dsn, "--from", str(gz)]) == 2
    out = capsys.readouterr().out
    assert "a plain pg_dump (gzip)" in out and "nothing changed" in out
    assert main(["restore", "--dsn", target.dsn, "--from", str(gz), "--yes"]) == 0
    assert "restored" in capsys.readouterr().out
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) > 0 FROM wedding_sections").fetchone() == (True,)


def _cut(gz: Path, keep: float) -> None:
    text = gzip.decompress(gz.read_bytes())
    gz.write_bytes(gzip.compress(text[:int(len(text) * keep)]))


@pytest.mark.parametrize("damage, refusal", [
    ("truncated", "ends before pg_dump's last line"),
    ("corrupt gzip", "cannot be read whole"),
    ("resized", "its metadata .* recorded"),
    ("another database", "it is a dump of database"),
    ("a row fewer", "rows restored, .* in the dump"),
])
def test_a_dump_that_cannot_be_proven_is_refused_and_the_database_kept(
        damage: str, refusal: str, target: Database, tmp_path: Path) -> None:
    gz = guide_backup(target, tmp_path)
    meta = tmp_path / "backup_metadata_20261202_101500.json"
    data = json.loads(meta.read_text())
    if damage == "truncated":
        _cut(gz, 0.6)
    elif damage == "corrupt gzip":
        raw = bytearray(gz.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        gz.write_bytes(bytes(raw))
    elif damage == "another database":
        text = gzip.decompress(gz.read_bytes()).decode()
        gz.write_bytes(gzip.compress(text.replace(f"CREATE DATABASE {target.name} ",
                                                  "CREATE DATABASE elsewhere ").encode()))
    elif damage == "a row fewer":
        # The dump itself deletes a row after its COPY (a trigger it creates first): the
        # restored table holds a row fewer than the dump's COPY block.
        text = gzip.decompress(gz.read_bytes()).decode()
        gz.write_bytes(gzip.compress(text.replace("COPY public.wedding_sections ", (
            "CREATE FUNCTION public.drop_one() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
            "DELETE FROM public.wedding_sections WHERE id = (SELECT min(id) FROM "
            "public.wedding_sections); RETURN NULL; END $f$;\n"
            "CREATE TRIGGER drop_one AFTER INSERT ON public.wedding_sections "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.drop_one();\n"
            "COPY public.wedding_sections "), 1).encode()))
    if damage != "resized":
        data["backup_size"] = gz.stat().st_size
    else:
        data["backup_size"] = gz.stat().st_size + 1
    meta.write_text(json.dumps(data))
    with target.connect() as conn:
        before = fingerprint(conn)
    with pytest.raises(BackupError, match=refusal):
        restore_plain(target.dsn, gz)
    with target.connect() as conn:
        assert differences(before, fingerprint(conn)) == []
