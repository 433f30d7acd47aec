"""The verdict while the applications keep writing: after the migration the old application
writes through the compatibility views and the engine through its API (inserts, updates and
deletes), as the blue-green window has them do. The gate, run from outside as CI runs it, says
**go** and reports what changed since the migration by whom; one migrated row then altered
behind the change record, as a defect of the migration would leave it, makes it **no-go**
naming content parity."""

import json
import re
from pathlib import Path

import httpx
import pytest

from eventgate import http_client
from eventgate.engine.launcher import Launcher
from eventgate.engine.process import RunningEngine, engine_process
from eventgate.gate.run import run_gate
from eventgate.pg.databases import Database, Databases

pytestmark = pytest.mark.destructive

CHANGED = re.compile(r"changed since the migration: (\d+) by the old application, (\d+) by the "
                     r"engine")


def _legacy_writes(db: Database) -> None:
    with db.connect() as conn:
        wedding = conn.execute("SELECT wedding_id FROM wedding_invitations GROUP BY 1 "
                               "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
        assert wedding is not None
        conn.execute("INSERT INTO wedding_invitations (wedding_id, guest_name, email) "
                     "VALUES (%s, 'Late Guest', 'late.guest@example.org')", wedding)
        conn.execute("UPDATE wedding_invitations SET rsvp_status = 'accepted', party_size = 3 "
                     "WHERE id = (SELECT min(id) FROM wedding_invitations WHERE wedding_id = %s)",
                     wedding)
        conn.execute("DELETE FROM wedding_invitations WHERE id = (SELECT max(id) FROM "
                     "wedding_invitations WHERE wedding_id = %s AND guest_name <> 'Late Guest')",
                     wedding)
        conn.execute("UPDATE wedding_sections SET title = 'Our story, retold' WHERE id = "
                     "(SELECT min(id) FROM wedding_sections)")


def _engine_writes(api: httpx.Client, engine: RunningEngine, db: Database) -> None:
    with db.connect() as conn:
        tenant, first, last = conn.execute(
            "SELECT tenant_id, min(id), max(id) FROM events GROUP BY 1 "
            "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone() or (None, None, None)
    headers = engine.as_tenant(tenant)
    created = api.post("/api/events", headers=headers, json={
        "event_type": "conference", "title": "Partner summit", "slug": "partner-summit",
        "start_date": "2027-03-01T09:00:00+01:00", "timezone": "Europe/Berlin"})
    assert created.status_code == 201, created.text
    renamed = api.patch(f"/api/events/{first}", headers=headers,
                        json={"title": "Renamed by the engine", "status": "published"})
    assert renamed.status_code == 200, renamed.text
    # A migrated wedding deleted through the API: its guests and sections go with it.
    assert api.delete(f"/api/events/{last}", headers=headers).status_code == 204


def _alter_one_migrated_guest(db: Database) -> None:
    with db.connect(autocommit=False) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        # A guest nobody wrote since the migration: one in the change record would be left out
        # of parity, rightly, and the defect would not be one (the writes above may touch the
        # lowest ids, depending on the seed).
        altered = conn.execute(
            "UPDATE event_participants SET email = upper(email) WHERE id = (SELECT id "
            "FROM event_participants WHERE email IS NOT NULL AND email <> upper(email) "
            "AND id IN (SELECT id FROM wedding_invitations_backup) AND id::text NOT IN "
            "(SELECT row_key FROM wedding_compat.row_changes WHERE relation = "
            "'event_participants') ORDER BY id LIMIT 1)").rowcount
        assert altered == 1
        conn.commit()


def test_writes_after_the_migration_gate_go_and_a_defect_among_them_no_go(
        databases: Databases, migrated_template: Database, tmp_path: Path,
        engine_launcher: Launcher | None) -> None:
    db = databases.create("written", template=migrated_template.name)
    try:
        with engine_process(db.dsn, workdir=tmp_path, launcher=engine_launcher) as engine:
            with http_client.client(base_url=engine.url, timeout=15) as api:
                _engine_writes(api, engine, db)
            _legacy_writes(db)
            clean = run_gate(dsn=db.dsn, base_url=engine.url, bundle=None, scale=None,
                             reports=tmp_path / "clean", pytest_args=[],
                             log=tmp_path / "clean.log", launcher=engine_launcher)
        assert clean.go, "\n".join(f"{f.test}: {f.reason}" for f in clean.failed) + (
            clean.problem or "")
        guests = json.loads((tmp_path / "clean" / "checks" / "content-parity" /
                             "wedding_invitations_backup---event_participants.json").read_text())
        legacy, by_engine = map(int, CHANGED.search(guests["summary"]).groups())  # type: ignore[union-attr]
        assert legacy >= 3 and by_engine >= 1, guests["summary"]

        _alter_one_migrated_guest(db)
        broken = run_gate(dsn=db.dsn, bundle=None, scale=None, suites=["integrity"],
                          reports=tmp_path / "broken", pytest_args=[],
                          log=tmp_path / "broken.log", launcher=engine_launcher)
        assert not broken.go
        parity = [f for f in broken.failed if "content_parity" in f.test]
        assert parity and "1 changed (email: 1)" in parity[0].reason, broken.failed
    finally:
        databases.drop(db)
