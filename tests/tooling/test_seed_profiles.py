"""The seed profiles and the run's seed: each profile has the shape it promises and migrates; a
seed gives the same rows every time and another seed other rows; the seed a run uses is shown
in the header, and every xdist worker uses the same one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from eventgate.bundle import Bundle, default_bundle_path
from eventgate.pg.databases import Database, Databases
from eventgate.pytest_plugin.fix_db import migrate
from eventgate.pytest_plugin.settings import Settings
from eventgate.reports.environment import Target, environment
from eventgate.seed import generator as gen
from eventgate.seed.legacy_schema import LEGACY_TABLES
from eventgate.seed.load import build_legacy
from eventgate.seed.profiles import PROFILES, profile
from eventgate.seed.scales import scale

# A shape check returns what is wrong with the data, or None when it has the shape.
ShapeCheck = Callable[[psycopg.Connection], str | None]


def _one(conn: psycopg.Connection, query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _single_tenant(conn: psycopg.Connection) -> str | None:
    tenants = _one(conn, "SELECT count(*) FROM tenants")
    used = _one(conn, "SELECT count(DISTINCT tenant_id) FROM wedding_events")
    return None if tenants == used == 1 else f"{tenants} tenants, {used} holding weddings"


def _no_cancelled_or_completed(conn: psycopg.Connection) -> str | None:
    found = _one(conn, "SELECT count(*) FROM wedding_events "
                       "WHERE status IN ('cancelled', 'completed')")
    return None if found == 0 else f"{found} weddings cancelled or completed"


def _no_emails(conn: psycopg.Connection) -> str | None:
    found = _one(conn, "SELECT count(email) FROM wedding_invitations")
    return None if found == 0 else f"{found} guests with an email"


def _giant_tenant(conn: psycopg.Connection) -> str | None:
    shares = conn.execute(
        "SELECT count(w.id)::float / (SELECT count(*) FROM wedding_events) FROM tenants t "
        "LEFT JOIN wedding_events w ON w.tenant_id = t.id GROUP BY t.id ORDER BY 1 DESC"
    ).fetchall()
    biggest, others = shares[0][0], [s for (s,) in shares[1:]]
    if len(shares) < 2 or biggest < 0.98 or any(s > 0.01 for s in others):
        return f"tenant shares {[round(s, 3) for (s,) in shares]}"
    return None


# Every UTC offset each zone in the data has had at some instant of the years the weddings
# fall in (and the edge weddings' 2025): a zone with DST has two.
_ZONE_OFFSETS = """
    SELECT z.timezone, count(DISTINCT (i AT TIME ZONE z.timezone) - (i AT TIME ZONE 'UTC'))
      FROM (SELECT DISTINCT timezone FROM wedding_events) z,
           generate_series(timestamptz '2023-01-01 00:00Z', timestamptz '2036-12-31 00:00Z',
                           interval '1 week') i
     GROUP BY 1 HAVING count(DISTINCT (i AT TIME ZONE z.timezone) - (i AT TIME ZONE 'UTC')) > 1
"""


def _no_dst_zones(conn: psycopg.Connection) -> str | None:
    with_dst = conn.execute(_ZONE_OFFSETS).fetchall()
    # What PostgreSQL says of the zones today, as a second opinion on the one above.
    dst_now = conn.execute(
        "SELECT name FROM pg_timezone_names WHERE is_dst "
        "AND name IN (SELECT timezone FROM wedding_events)").fetchall()
    if with_dst or dst_now:
        return f"zones with DST: {sorted({r[0] for r in with_dst + dst_now})}"
    return None


def _large_guest_lists(conn: psycopg.Connection) -> str | None:
    weddings, smallest = conn.execute(
        "SELECT count(*), min(guests) FROM (SELECT w.id, count(i.id) AS guests "
        "FROM wedding_events w LEFT JOIN wedding_invitations i ON i.wedding_id = w.id "
        "GROUP BY w.id) g").fetchone() or (0, 0)
    if weddings > 50 or smallest < 200:
        return f"{weddings} weddings, the smallest with {smallest} guests"
    return None


SHAPES: dict[str, ShapeCheck] = {
    "single-tenant": _single_tenant,
    "no-cancelled-or-completed": _no_cancelled_or_completed,
    "no-emails": _no_emails,
    "giant-tenant": _giant_tenant,
    "no-dst-zones": _no_dst_zones,
    "large-guest-lists": _large_guest_lists,
}


def test_every_profile_has_a_shape_check() -> None:
    assert set(SHAPES) == set(PROFILES)


@pytest.fixture
def fresh_db(databases: Databases) -> Iterator[Database]:
    db = databases.create("profile")
    try:
        yield db
    finally:
        databases.drop(db)


def _counts(conn: psycopg.Connection, tables: tuple[str, ...]) -> list[int]:
    return [int(_one(conn, f"SELECT count(*) FROM {t}")) for t in tables]


@pytest.mark.destructive
@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_seeds_small_has_its_shape_and_migrates(
        name: str, fresh_db: Database, bundle: Bundle, eventgate_settings: Settings) -> None:
    # The run's seed, not a fixed one: the shape must hold whatever the seed.
    plan = profile(name, seed=eventgate_settings.seed)
    # Small enough to seed in well under a second: hundreds of weddings, thousands of guests.
    assert plan.weddings <= 1_000 and plan.weddings * plan.guests_per_wedding <= 10_000
    with fresh_db.connect() as conn:
        seeded = build_legacy(conn, bundle, plan)
        assert seeded.weddings == plan.weddings and seeded.invitations > 0
        assert SHAPES[name](conn) is None, f"profile {name}, seed {plan.seed}"
    migrate(fresh_db, bundle)
    with fresh_db.connect() as conn:
        legacy = _counts(conn, ("wedding_events_backup", "wedding_invitations_backup",
                                "wedding_sections_backup"))
        assert legacy == [seeded.weddings, seeded.invitations, seeded.sections]
        assert _counts(conn, ("events", "event_participants", "event_sections")) == legacy


@pytest.mark.destructive
def test_the_default_data_has_none_of_the_profiles_shapes(fresh_db: Database,
                                                         bundle: Bundle) -> None:
    """The shape checks can fail: the default data has every trait a profile leaves out."""
    # Seed 42 pinned: this proves the checks above are not vacuous, which needs data known to
    # hold cancelled weddings, emails, DST zones and several tenants of comparable size.
    with fresh_db.connect() as conn:
        build_legacy(conn, bundle, replace(scale("small"), seed=42))
        unexpectedly_held = [name for name, check in SHAPES.items() if check(conn) is None]
    assert unexpectedly_held == []


def _rows(plan: gen.SeedPlan) -> list[list[gen.Row]]:
    tenants = gen.tenants(plan)
    weddings = list(gen.weddings(plan, tenants))
    stubs = [gen.WeddingStub(w[0], w[13], w[5]) for w in weddings]  # type: ignore[arg-type]
    return [tenants, weddings, list(gen.invitations(plan, stubs)), list(gen.sections(plan, stubs))]


@pytest.mark.parametrize("name", ["small", *PROFILES])
def test_a_seed_gives_the_same_rows_and_another_seed_other_rows(name: str) -> None:
    base = scale(name) if name == "small" else profile(name)
    assert _rows(replace(base, seed=7)) == _rows(replace(base, seed=7))
    first, other = _rows(replace(base, seed=7)), _rows(replace(base, seed=8))
    assert all(a != b for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("name", ["small", *PROFILES])
@pytest.mark.parametrize("seed", [509415, 7])
def test_every_data_set_holds_a_guest_name_a_short_copy_would_cut(name: str, seed: int) -> None:
    # Seed 509415 drew no name past 20 characters: 010-truncates-guest-names went unseen on it
    # and the change-record proof failed on a healthy bundle.
    base = scale(name) if name == "small" else profile(name)
    guests = _rows(replace(base, seed=seed))[2]
    long_names = [g for g in guests if len(str(g[2])) > 40]
    assert long_names, f"no guest name over 40 characters in {name} with seed {seed}"
    # Away from the first 80 guests, which the change-record tests write to.
    assert all(int(str(g[0])) > 80 for g in long_names), long_names


def _fingerprint(db: Database) -> list[str]:
    with db.connect() as conn:
        return [str(_one(conn, "SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) "
                               f"FROM {table} t")) for table in LEGACY_TABLES]


@pytest.mark.destructive
def test_the_same_seed_loads_identical_rows_and_another_seed_others(
        databases: Databases, bundle: Bundle) -> None:
    prints = []
    for seed in (7, 7, 8):
        db = databases.create("seeded")
        with db.connect() as conn:
            build_legacy(conn, bundle, replace(scale("small"), seed=seed))
        prints.append(_fingerprint(db))
        databases.drop(db)
    assert prints[0] == prints[1]
    assert all(a != b for a, b in zip(prints[0], prints[2], strict=True))


# The plugin in a pytest of its own (allure off so it adds nothing to this session's results).
NO_ALLURE = ("-p", "no:allure_pytest", "-p", "no:cacheprovider")
HEADER = re.compile(r"^eventgate: seed (\d+) \(replay with --seed (\d+) / EVENTGATE_SEED=(\d+)\)$")


def _header_seed(lines: list[str]) -> int:
    found = [m.groups() for m in map(HEADER.match, lines) if m]
    assert len(found) == 1, lines
    shown, flag, env = found[0]
    assert shown == flag == env
    return int(shown)


def test_the_header_shows_a_new_seed_each_run(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTGATE_SEED", raising=False)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    seeds = {_header_seed(pytester.runpytest(*NO_ALLURE).outlines) for _ in range(3)}
    # Three draws from a million: equal only by a one-in-a-hundred-billion chance.
    assert len(seeds) == 3


@pytest.mark.parametrize("how", ["flag", "env", "ini"])
def test_a_given_seed_is_used_and_shown(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    monkeypatch.delenv("EVENTGATE_SEED", raising=False)
    pytester.makepyfile(test_seed="""
        def test_seed(eventgate_settings):
            assert eventgate_settings.seed == 1234
    """)
    args = list(NO_ALLURE)
    if how == "flag":
        args += ["--seed", "1234"]
    elif how == "env":
        monkeypatch.setenv("EVENTGATE_SEED", "1234")
    else:
        pytester.makeini("[pytest]\neventgate_seed = 1234\n")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    assert _header_seed(result.outlines) == 1234


def test_a_malformed_seed_or_profile_is_a_usage_error(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    monkeypatch.setenv("EVENTGATE_SEED", "forty-two")
    result = pytester.runpytest(*NO_ALLURE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*EVENTGATE_SEED='forty-two' is not a seed*"])
    monkeypatch.delenv("EVENTGATE_SEED")
    result = pytester.runpytest(*NO_ALLURE, "--seed-profile", "huge")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'huge' is not a profile; choose one of single-tenant*"])


def test_every_xdist_worker_uses_the_controllers_seed(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTGATE_SEED", raising=False)
    pytester.makepyfile(test_seed="""
        from pathlib import Path

        def test_seed(eventgate_settings, worker_id):
            Path(f"seed-{worker_id}").write_text(str(eventgate_settings.seed))
    """)
    # --dist each: the test runs on both workers, so both report their seed.
    result = pytester.runpytest_subprocess(*NO_ALLURE, "-n", "2", "--dist", "each")
    result.assert_outcomes(passed=2)
    seeds = {p.name: p.read_text() for p in Path(pytester.path).glob("seed-gw*")}
    assert sorted(seeds) == ["seed-gw0", "seed-gw1"]
    assert set(seeds.values()) == {str(_header_seed(result.outlines))}


def test_the_seed_profile_setting_seeds_the_session_with_that_profile(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTGATE_PROFILE", "single-tenant")
    pytester.makepyfile(test_profile="""
        from eventgate.pytest_plugin.fix_db import session_plan
        from eventgate.seed.profiles import profile

        def test_profile(eventgate_settings):
            assert eventgate_settings.profile == "single-tenant"
            assert session_plan(eventgate_settings) == profile(
                "single-tenant", seed=eventgate_settings.seed)
    """)
    result = pytester.runpytest(*NO_ALLURE)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["eventgate: bundle *, profile single-tenant"])


def test_the_allure_environment_names_the_seed_and_profile_of_the_embedded_data() -> None:
    target = Target("embedded", "PostgreSQL 15 via local binaries", "15")
    embedded = Settings(dsn=None, bundle=default_bundle_path(), pg_bindir=None, scale="small",
                        seed=5, profile="no-emails")
    env = environment(embedded, target)
    assert env["seed"] == "5" and env["profile"] == "no-emails"
    # Against --dsn nothing is seeded: a seed there would only mislead.
    external = replace(embedded, dsn="postgresql://app@127.0.0.1:1/w", profile=None)
    assert "seed" not in environment(external, target)


def eventgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventgate.cli", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_seed_help_lists_every_profile_with_its_description() -> None:
    result = eventgate("seed", "--help")
    assert result.returncode == 0
    # Wrapped to the terminal's width: compare with the whitespace folded.
    text = " ".join(result.stdout.split())
    for named in PROFILES.values():
        assert f"{named.name}: {named.description}" in text


@pytest.mark.destructive
def test_seed_profile_combines_with_seed(fresh_db: Database) -> None:
    result = eventgate("seed", "--profile", "single-tenant", "--seed", "5", "--dsn", fresh_db.dsn)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 tenants, profile single-tenant, seed 5" in result.stdout
    with fresh_db.connect() as conn:
        assert _single_tenant(conn) is None
    expected = _rows(profile("single-tenant", seed=5))
    with fresh_db.connect() as conn:
        assert conn.execute("SELECT * FROM tenants").fetchall() == expected[0]
        assert _one(conn, "SELECT count(*) FROM wedding_invitations") == len(expected[2])


@pytest.mark.destructive
def test_gate_prints_the_seed_and_keeps_it_in_the_verdict(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTGATE_SEED", raising=False)
    reports = tmp_path / "reports"
    # One gate only, to keep the run short; the seed's path to the verdict is the same.
    result = eventgate("gate", "--seed", "5", "--reports", str(reports), "--",
                       "-k", "test_required_index_exists and events_tenant_start_idx")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seed 5 (replay with --seed 5 / EVENTGATE_SEED=5)" in result.stdout
    assert "seed 5 — reports in" in " ".join(result.stdout.split())
    assert json.loads((reports / "verdict.json").read_text())["seed"] == 5
