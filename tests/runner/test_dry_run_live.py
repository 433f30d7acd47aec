"""The dry run on a live database: the old application's writers, probed while it runs, never
wait on its locks longer than the bundle's lock budget (expectations.toml [locks]); a dry run
that would make them wait longer stops, says where and why, exits non-zero and changes
nothing."""

import re
import time
from pathlib import Path

import pytest

from eventgate.bundle import Bundle, load_bundle
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.cli.main import main
from eventgate.migrate.lock_probe import LockProbes
from eventgate.migrate.runner import DryRunOverBudget, Runner
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive

# The writer's longest wait is a wall-clock figure on a busy two-core machine: the budget, the
# sampler's and the rollback's round trips, and scheduling noise.
MARGIN_S = 0.5
# The probes' writer of tenants waits on the dry run from 007 (its foreign key) to the end, so
# the tests give the rest of the dry run room a loaded machine cannot use up: the budget is
# what is proven, whatever its value.
BUDGET_MS = 3000
HOLD_S = 8


def _with_budget(bundle_copy: Path, ms: int) -> None:
    path = bundle_copy / "expectations.toml"
    text = re.sub(r"(?m)^max_(write|read)_wait_ms = \d+$", rf"max_\1_wait_ms = {ms}",
                  path.read_text())
    path.write_text(text)


def _moved_name(bundle: Bundle) -> str:
    """A legacy table that migration 010 moves behind a view, from mapping.toml."""
    return next(m.legacy_table for m in bundle.mapping.values() if m.view)


def _holding_bundle(bundle_copy: Path) -> Bundle:
    """The bundle with a 010 that takes a writer-blocking lock first and then takes its time."""
    _with_budget(bundle_copy, BUDGET_MS)
    name = _moved_name(load_bundle(bundle_copy))
    path = next((bundle_copy / "migrations").glob("010_*.sql"))
    expand = "-- eventgate:phase expand\n"  # the first of 010's phases
    path.write_text(path.read_text().replace(
        expand, f"{expand}LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE;\n"
                f"SELECT pg_sleep({HOLD_S});\n", 1))
    return load_bundle(bundle_copy)


def test_a_dry_run_that_would_block_writers_stops_at_the_budget(
        legacy_db: Database, bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _holding_bundle(bundle_copy)
    name = _moved_name(bundle)
    budget_s = bundle.expectations.locks.max_write_wait_ms / 1000
    with legacy_db.connect() as conn:
        before = fingerprint(conn)
    with LockProbes(legacy_db.dsn, bundle) as probes, legacy_db.connect() as conn:
        time.sleep(0.2)  # writers flowing before the dry run starts
        with pytest.raises(DryRunOverBudget) as stopped:
            Runner(conn, bundle).dry_run()
        time.sleep(0.3)  # and after it
    worst = probes.longest("write")
    assert worst is not None and worst[1].wait_s <= budget_s + MARGIN_S, probes.to_json()
    # The writer of the locked name did wait on that lock (the probe saw it), not beyond.
    probe = next(p for p in probes.probes if (p.name, p.kind) == (name, "write"))
    attempt = probe.longest()
    assert attempt is not None and attempt.wait_s > budget_s / 2, probes.to_json()
    assert attempt.blocker is not None
    assert (attempt.blocker.mode, attempt.blocker.relation) == ("ShareRowExclusiveLock", name)
    assert "pg_sleep" in attempt.blocker.query
    assert probes.errors() == []

    over = stopped.value
    assert over.label.startswith("010_") and "pg_sleep" in over.statement
    # The budget runs from the first writer-blocking lock of the transaction (an earlier
    # migration's, on a table it references, may come first); the message names them all.
    assert over.lock.mode in ("ShareRowExclusiveLock", "ShareLock")
    assert over.lock.relation in bundle.legacy_tables
    assert f"ShareRowExclusiveLock on {name}" in str(over)
    assert [r.version for r in over.reports] == [6, 7, 8, 9]
    message = str(over)
    assert "nothing was changed" in message and "eventgate rehearse" in message
    with legacy_db.connect() as conn:
        assert differences(before, fingerprint(conn)) == []

    # The command says the same and exits non-zero: the dry run did not prove the migration.
    capsys.readouterr()
    code = main(["migrate", "--dry-run", "--dsn", legacy_db.dsn, "--bundle", str(bundle_copy)])
    out = capsys.readouterr().out
    assert code == 1
    assert "STOPPED at the lock budget" in out and "pg_sleep" in " ".join(out.split())
    with legacy_db.connect() as conn:
        assert differences(before, fingerprint(conn)) == []


def test_a_clean_dry_run_completes_with_writers_waiting_within_budget(
        legacy_db: Database, bundle_copy: Path) -> None:
    _with_budget(bundle_copy, BUDGET_MS)
    bundle = load_bundle(bundle_copy)
    budget = bundle.expectations.locks
    with LockProbes(legacy_db.dsn, bundle) as probes, legacy_db.connect() as conn:
        time.sleep(0.2)
        reports = Runner(conn, bundle).dry_run()
        time.sleep(0.2)
    assert [r.version for r in reports] == [6, 7, 8, 9, 10]
    assert probes.errors() == []
    assert all(len(p.attempts) > 5 for p in probes.probes), probes.to_json()
    for kind, budget_ms in (("write", budget.max_write_wait_ms),
                            ("read", budget.max_read_wait_ms)):
        worst = probes.longest(kind)
        assert worst is not None and worst[1].wait_s <= budget_ms / 1000 + MARGIN_S, \
            probes.to_json()
