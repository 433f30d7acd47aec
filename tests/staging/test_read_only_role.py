"""Staging as it really is: the gate logs in as a role that may only read.

One password-protected cluster on TCP (scram-sha-256) for the module, with PUBLIC's grants on
its databases and on schema public revoked, so the gate's role has exactly what the README's
staging section gives it, created with the SQL read from the README itself: CONNECT, membership
in pg_read_all_data and default_transaction_read_only=on at role level. Not a superuser, owner
of nothing. On it:

- the seeded staging database of test_staging_gate (write watch included): the gate through
  that role says go, nothing is written (triggers, statistics, sequences), and the server's log
  holds no error of the gate's role, so nothing even tried to write;
- roles missing one grant each: the run stops once, before any gate, naming the GRANT;
- a database built by hand with plain SQL on the bundle's baseline (one organiser, three
  weddings in three zones, seven guests each), migrated with `eventgate migrate --execute` and
  served by the reference engine: the gate through the same role says go.

The harness (write watch, counters, running the gate) is test_staging_gate's.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from hand_seeded_legacy import build_by_hand
from psycopg import sql
from test_staging_gate import (
    ROOT,
    SUITES,
    Run,
    Staging,
    _child_env,
    _install_write_watch,
    _junit_cases,
    _prove_the_watch_fires,
    _verdict,
    _wait_for_health,
    assert_nothing_written,
    engine_login,
    measured,
    run,
)

from eventgate.bundle import load_bundle
from eventgate.engine.identity import TokenKeys, issue
from eventgate.engine.process import engine_process
from eventgate.migrate.runner import Runner
from eventgate.pg.access import relations_read, require_read_access
from eventgate.pg.binaries import locate
from eventgate.pg.local import SUPERUSER, LocalCluster
from eventgate.seed.load import build_legacy
from eventgate.seed.scales import scale

pytestmark = pytest.mark.destructive

README = ROOT / "README.md"
ROLE_SQL = re.compile(r"```sql\n-- eventgate gate role: begin\n(?P<sql>.*?)"
                      r"-- eventgate gate role: end\n```", re.S)
README_ROLE, README_DB, README_PASSWORD = ("eventgate_gate", "event_management_engine",
                                           "'change-me'")
# Who wrote a server log line, so the gate's own errors can be told from anyone else's.
LOG_PREFIX = sql.Literal("%m [%p] user=%u db=%d app=%a: ")


def readme_role_sql() -> list[str]:
    """The statements of the README's gate-role block, comments left out."""
    found = ROLE_SQL.search(README.read_text(encoding="utf-8"))
    assert found, "the README's staging section has no gate-role SQL block"
    lines = [line for line in found["sql"].splitlines() if not line.lstrip().startswith("--")]
    statements = [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
    assert statements and statements[0].startswith(f"CREATE ROLE {README_ROLE} "), statements
    return statements


@dataclass
class Cluster:
    server: LocalCluster
    owner_password: str
    gate_password: str
    workdir: Path

    def dsn(self, dbname: str, role: str = SUPERUSER, password: str | None = None) -> str:
        secret = self.owner_password if role == SUPERUSER else password or self.gate_password
        return f"postgresql://{role}:{secret}@127.0.0.1:{self.server.port}/{dbname}"

    def owner(self, dbname: str) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=True, application_name="owner")

    def create_database(self, dbname: str) -> None:
        """A database whose PUBLIC may do nothing (no CONNECT, no TEMP) and may not use schema
        public: what a role can do there, it was granted."""
        with self.owner("postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(dbname)))
        with self.owner(dbname) as conn:
            conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")

    def grant_readme_role(self, dbname: str) -> None:
        """The README's SQL, as it stands: all of it the first time, its database grants for
        every further database (a role is the cluster's, CONNECT the database's)."""
        with self.owner(dbname) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (README_ROLE,)).fetchone()
            for statement in readme_role_sql():
                if exists and " ON DATABASE " not in statement:
                    continue
                statement = statement.replace(f"DATABASE {README_DB} ", f"DATABASE {dbname} ")
                literal = sql.Literal(self.gate_password).as_string(conn)
                conn.execute(statement.replace(README_PASSWORD, literal).encode())

    def log_since(self, offset: int) -> str:
        with self.server.logfile.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.server.logfile.stat().st_size


def serve(stack: contextlib.ExitStack, cluster: Cluster, dbname: str) -> Staging:
    """The engine on `dbname`, as its own login held to row-level security; the gate gets a
    file of one token per tenant (as a staging team hands them out), not the engine's keys."""
    dsn = cluster.dsn(dbname)
    keys = TokenKeys.generate()
    engine = stack.enter_context(engine_process(engine_login(dsn, cluster.server.port),
                                                workdir=cluster.workdir, token_keys=keys))
    _wait_for_health(engine.url)
    with cluster.owner(dbname) as conn:
        tenants = [row[0] for row in conn.execute("SELECT id FROM tenants").fetchall()]
    tokens = cluster.workdir / f"tokens-{dbname}.toml"
    tokens.write_text("".join(f'"{t}" = "{issue(keys, t, ttl_s=7200)}"\n' for t in tenants))
    tokens.chmod(0o600)
    return Staging(dsn, cluster.owner_password, cluster.server.port, engine.url,
                   {"EVENTGATE_TENANT_TOKENS": str(tokens)})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    binaries, tried = locate(None)
    if binaries is None:
        pytest.skip("needs PostgreSQL server binaries to start a password-protected staging "
                    f"cluster; tried: {'; '.join(tried)}")
    server = LocalCluster(binaries, tcp=True, in_memory=True)  # small data
    try:
        server.start()
        assert server.password
        made = Cluster(server, server.password, secrets.token_urlsafe(24),
                       tmp_path_factory.mktemp("read-only-role"))
        with made.owner("postgres") as conn:
            # Autovacuum's ANALYZE writes pg_statistic and would count as a write here; the
            # databases are vacuumed and analysed by hand once built.
            conn.execute("ALTER SYSTEM SET autovacuum = off")
            conn.execute(sql.SQL("ALTER SYSTEM SET log_line_prefix = {}").format(LOG_PREFIX))
            conn.execute("SELECT pg_reload_conf()")
        yield made
    finally:
        server.stop()


@pytest.fixture(scope="module")
def staging(cluster: Cluster) -> Iterator[Staging]:
    """test_staging_gate's staging: seeded, migrated, watched and served by its owner."""
    cluster.create_database("staging")
    bundle = load_bundle()
    with cluster.owner("staging") as conn:
        build_legacy(conn, bundle, scale("small"))
        Runner(conn, bundle).execute()
        conn.execute("VACUUM ANALYZE")
        _install_write_watch(conn)
        _prove_the_watch_fires(conn)
    cluster.grant_readme_role("staging")
    with contextlib.ExitStack() as stack:
        yield serve(stack, cluster, "staging")


def _gate(dsn: str, staging: Staging, reports: Path) -> Run:
    # The DSN by environment, as the switch script passes it: never on a command line.
    return run([sys.executable, "-m", "eventgate.cli", "gate", "--base-url", staging.engine_url,
                "--reports", str(reports)],
               env=_child_env(EVENTGATE_DSN=dsn, **staging.credentials), cwd=reports.parent)


def _assert_no_secret(cluster: Cluster, reports: Path | None, *outputs: str) -> None:
    for secret in (cluster.owner_password, cluster.gate_password):
        assert all(secret not in output for output in outputs), "a password is printed"
        if reports is not None and reports.exists():
            leaking = [str(p) for p in reports.rglob("*") if p.is_file()
                       and secret.encode() in p.read_bytes()]
            assert not leaking, f"a password is written in {leaking}"


def _gate_errors(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if f"user={README_ROLE} " in line and re.search(r"\b(ERROR|FATAL):", line)]


def test_the_readme_role_may_only_read(cluster: Cluster, staging: Staging) -> None:
    """The role is what the issue says staging gives the gate: a login that may read."""
    with cluster.owner("staging") as conn:
        role = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolinherit, "
            "left(rolpassword, 14), (SELECT setconfig FROM pg_db_role_setting "
            "WHERE setrole = r.oid AND setdatabase = 0) FROM pg_authid r WHERE rolname = %s",
            (README_ROLE,)).fetchone()
        owns = conn.execute("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole",
                            (README_ROLE,)).fetchone()
        members = conn.execute("SELECT array_agg(pg_get_userbyid(roleid)::text ORDER BY 1) "
                               "FROM pg_auth_members WHERE member = %s::regrole",
                               (README_ROLE,)).fetchone()
    # BYPASSRLS: the gates read every tenant's rows of the tables under row-level security.
    assert role == (False, False, False, True, True, "SCRAM-SHA-256$",
                    ["default_transaction_read_only=on"]), role
    assert owns == (0,) and members == (["pg_read_all_data"],), (owns, members)
    offset = cluster.log_size()
    with psycopg.connect(cluster.dsn("staging", README_ROLE), autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE t ()")
    # The server's log names the role of a refused write: the gate's run is held to that.
    refused = _gate_errors(cluster.log_since(offset))
    assert len(refused) == 1 and "read-only transaction" in refused[0], refused
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(cluster.dsn("staging", README_ROLE, "not-the-password"),
                        connect_timeout=5)


def test_the_gate_through_the_read_only_role_says_go_and_writes_nothing(
        cluster: Cluster, staging: Staging, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    offset = cluster.log_size()
    with measured(staging) as readings:
        gate = _gate(cluster.dsn("staging", README_ROLE), staging, reports)
    print(f"gate through {README_ROLE}: {gate.seconds:.1f} s")
    log = cluster.log_since(offset)
    assert gate.returncode == 0, gate.tail()

    assert_nothing_written(staging, readings)
    # Nothing was refused either: no write tried in a read-only transaction, no permission
    # missing, no error at all in the gate role's sessions.
    assert _gate_errors(log) == [], "\n".join(_gate_errors(log))

    verdict = _verdict(reports)
    assert verdict["verdict"] == "go" and verdict["failed"] == [], verdict
    assert verdict["target"] == f"external {README_ROLE}@127.0.0.1:{cluster.server.port}/staging"
    suites = verdict["suites"]
    assert isinstance(suites, dict)
    assert all(suites[s]["passed"] > 0 and suites[s]["failed"] == 0 for s in SUITES), suites
    # What a role that may only read cannot prove: what the engine's role sees of each tenant
    # table (it would have to act as that role; docs/tenant-isolation.md); and with a file of
    # the real tenants' tokens, how the engine answers a token of a tenant that does not exist.
    cases = _junit_cases(reports / "junit.xml")
    unproven = {name for (_, name), outcome in cases.items() if outcome != "passed"}
    assert unproven == {f"test_each_tenant_table_shows_the_engine_its_tenants_rows_only[{t}]"
                        for t in ("events", "event_participants", "event_sections")} | {
        "test_another_tenants_event_is_not_found[unknown-tenant]"}, unproven
    assert "GRANT event_engine TO eventgate_gate lets it" in gate.stdout, gate.tail()
    _assert_no_secret(cluster, reports, gate.stdout, gate.stderr)


GRANTS_BUT = {  # the README's grants but one
    "connect": ["GRANT pg_read_all_data TO {}"],
    "read": ["GRANT CONNECT ON DATABASE staging TO {}"],
    "ledger": ["GRANT CONNECT ON DATABASE staging TO {}", "GRANT USAGE ON SCHEMA public TO {}",
               "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}"],
}


def _role_missing(cluster: Cluster, missing: str) -> str:
    """A login role with the README's grants but one; returns its name."""
    role = f"gate_without_{missing}"
    with cluster.owner("staging") as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(cluster.gate_password)))
        for grant in GRANTS_BUT[missing]:
            conn.execute(sql.SQL(grant).format(sql.Identifier(role)))
    return role


def _schemas_read() -> list[str]:
    """The schemas of the relations the gates read, in the order the error names them."""
    return list(dict.fromkeys(n.rpartition(".")[0] or "public"
                              for n in relations_read(load_bundle())))


@pytest.mark.parametrize(("missing", "command"), [
    ("read", "gate"), ("ledger", "pytest"), ("connect", "pytest")])
def test_a_role_missing_a_grant_is_stopped_once_naming_the_grant(
        cluster: Cluster, staging: Staging, tmp_path: Path, missing: str, command: str) -> None:
    role = _role_missing(cluster, missing)
    dsn = cluster.dsn("staging", role)
    reports = tmp_path / "reports"
    if command == "gate":
        done = _gate(dsn, staging, reports)
    else:
        done = run([sys.executable, "-m", "pytest", "-m", "green", "-p", "no:cacheprovider",
                    "-q", f"--alluredir={reports / 'allure-results'}", "tests/integrity"],
                   env=_child_env(EVENTGATE_DSN=dsn, EVENTGATE_BASE_URL=staging.engine_url,
                                  EVENTGATE_REPORTS=str(reports)), cwd=ROOT)
    output = done.stdout + done.stderr
    assert done.returncode == (1 if command == "gate" else 4), done.tail()
    widest = f"GRANT pg_read_all_data TO {role};  (PostgreSQL 14+) or "
    # The "ledger" role may read schema public only: the ledger, and any other schema the
    # bundle's tables are in (its change log's), are what it lacks.
    elsewhere = [n for n in relations_read(load_bundle()) if "." in n]
    others = [s for s in _schemas_read() if s != "public"]
    says = {
        "read": [f"the gate's role '{role}' cannot read table event_types (no USAGE on schema "
                 "public): permission denied; nor ",
                 ", table eventgate_ledger.migration_ledger\ngrant it with: " + widest
                 + f"GRANT USAGE ON SCHEMA {', '.join(_schemas_read())} TO {role}; GRANT "
                 f"SELECT ON ALL TABLES IN SCHEMA {', '.join(_schemas_read())} TO {role};"],
        "ledger": [f"the gate's role '{role}' cannot read table {elsewhere[0]} (no USAGE on "
                   f"schema {elsewhere[0].partition('.')[0]}): permission denied",
                   "\ngrant it with: " + widest + f"GRANT USAGE ON SCHEMA {', '.join(others)} "
                   f"TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {', '.join(others)} TO "
                   f"{role};"],
        "connect": [f"the role '{role}' may not connect to database staging: permission denied "
                    "(no CONNECT privilege); grant it with: GRANT CONNECT ON DATABASE staging "
                    f"TO {role};"],
    }[missing]
    assert all(part in output for part in says), done.tail()
    # Once, before any gate ran: no test failed with a permission error of its own.
    assert output.count("Exit: eventgate:") == 1, done.tail()
    assert "InsufficientPrivilege" not in output, done.tail()
    assert not re.search(r"\b[1-9][0-9]* (passed|failed)", output), done.tail()
    if command == "gate":
        verdict = _verdict(reports)
        assert verdict["verdict"] == "no-go" and verdict["failed"] == [], verdict
        assert "did not run to completion" in str(verdict["problem"]), verdict
    _assert_no_secret(cluster, reports, done.stdout, done.stderr)


def test_the_grants_before_postgresql_14_are_enough_for_the_check(
        cluster: Cluster, staging: Staging) -> None:
    """The README's alternative to pg_read_all_data passes the privilege check as it stands."""
    readme = " ".join(README.read_text(encoding="utf-8").split())
    grants = re.search(r"replace the `pg_read_all_data` line with `(.+?)`", readme)
    assert grants, "the README names no alternative to pg_read_all_data"
    role = "gate_before_14"
    with cluster.owner("staging") as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(cluster.gate_password)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE staging TO {}").format(
            sql.Identifier(role)))
        conn.execute(grants[1].replace(README_ROLE, role).encode())
    require_read_access(cluster.dsn("staging", role), load_bundle())


@pytest.fixture(scope="module")
def handmade(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    """The hand-built database, migrated by `eventgate migrate --execute` and served."""
    cluster.create_database("handmade")
    with cluster.owner("handmade") as conn:
        build_by_hand(conn)
        assert conn.execute("SELECT count(*), count(*) FILTER (WHERE email IS NULL) FROM "
                            "wedding_invitations").fetchone() == (21, 2)
    migrated = run([sys.executable, "-m", "eventgate.cli", "migrate", "--execute"],
                   env=_child_env(EVENTGATE_DSN=cluster.dsn("handmade")),
                   cwd=tmp_path_factory.mktemp("migrate"))
    assert migrated.returncode == 0, migrated.tail()
    _assert_no_secret(cluster, None, migrated.stdout, migrated.stderr)
    with cluster.owner("handmade") as conn:
        conn.execute("VACUUM ANALYZE")
    cluster.grant_readme_role("handmade")
    with contextlib.ExitStack() as stack:
        yield serve(stack, cluster, "handmade")


def _gates(verdict: dict[str, object], key: str) -> list[str]:
    """A verdict's failed or not-proven gates, one line each."""
    gates = verdict.get(key) or []
    assert isinstance(gates, list), verdict
    return [f"{g['suite']}: {g['test']}: {g['reason']}" for g in gates]


def test_a_hand_seeded_database_migrated_by_eventgate_gets_go_through_the_read_only_role(
        cluster: Cluster, handmade: Staging, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    gate = _gate(cluster.dsn("handmade", README_ROLE), handmade, reports)
    print(f"gate on the hand-seeded database: {gate.seconds:.1f} s")
    verdict = _verdict(reports)
    failed = "\n".join(_gates(verdict, "failed"))
    assert gate.returncode == 0 and verdict["verdict"] == "go", f"{failed}\n{gate.tail()}"
    # Gates this small database cannot prove (one tenant, ...) are named, not failed.
    for unproven in _gates(verdict, "not_proven"):
        print(f"not proven on the hand-seeded database: {unproven}")
    _assert_no_secret(cluster, reports, gate.stdout, gate.stderr)
