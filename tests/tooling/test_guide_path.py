"""The deployment guide followed end to end, as a DevOps engineer would, with only the guide's own
settings (its .env.migration: DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD, ...) against a
PostgreSQL that wants a password: the pre-migration check, a backup, the migration (dry run,
execute, validate), the functional validation against a running engine, an emergency rollback
from a backup made the guide's way (pg_dump | gzip), and a gradual rollback. Each step is the
shipped script in deploy/, run as a child process."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from eventgate import http_client
from eventgate.bundle import load_bundle
from eventgate.engine.launcher import Launcher
from eventgate.engine.process import engine_process
from eventgate.pg.binaries import locate
from eventgate.pg.local import SUPERUSER, LocalCluster
from eventgate.safety.tools import find_tool, tool_connection
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy

pytestmark = pytest.mark.destructive

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DBNAME = "event_management_engine"  # the guide's


@dataclass(frozen=True)
class Guide:
    workdir: Path
    backups: Path
    password: str
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{DBNAME}"

    def env(self, **extra: str) -> dict[str, str]:
        """The child's environment: nothing of eventgate's own, only what the guide sets
        (through .env.migration in the working directory) and where the backups go."""
        keep = {k: v for k, v in os.environ.items()
                if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "COLUMNS")}
        keep["PATH"] = f"{Path(sys.executable).parent}:{keep.get('PATH', '')}"
        return {**keep, "EVENTGATE_CMD": f"{sys.executable} -m eventgate.cli",
                "BACKUP_DIR": str(self.backups), "COLUMNS": "200", **extra}

    def run(self, script: str, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["bash", str(DEPLOY / script)], cwd=self.workdir,
                              env=self.env(**extra), capture_output=True, text=True,
                              timeout=900, check=False)
        assert self.password not in done.stdout + done.stderr, f"{script} printed the password"
        return done

    def eventgate(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eventgate.cli", *args], cwd=self.workdir,
                              env=self.env(), capture_output=True, text=True, timeout=900,
                              check=False)

    def query(self, text: str) -> object:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(text).fetchone()
        return row[0] if row else None


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    binaries, tried = locate(os.environ.get("EVENTGATE_PG_BINDIR"))
    if binaries is None:
        pytest.skip(f"needs PostgreSQL server binaries; tried: {'; '.join(tried)}")
    workdir = tmp_path_factory.mktemp("guide")
    with contextlib.ExitStack() as stack:
        cluster = LocalCluster(binaries, tcp=True, in_memory=True)  # small data
        stack.callback(cluster.stop)
        server = cluster.start()
        assert cluster.password
        with server.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
        found = Guide(workdir, workdir / "backups", cluster.password, cluster.port)
        with psycopg.connect(found.dsn, autocommit=True) as conn:
            build_legacy(conn, load_bundle(), SeedPlan(weddings=40, guests_per_wedding=6))
        # The guide's environment setup, its own names and nothing else.
        (workdir / ".env.migration").write_text(
            "DB_HOST=127.0.0.1\n"
            f"DB_PORT={cluster.port}\n"
            f"DB_NAME={DBNAME}\n"
            f"DB_USER={SUPERUSER}\n"
            f"DB_PASSWORD={cluster.password}\n"
            "MIGRATION_MODE=production\n"
            "BACKUP_RETENTION_DAYS=30\n"
            "DRY_RUN=false\n")
        yield found


def guide_format_backup(guide: Guide, stamp: str) -> Path:
    """What the guide's create-backup.sh writes: pg_dump --clean --create --if-exists, gzip,
    and backup_metadata_<stamp>.json (its port and password given, which its line forgets)."""
    with psycopg.connect(guide.dsn) as conn:
        version = conn.info.server_version
    tool = find_tool("pg_dump", f"{version // 10000}.{version % 10000}")
    conninfo, env, _ = tool_connection(guide.dsn, DBNAME)
    dumped = subprocess.run([str(tool.path), "--clean", "--create", "--if-exists", "-d",
                             conninfo], env=env, capture_output=True, check=True)
    gz = guide.backups / f"pre_migration_backup_{stamp}.sql.gz"
    gz.write_bytes(gzip.compress(dumped.stdout))
    (guide.backups / f"backup_metadata_{stamp}.json").write_text(json.dumps({
        "backup_date": "2026-12-02T09:00:00Z", "database_name": DBNAME,
        "backup_file": str(gz), "backup_size": gz.stat().st_size,
        "migration_phase": "pre_migration", "environment": "production"}))
    return gz


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_guide_end_to_end_with_its_own_settings(guide: Guide, tmp_path: Path,
                                                    engine_launcher: Launcher | None) -> None:
    guests = guide.query("SELECT count(*) FROM wedding_invitations")

    # 1. The pre-migration check refuses without a backup (production mode), then passes.
    refused = guide.run("pre-migration-check.sh")
    assert refused.returncode == 1 and "backup" in refused.stdout.lower(), refused.stdout
    out = ok(guide.run("create-backup.sh"))
    assert "verified" in out and list(guide.backups.glob("*.dump"))
    ok(guide.run("pre-migration-check.sh"))
    (guide.workdir / "uploads").mkdir()
    (guide.workdir / "uploads" / "invitation.png").write_bytes(b"\x89PNG not really")
    out = ok(guide.run("backup-application-state.sh", APP_BACKUP_DIR=str(tmp_path / "app")))
    [archive] = (tmp_path / "app").glob("app_state_*.tar.gz")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [".env.migration", "uploads/invitation.png"]
    assert "read back" in out
    # An engineer who followed the guide to the letter has its kind of backup too.
    guide_format_backup(guide, "20261202_090000")

    # 2. The migration, as the guide's schema-migration step runs it.
    ok(guide.eventgate("migrate", "--dry-run"))
    ok(guide.eventgate("migrate", "--execute"))
    ok(guide.eventgate("migrate", "--validate"))
    assert guide.query("SELECT count(*) FROM event_participants") == guests

    # 3. Functional validation against a running engine, as deployed.
    with engine_process(guide.dsn, workdir=tmp_path, launcher=engine_launcher) as engine:
        assert engine.token_keys is not None
        out = ok(guide.run("functional-validation.sh", BASE_URL=engine.url,
                           REPORTS_DIR=str(tmp_path / "reports"),
                           EVENTGATE_TOKEN_KEYS=engine.token_keys.text()))
        assert "functional validation passed" in out
        verdict = json.loads((tmp_path / "reports" / "verdict.json").read_text())
        assert verdict["verdict"] == "go" and DBNAME in verdict["target"], verdict
        # The guide's own validation SQL ran in that gate, through psql.
        junit = (tmp_path / "reports" / "junit.xml").read_text()
        assert "test_the_guides_validation_sql_marks_nothing_failed" in junit

        # 4. Emergency rollback from the guide-format backup, the engine still connected; the
        #    rollback release (the old application, here a stand-in HTTP server) started by
        #    the script's own step.
        port = _free_port()
        started = tmp_path / "old-app.pid"
        try:
            out = ok(guide.run(
                "emergency-rollback.sh", STOP_APP_CMD="true",
                START_ROLLBACK_CMD=(f"{sys.executable} -m http.server {port} --bind 127.0.0.1 "
                                    f">/dev/null 2>&1 & echo $! > {started}"),
                HEALTH_URL=f"http://127.0.0.1:{port}/"))
        finally:
            if started.exists():
                os.kill(int(started.read_text()), signal.SIGTERM)
        assert "pre_migration_backup_20261202_090000.sql.gz" in out
        assert "emergency rollback completed" in out
        # The new engine, still running against the database now back before the migration,
        # says it is not ready rather than serve a schema it does not know.
        assert http_client.get(f"{engine.url}/health", timeout=10).status_code == 503
    assert guide.query("SELECT to_regclass('events')") is None
    assert guide.query("SELECT count(*) FROM wedding_invitations") == guests
    kept = guide.query(f"SELECT count(*) FROM pg_database WHERE datname LIKE "
                       f"'{DBNAME}_pre_restore_%'")
    assert kept == 1, "the database the restore replaced must be kept"

    # 5. Migrated again, then the gradual rollback: 010 down to 006, one at a time.
    ok(guide.eventgate("migrate", "--execute"))
    out = ok(guide.run("gradual-rollback.sh", ROLLBACK_PAUSE="0"))
    assert out.count("[gradual-rollback] rolling back") == 5
    assert guide.query("SELECT to_regclass('events')") is None
    assert guide.query("SELECT count(*) FROM wedding_invitations") == guests


def test_blue_green_deploy_is_the_gated_switch(guide: Guide) -> None:
    """The guide's name for the blue-green deployment runs the gated switch: without green's
    settings it refuses as the switch does, switching nothing."""
    done = guide.run("blue-green-deploy.sh")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "[blue-green]" in done.stdout + done.stderr
    assert "GREEN_DATABASE_URL" in done.stdout + done.stderr
