"""The staging gate, end to end: `eventgate gate --dsn … --base-url …` against an environment it
does not own, and the blue-green switch that trusts its verdict.

"Staging" here is a separate, password-protected PostgreSQL cluster listening on TCP, holding
the seeded legacy database migrated by 006-010, with the reference engine running as its own
process against it; the gate reaches both only through the DSN and the URL, as CI reaches
green. Before the gate runs, the staging database gets a write watch installed by its owner:

- AFTER INSERT/UPDATE/DELETE/TRUNCATE FOR EACH STATEMENT triggers on every table (the new
  tables, tenants, the legacy *_backup tables, the ledger) and event triggers on
  ddl_command_end and sql_drop, all writing to write_watch.writes. Statement triggers fire even
  when a statement touches no row, so any write statement that ran is recorded; this is the
  primary proof, exact and immediate.
- pg_stat_database's tup_inserted/tup_updated/tup_deleted (and, to name the relation,
  pg_stat_all_tables, catalogs included), read before and after; they also count rows written
  by transactions that rolled back, which leave no trigger row. They are flushed late: a
  backend that exits flushes before it leaves pg_stat_activity (pgstat_shutdown_hook is a
  before_shmem_exit callback, the pg_stat_activity slot is cleared by an on_shmem_exit one),
  and an idle backend flushes at most PGSTAT_IDLE_INTERVAL (10 s) after going idle. So the
  reading after the gate waits until the gate's sessions are gone and the engine's pooled
  sessions have been idle for longer than that (see `settle`).
- every sequence's last_value, since nextval() writes no table.

Marked `destructive`, not green: it starts and writes its own cluster (seeds, migrates, breaks
data on purpose), which is no business of a run pointed at a real --dsn; it touches nothing but
the environment it creates, so it runs in the default suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from eventgate import http_client
from eventgate.bundle import load_bundle
from eventgate.engine.identity import KEYS_ENV
from eventgate.engine.process import engine_process
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.local import SUPERUSER, LocalCluster
from eventgate.pg.roles import ENGINE_LOGIN
from eventgate.pytest_plugin.fix_db import session_plan
from eventgate.pytest_plugin.settings import Settings
from eventgate.seed.load import build_legacy

pytestmark = pytest.mark.destructive

ROOT = Path(__file__).resolve().parents[2]
SWITCH_SCRIPT = ROOT / "deploy" / "blue-green-switch.sh"
SUITES = ("integrity", "compat", "performance", "functional")
DBNAME = "staging"
# The engine names its pooled sessions so (engine/app.py); everything else on the staging
# database during a gate run is the gate.
ENGINE_APPLICATION = "eventgate engine"
# PGSTAT_IDLE_INTERVAL (pgstat.c): an idle backend flushes its pending statistics at most this
# long after going idle; plus a margin for the timer and our polling.
STATS_IDLE_FLUSH_S = 10.0 + 1.5
GATE_TIMEOUT_S = 300.0
WATCHED = {"public.tenants", "public.event_types", "public.events", "public.event_participants",
           "public.event_sections", "public.wedding_events_backup",
           "public.wedding_invitations_backup", "public.wedding_sections_backup",
           "eventgate_ledger.migration_ledger"}

WATCH_SETUP = (
    "CREATE SCHEMA write_watch",
    """CREATE TABLE write_watch.writes (
           id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
           at timestamptz NOT NULL DEFAULT clock_timestamp(),
           kind text NOT NULL,
           object text NOT NULL,
           operation text NOT NULL,
           role name NOT NULL DEFAULT session_user,
           application text DEFAULT current_setting('application_name'),
           query text DEFAULT current_query())""",
    # SECURITY DEFINER: whoever writes, the record is made (as its owner), never refused.
    """CREATE FUNCTION write_watch.record_dml() RETURNS trigger
       LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
       BEGIN
           INSERT INTO write_watch.writes (kind, object, operation)
           VALUES ('dml', format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), TG_OP);
           RETURN NULL;
       END $$""",
    """CREATE FUNCTION write_watch.record_ddl() RETURNS event_trigger
       LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
       BEGIN
           IF TG_EVENT = 'sql_drop' THEN
               INSERT INTO write_watch.writes (kind, object, operation)
               SELECT 'ddl', coalesce(object_identity, object_type), TG_TAG
               FROM pg_event_trigger_dropped_objects();
           ELSE
               -- One row even for a command that reports no object.
               INSERT INTO write_watch.writes (kind, object, operation)
               SELECT 'ddl', coalesce(string_agg(coalesce(object_identity, object_type), ', '),
                                      '?'), TG_TAG
               FROM pg_event_trigger_ddl_commands();
           END IF;
       END $$""",
)
# Event triggers last: CREATE EVENT TRIGGER fires none, so the watch starts out empty.
WATCH_EVENT_TRIGGERS = (
    "CREATE EVENT TRIGGER write_watch_ddl ON ddl_command_end "
    "EXECUTE FUNCTION write_watch.record_ddl()",
    "CREATE EVENT TRIGGER write_watch_drop ON sql_drop EXECUTE FUNCTION write_watch.record_ddl()",
)


@dataclass(frozen=True)
class Staging:
    dsn: str  # as a deployment holds it: a TCP URL with the owner's password
    password: str
    port: int
    engine_url: str
    # The settings that give the gate its tenant credentials (the engine's keys, or a file of
    # tokens), as its environment holds them.
    credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def owner(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True, application_name="staging owner")


@dataclass(frozen=True)
class Counters:
    database: tuple[int, int, int]  # pg_stat_database: tup_inserted, tup_updated, tup_deleted
    relations: dict[str, tuple[int, int, int]]  # pg_stat_all_tables, catalogs included
    sequences: dict[str, int | None]
    last_write: int  # newest write_watch.writes id

    def changes_since(self, before: Counters) -> dict[str, object]:
        """Everything that moved, by name; empty when nothing was written."""
        changed: dict[str, object] = {}
        if self.database != before.database:
            changed["pg_stat_database (ins, upd, del)"] = (before.database, self.database)
        for name, now in self.relations.items():
            then = before.relations.get(name, (0, 0, 0))
            if now != then:
                changed[name] = tuple(b - a for a, b in zip(then, now, strict=True))
        for name, value in self.sequences.items():
            if before.sequences.get(name) != value:
                changed[f"sequence {name}"] = (before.sequences.get(name), value)
        return changed


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def tail(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n" \
               f"{self.stderr[-4000:]}"


def _install_write_watch(conn: psycopg.Connection) -> set[str]:
    """The triggers of the module docstring; returns the tables watched."""
    with conn.transaction():
        for statement in WATCH_SETUP:
            conn.execute(statement)
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'write_watch' "
            "AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'").fetchall()
        for schema, table in tables:
            conn.execute(sql.SQL(
                "CREATE TRIGGER zz_write_watch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                "ON {}.{} FOR EACH STATEMENT EXECUTE FUNCTION write_watch.record_dml()"
            ).format(sql.Identifier(schema), sql.Identifier(table)))
            # ALWAYS: it fires under session_replication_role = replica too, which the
            # sabotage below uses to look like a defect of the migration.
            conn.execute(sql.SQL("ALTER TABLE {}.{} ENABLE ALWAYS TRIGGER zz_write_watch")
                         .format(sql.Identifier(schema), sql.Identifier(table)))
        for statement in WATCH_EVENT_TRIGGERS:
            conn.execute(statement)
    return {f"{schema}.{table}" for schema, table in tables}


def _prove_the_watch_fires(conn: psycopg.Connection) -> None:
    """A write and a DDL command inside a transaction that is rolled back: both recorded while
    it lasts, nothing left behind."""
    try:
        with conn.transaction():
            conn.execute("UPDATE tenants SET id = id WHERE false")
            conn.execute("CREATE TABLE public.write_watch_probe ()")
            seen = conn.execute("SELECT kind, object, operation FROM write_watch.writes "
                                "ORDER BY id").fetchall()
            raise psycopg.Rollback()
    finally:
        assert conn.execute("SELECT count(*) FROM write_watch.writes").fetchone() == (0,)
    assert seen == [("dml", "public.tenants", "UPDATE"),
                    ("ddl", "public.write_watch_probe", "CREATE TABLE")], seen


def _writes_since(conn: psycopg.Connection, last: int) -> list[tuple[object, ...]]:
    return conn.execute("SELECT kind, object, operation, application, left(query, 200) "
                        "FROM write_watch.writes WHERE id > %s ORDER BY id", (last,)).fetchall()


def assert_nothing_written(staging: Staging, readings: list[Counters]) -> None:
    """Neither the write watch nor the server's statistics saw a write between the readings."""
    before, after = readings
    with staging.owner() as conn:
        writes = _writes_since(conn, before.last_write)
    assert writes == [], f"the gate run wrote to staging: {writes}"
    assert after.changes_since(before) == {}, "the statistics count writes during the gate run"


def settle(conn: psycopg.Connection, *, engine_too: bool, timeout: float = 60.0) -> None:
    """Wait until the statistics of everyone but the engine (and, with engine_too, the
    engine's) are flushed: their sessions have ended, or have been idle longer than
    PGSTAT_IDLE_INTERVAL."""
    deadline = time.monotonic() + timeout
    while True:
        sessions = conn.execute(
            "SELECT pid, application_name, state, "
            "extract(epoch FROM clock_timestamp() - state_change)::float8 "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchall()
        busy = [s for s in sessions if s[1] != ENGINE_APPLICATION or (
            engine_too and not (s[2] == "idle" and (s[3] or 0) >= STATS_IDLE_FLUSH_S))]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"sessions on the staging database did not settle within "
                                 f"{timeout:.0f} s: {busy}")
        time.sleep(0.25)


def counters(conn: psycopg.Connection) -> Counters:
    # Each statement is its own transaction (autocommit); clearing the snapshot as well keeps
    # stats_fetch_consistency from ever serving an older reading.
    conn.execute("SELECT pg_stat_clear_snapshot()")
    database = conn.execute("SELECT tup_inserted, tup_updated, tup_deleted FROM "
                            "pg_stat_database WHERE datname = current_database()").fetchone()
    assert database is not None
    relations = {str(name): (int(i), int(u), int(d)) for name, i, u, d in conn.execute(
        "SELECT format('%I.%I', schemaname, relname), n_tup_ins, n_tup_upd, n_tup_del "
        "FROM pg_stat_all_tables").fetchall()}
    sequences = {str(name): value for name, value in conn.execute(
        "SELECT format('%I.%I', schemaname, sequencename), last_value "
        "FROM pg_sequences").fetchall()}
    last = conn.execute("SELECT coalesce(max(id), 0) FROM write_watch.writes").fetchone()
    assert last is not None
    return Counters((int(database[0]), int(database[1]), int(database[2])), relations,
                    sequences, int(last[0]))


@contextlib.contextmanager
def measured(staging: Staging, *, engine_too: bool = True) -> Iterator[list[Counters]]:
    """Counters before and after the block, read once every session's statistics are in (the
    engine's as well with engine_too); yields a list holding [before, after] after the
    block."""
    readings: list[Counters] = []
    with staging.owner() as conn:
        # The engine's own pending statistics are left alone here: anything it wrote before
        # this reading would be counted below as well, and fail the test, never hide a write.
        settle(conn, engine_too=False)
        readings.append(counters(conn))
    yield readings
    with staging.owner() as conn:
        settle(conn, engine_too=engine_too)
        readings.append(counters(conn))


def engine_login(owner_dsn: str, port: int) -> str:
    """A password login for the engine, a member of the bundle's engine role and nothing else,
    as a deployment gives its engine: held to the tables' row-level security."""
    security = load_bundle().expectations.row_security
    assert security is not None
    password = secrets.token_urlsafe(16)
    dbname = psycopg.conninfo.conninfo_to_dict(owner_dsn)["dbname"]
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                              (ENGINE_LOGIN,)).fetchone()
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}" if exists else
                             "CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(ENGINE_LOGIN), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(security.engine_role),
                                                      sql.Identifier(ENGINE_LOGIN)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(str(dbname)), sql.Identifier(ENGINE_LOGIN)))
    return f"postgresql://{ENGINE_LOGIN}:{password}@127.0.0.1:{port}/{dbname}"


def _child_env(**extra: str) -> dict[str, str]:
    """This environment without the outer run's eventgate and pytest settings (an xdist
    worker's name, PYTEST_ADDOPTS, a --dsn given to the outer run): the gate must see only
    what it is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTGATE_", "PYTEST_"))}
    env.update(extra)
    return env


def _end(child: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM to the child's whole process group (the gate's pytest included; both turn it
    into an orderly exit), SIGKILL if that does not do within 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        return child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        return child.communicate()


def run(command: list[str], *, env: dict[str, str], cwd: Path,
        timeout: float = GATE_TIMEOUT_S) -> Run:
    """Run to completion. In a session of its own, so that on a timeout or an interrupt of this
    test run the whole tree is ended and nothing is left running."""
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _end(child)
        raise AssertionError(f"{command[:4]} did not finish within {timeout:.0f} s\n"
                             f"{Run(-1, stdout, stderr, timeout).tail()}") from None
    except BaseException:
        _end(child)
        raise
    return Run(child.returncode, stdout, stderr, time.monotonic() - started)


def _wait_for_health(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            response = http_client.get(f"{url}/health", timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        time.sleep(0.1)
    raise AssertionError(f"the staging engine's /health never said 200: {last}")


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory,
            eventgate_settings: Settings) -> Iterator[Staging]:
    """Cluster, seeded and migrated database, write watch and engine, built once for the
    module and torn down (engine, then cluster) however the tests end."""
    binaries, tried = locate(os.environ.get("EVENTGATE_PG_BINDIR"))
    if binaries is None:
        pytest.skip("needs PostgreSQL server binaries to start a password-protected staging "
                    f"cluster; tried: {'; '.join(tried)}")
    workdir = tmp_path_factory.mktemp("staging")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        cluster = LocalCluster(binaries, tcp=True, in_memory=True)  # small data
        stack.callback(cluster.stop)
        server = cluster.start()
        assert cluster.password
        with server.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
        dsn = f"postgresql://{SUPERUSER}:{cluster.password}@127.0.0.1:{cluster.port}/{DBNAME}"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsn.replace(cluster.password, "not-the-password"), connect_timeout=5)

        bundle = load_bundle()
        with psycopg.connect(dsn, autocommit=True) as conn:
            # The run's data (its scale or profile, and its seed) rather than seed 42's: the
            # staging gate must say go on data nobody chose for it, and --seed replays it.
            build_legacy(conn, bundle, session_plan(eventgate_settings))
            Runner(conn, bundle).execute()
            engine_dsn = engine_login(dsn, cluster.port)
            # What autovacuum would have done by now on a real staging; then autovacuum stays
            # off, because its ANALYZE writes pg_statistic and would count as a write here.
            conn.execute("VACUUM ANALYZE")
            conn.execute("ALTER SYSTEM SET autovacuum = off")
            conn.execute("SELECT pg_reload_conf()")
            watched = _install_write_watch(conn)
            assert not WATCHED - watched, f"not watched: {WATCHED - watched}"
            _prove_the_watch_fires(conn)

        engine = stack.enter_context(engine_process(engine_dsn, workdir=workdir))
        _wait_for_health(engine.url)
        print(f"staging built, migrated and served in {time.monotonic() - started:.1f} s")
        assert engine.token_keys is not None
        staged = Staging(dsn, cluster.password, cluster.port, engine.url,
                         {KEYS_ENV: engine.token_keys.text()})
        with staged.owner() as conn:
            at_start = _writes_since(conn, 0)
        assert at_start == [], f"the engine wrote while starting: {at_start}"
        yield staged


def _non_green_tests() -> set[tuple[str, str]]:
    """(classname, name) of every test in the gate's suites that is not green, collected
    without running anything, as junit would name them."""
    done = run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                "-m", "not green", *(f"tests/{s}" for s in SUITES)],
               env=_child_env(), cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.tail()
    found = set()
    for line in done.stdout.splitlines():
        if "::" not in line:
            continue
        path, *classes, name = line.strip().split("::")
        found.add((".".join([path.removesuffix(".py").replace("/", "."), *classes]), name))
    return found


def _junit_cases(path: Path) -> dict[tuple[str, str], str]:
    """(classname, name) -> outcome of every test case in a junit file."""
    outcome = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = (case.get("classname") or "", case.get("name") or "")
        outcome[key] = next((child.tag for child in case
                             if child.tag in ("failure", "error", "skipped")), "passed")
    return outcome


def _assert_no_password(staging: Staging, reports: Path, *outputs: str) -> None:
    secret = staging.password.encode()
    leaking = [str(p.relative_to(reports)) for p in sorted(reports.rglob("*"))
               if p.is_file() and secret in p.read_bytes()]
    assert not leaking, f"the password is written in {leaking}"
    for output in outputs:
        assert staging.password not in output, "the password is printed"


def _switch(staging: Staging, tmp_path: Path, **env: str) -> tuple[Run, Path, set[str]]:
    """deploy/blue-green-switch.sh with every Docker step replaced by a marker file; env
    overrides the script's settings."""
    reports, marks = tmp_path / "reports", tmp_path / "marks"
    marks.mkdir()
    settings = {
        "GREEN_DATABASE_URL": staging.dsn, "GREEN_BASE_URL": staging.engine_url,
        "REPORTS_DIR": str(reports), "HEALTH_TIMEOUT": "30", "HEALTH_INTERVAL": "0.2",
        "EVENTGATE_CMD": f"{sys.executable} -m eventgate.cli",
        "DEPLOY_GREEN_CMD": f"touch {marks / 'deployed'}",
        "SWITCH_TRAFFIC_CMD": f"touch {marks / 'switched'}",
        "STOP_BLUE_CMD": f"touch {marks / 'blue-stopped'}",
        # The watch after the switch, short: tests/watch holds it to a degrading green.
        "WATCH_DURATION": "2s", "WATCH_INTERVAL": "0.5s",
        "SWITCH_BACK_CMD": f"touch {marks / 'switched-back'}", **env}
    result = run(["bash", str(SWITCH_SCRIPT)], env=_child_env(**staging.credentials, **settings),
                 cwd=tmp_path)
    return result, reports, {p.name for p in marks.iterdir()}


def _verdict(reports: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((reports / "verdict.json").read_text())
    return loaded


def test_the_gate_says_go_on_clean_staging_and_writes_nothing(
        staging: Staging, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    with measured(staging) as readings:
        gate = run([sys.executable, "-m", "eventgate.cli", "gate", "--dsn", staging.dsn,
                    "--base-url", staging.engine_url, "--reports", str(reports)],
                   env=_child_env(**staging.credentials), cwd=tmp_path)
    print(f"gate run on clean staging: {gate.seconds:.1f} s")
    assert gate.returncode == 0, gate.tail()

    assert_nothing_written(staging, readings)

    verdict = _verdict(reports)
    assert verdict["verdict"] == "go" and verdict["failed"] == []
    assert verdict["target"] == f"external {SUPERUSER}@127.0.0.1:{staging.port}/{DBNAME}"
    suites = verdict["suites"]
    assert isinstance(suites, dict) and set(SUITES) <= set(suites)
    assert all(suites[s]["passed"] > 0 and suites[s]["failed"] == 0 for s in SUITES), suites
    assert all(suites[s]["duration_s"] > 0 for s in SUITES), suites
    assert isinstance(verdict["duration_s"], float) and verdict["duration_s"] > 0

    # Only green tests ran: the others are deselected by the gate's marker expression
    # ("green and not slow"), so they never reach junit at all, not even as skipped.
    ran = _junit_cases(reports / "junit.xml")
    non_green = _non_green_tests()
    assert non_green, "no non-green test in the suites, so this proves nothing"
    assert not set(ran) & non_green, f"non-green tests ran: {sorted(set(ran) & non_green)}"
    deselected = re.search(r"(\d+) deselected", gate.stdout)
    assert deselected and int(deselected[1]) >= len(non_green), gate.tail()
    assert set(ran.values()) == {"passed"}, ran

    assert any((reports / "checks").rglob("*.json")), "the checks' JSON is not with the reports"
    assert any((reports / "allure-results").iterdir())
    _assert_no_password(staging, reports, gate.stdout, gate.stderr)


def test_the_switch_goes_ahead_on_go(staging: Staging, tmp_path: Path) -> None:
    result, reports, marks = _switch(staging, tmp_path)
    print(f"switch script, go: {result.seconds:.1f} s")
    assert result.returncode == 0, result.tail()
    assert marks == {"deployed", "switched", "blue-stopped"}
    assert _verdict(reports)["verdict"] == "go"
    assert "[blue-green] verdict: GO" in result.stdout
    redacted = f"postgresql://{SUPERUSER}:****@127.0.0.1:{staging.port}/{DBNAME}"
    assert f"green database: {redacted}" in result.stdout
    _assert_no_password(staging, reports, result.stdout, result.stderr)


def test_the_switch_is_refused_on_no_go_naming_the_broken_gate(
        staging: Staging, tmp_path: Path) -> None:
    # The engine is not used meanwhile, so its statistics need not be waited for.
    with measured(staging, engine_too=False) as readings, staging.owner() as conn, \
            conn.transaction():
        # One guest that has its legacy row: the migration now looks as if it had lost it.
        # Behind the change record (replica role): a row the application deleted since the
        # migration is a legitimate change, one gone without a recorded write is a defect.
        conn.execute("SET LOCAL session_replication_role = replica")
        deleted = conn.execute(
            "DELETE FROM event_participants p WHERE id = (SELECT min(id) FROM event_participants"
            " JOIN wedding_invitations_backup USING (id)) RETURNING to_jsonb(p)").fetchone()
        assert deleted is not None
        lost = Jsonb(deleted[0])
    before, after = readings
    try:
        # The watch sees a write when there is one: the trigger names it, the counters count it.
        with staging.owner() as conn:
            writes = _writes_since(conn, before.last_write)
        assert [w[:3] for w in writes] == [("dml", "public.event_participants", "DELETE")]
        assert after.changes_since(before)["public.event_participants"] == (0, 0, 1)

        result, reports, marks = _switch(staging, tmp_path)
        print(f"switch script, no-go: {result.seconds:.1f} s")
        assert result.returncode == 1, result.tail()
        assert marks == {"deployed"}, "traffic was switched or blue stopped on a no-go"

        verdict = _verdict(reports)
        assert verdict["verdict"] == "no-go"
        failed = verdict["failed"]
        assert isinstance(failed, list)
        parity = [f for f in failed if f["suite"] == "integrity" and (
            f["test"].startswith("test_row_counts::test_every_legacy_row_has_a_migrated_row")
            or f["test"].startswith("test_content_parity::test_every_legacy_value_arrived"))]
        assert parity, f"no row-count or content parity gate failed: {failed}"
        assert all("\n" not in f["reason"] and "event_participants" in f["reason"]
                   for f in parity), parity
        for gate in parity:
            assert f"FAILED integrity: {gate['test']}" in result.stdout, result.tail()
        assert "REFUSED: the staging gate says NO-GO" in result.stderr, result.tail()
        _assert_no_password(staging, reports, result.stdout, result.stderr)
    finally:
        # Put the guest back, so the module's other tests see clean staging in any order.
        with staging.owner() as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("INSERT INTO event_participants SELECT * FROM "
                         "jsonb_populate_record(NULL::event_participants, %s)", (lost,))


# A stand-in for `eventgate gate`, for the ways a verdict can be unusable: it records how it was
# called, then leaves the verdict FAKE_MODE says.
FAKE_GATE = """
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
reports = Path(args[args.index("--reports") + 1])
Path(os.environ["FAKE_LOG"]).write_text(json.dumps(
    {"argv": sys.argv, "dsn": os.environ.get("EVENTGATE_DSN")}))
mode = os.environ["FAKE_MODE"]
go = {"verdict": "go", "target": "external u@h:5432/db", "duration_s": 1.0,
      "pytest_exit_code": 0, "suites": {}, "failed": [], "problem": None}
if mode == "crash":
    sys.exit("Traceback: the gate died before its verdict")
if mode == "stale":
    sys.exit(0)  # says nothing, writes nothing: the go left from last time must not count
if mode == "garbage":
    (reports / "verdict.json").write_text('{"verdict": "go", ')
    sys.exit(1)
if mode == "go-but-exit-1":
    (reports / "verdict.json").write_text(json.dumps(go))
    sys.exit(1)
if mode == "go-about-embedded":
    (reports / "verdict.json").write_text(json.dumps({**go, "target": "embedded PostgreSQL"}))
    sys.exit(0)
"""


@pytest.mark.parametrize(("mode", "says"), [
    ("crash", "no verdict: "),
    ("stale", "no verdict: "),
    ("garbage", "unreadable verdict "),
    ("go-but-exit-1", "REFUSED: the gate exited with 1 although verdict.json says go"),
    ("go-about-embedded", "not about green's database"),
])
def test_the_switch_is_refused_without_a_usable_go(staging: Staging, tmp_path: Path,
                                                    mode: str, says: str) -> None:
    fake, log = tmp_path / "fake_gate.py", tmp_path / "fake.json"
    fake.write_text(FAKE_GATE)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "verdict.json").write_text(json.dumps({"verdict": "go", "target": "external x"}))
    result, reports, marks = _switch(staging, tmp_path, EVENTGATE_CMD=f"{sys.executable} {fake}",
                                     FAKE_MODE=mode, FAKE_LOG=str(log))
    assert result.returncode == 1, result.tail()
    assert marks == {"deployed"}, "traffic was switched or blue stopped without a usable go"
    assert says in result.stdout + result.stderr, result.tail()
    assert "traffic stays on blue" in result.stderr
    called = json.loads(log.read_text())
    # The DSN reaches the gate through its environment, never its command line (ps shows that).
    assert called["dsn"] == staging.dsn
    assert not any(staging.password in arg for arg in called["argv"]), called["argv"]
    if mode == "stale":
        assert not (reports / "verdict.json").exists()


def test_the_switch_is_refused_when_green_never_gets_healthy(staging: Staging,
                                                             tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, never accepting
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/health"
        result, reports, marks = _switch(staging, tmp_path, HEALTH_URL=closed,
                                         HEALTH_TIMEOUT="1")
    assert result.returncode == 3, result.tail()
    assert marks == {"deployed"}
    assert f"green did not answer {closed} with 2xx within 1 s" in result.stderr
    assert not reports.exists(), "the gate ran although green was not healthy"


def test_the_switch_needs_both_green_urls(staging: Staging, tmp_path: Path) -> None:
    result, _, marks = _switch(staging, tmp_path, GREEN_DATABASE_URL="")
    assert result.returncode == 2, result.tail()
    assert marks == set()
    assert "set GREEN_DATABASE_URL" in result.stderr
