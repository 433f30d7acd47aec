"""The verdict on data the suite did not tune itself to: each seed profile (one tenant, no
cancelled events, no emails, one giant tenant, no daylight saving, huge guest lists) is seeded,
migrated and served, then gated read-only from outside (`eventgate gate --dsn --base-url`, as
CI gates staging) and must say **go**; after one migrated row is altered behind the change
record, as a defect of the migration would leave it, the gate must say **no-go** naming content
parity."""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from eventgate.bundle import Bundle
from eventgate.engine.identity import KEYS_ENV
from eventgate.engine.launcher import Launcher
from eventgate.engine.process import engine_process
from eventgate.gate.run import run_gate
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database, Databases
from eventgate.pytest_plugin.settings import Settings
from eventgate.seed.load import build_legacy
from eventgate.seed.profiles import PROFILES, profile

pytestmark = pytest.mark.destructive


@pytest.fixture(params=list(PROFILES))
def profiled_db(request: pytest.FixtureRequest, databases: Databases, bundle: Bundle,
                eventgate_settings: Settings) -> Iterator[Database]:
    """A database seeded with one profile (with the run's seed) and migrated by 006-010."""
    plan = profile(request.param)
    if eventgate_settings.seed is not None:
        plan = replace(plan, seed=eventgate_settings.seed)
    db = databases.create(f"profile_{request.param.replace('-', '_')}")
    try:
        with db.connect() as conn:
            build_legacy(conn, bundle, plan)
            Runner(conn, bundle).execute()
        yield db
    finally:
        databases.drop(db)


def _alter_one_migrated_guest(db: Database) -> int:
    with db.connect(autocommit=False) as conn:
        # Behind the change record: what the migration itself would have got wrong.
        conn.execute("SET LOCAL session_replication_role = replica")
        row = conn.execute(
            "UPDATE event_participants SET display_name = display_name || ' (altered)' "
            "WHERE id = (SELECT id FROM event_participants ORDER BY id OFFSET "
            "(SELECT count(*) / 2 FROM event_participants) LIMIT 1) RETURNING id").fetchone()
        conn.commit()
    assert row is not None
    return int(row[0])


def test_each_profile_gates_go_clean_and_no_go_after_one_defect(
        profiled_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        engine_launcher: Launcher | None) -> None:
    with engine_process(profiled_db.dsn, workdir=tmp_path, launcher=engine_launcher) as engine:
        # The gate authenticates as each tenant with tokens it signs with the engine's keys.
        assert engine.token_keys is not None
        monkeypatch.setenv(KEYS_ENV, engine.token_keys.text())
        clean = run_gate(dsn=profiled_db.dsn, base_url=engine.url, bundle=None, scale=None,
                         reports=tmp_path / "clean", pytest_args=[],
                         log=tmp_path / "clean.log",
                         launcher=engine_launcher)
    # What this shape of data could not exercise, for the log of the run (pytest -rA shows it).
    print(f"{profiled_db.name}: go={clean.go}, not proven: "
          + "; ".join(f"{u.test}: {u.reason}" for u in clean.not_proven))
    failures = "\n".join(f"{f.test}: {f.reason}" for f in clean.failed)
    assert clean.go, (f"{clean.problem or ''}\n{failures}\n"
                      f"{(tmp_path / 'clean.log').read_text()[-3000:]}")
    victim = _alter_one_migrated_guest(profiled_db)
    broken = run_gate(dsn=profiled_db.dsn, bundle=None, scale=None, suites=["integrity"],
                      reports=tmp_path / "broken", pytest_args=[], log=tmp_path / "broken.log",
                      launcher=engine_launcher)
    assert not broken.go
    parity = [f for f in broken.failed if "content_parity" in f.test]
    assert parity, [f"{f.test}: {f.reason}" for f in broken.failed]
    assert any(f"id={victim}" in f.reason or "1 changed" in f.reason for f in parity), parity
