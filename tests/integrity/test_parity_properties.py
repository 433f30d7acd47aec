"""Parity as a property: whatever legacy rows the old application holds, migrating them either
keeps every value exactly (parity holds) or refuses with a report naming the rows, never a silent
change; and rolling back gives the legacy rows back identical."""

import os
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventgate.bundle import Bundle
from eventgate.checks.parity import content_parity
from eventgate.checks.snapshot import content_checksums
from eventgate.checks.views import view_matches_legacy
from eventgate.errors import MigrationError
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database, Databases
from eventgate.seed.load import apply_baseline

pytestmark = [pytest.mark.integrity, pytest.mark.destructive]

EXAMPLES = int(os.environ.get("EVENTGATE_HYPOTHESIS_EXAMPLES", "12"))
TENANTS = ("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002")

ZONES = ("Asia/Jakarta", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
         "Asia/Kathmandu", "America/St_Johns", "Pacific/Kiritimati", "Pacific/Pago_Pago",
         "Africa/Cairo", "America/Santiago", "Etc/GMT+12", "EST5EDT", "UTC", "CEST",
         "Mars/Olympus_Mons", "utc", "")
# (date, time, zone) where local time skips or repeats.
DST_EDGES = (
    (date(2025, 3, 9), time(2, 30), "America/New_York"),
    (date(2025, 11, 2), time(1, 30), "America/New_York"),
    (date(2025, 3, 30), time(2, 0), "Europe/Berlin"),
    (date(2025, 10, 5), time(2, 15), "Australia/Lord_Howe"),
    (date(2024, 4, 26), time(0, 0), "Africa/Cairo"),
    (date(2024, 9, 8), time(0, 0), "America/Santiago"),
)
text_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
odd_text = st.sampled_from(["", " ", "Zoë", "e\u0301", "مريم بنت عمران", "👰🏽‍♀️🤵", "O'Brien",
                            'back\\slash "quoted"', '{"json": "looking", "n": null}', "null",
                            "tab\there\nnewline\r", "\u200b", "\x1f\x07"])


def names(size: int) -> st.SearchStrategy[str]:
    return st.one_of(odd_text.filter(lambda s: 0 < len(s) <= size),
                     st.text(text_chars, min_size=1, max_size=size))


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), strategy)


any_date = st.one_of(st.dates(date(1900, 1, 1), date(2100, 12, 31)),
                     st.sampled_from([date(2024, 2, 29), date(2000, 2, 29), date(1900, 3, 1)]))
instants = st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1),
                        timezones=st.just(UTC))


@st.composite
def weddings(draw: st.DrawFn) -> dict[str, object]:
    if draw(st.booleans()):
        wedding_date, ceremony, zone = draw(st.sampled_from(DST_EDGES))
    else:
        wedding_date = draw(maybe(any_date))
        ceremony = draw(maybe(st.times()))
        zone = draw(st.sampled_from(ZONES))
    created = draw(instants)
    return {
        "tenant_id": draw(st.sampled_from(TENANTS)),
        "bride_name": draw(names(200)), "groom_name": draw(names(200)),
        "wedding_date": wedding_date, "ceremony_time": ceremony,
        "reception_time": draw(maybe(st.times())), "timezone": zone,
        "venue_name": draw(maybe(names(200))), "venue_address": draw(maybe(names(2000))),
        "theme": draw(maybe(names(50))),
        "status": draw(st.sampled_from(["draft", "published", "completed", "cancelled",
                                        "archived", "deleted"])),
        "created_at": created, "updated_at": created + timedelta(microseconds=draw(
            st.integers(0, 10**12))),
        "guests": draw(st.lists(invitations(), max_size=4)),
    }


@st.composite
def invitations(draw: st.DrawFn) -> dict[str, object]:
    return {
        "guest_name": draw(names(200)), "email": draw(maybe(names(320))),
        "phone": draw(maybe(names(40))),
        "rsvp_status": draw(st.sampled_from(["pending", "accepted", "declined", "maybe", "yes"])),
        "party_size": draw(st.one_of(st.integers(0, 32767), st.just(-1))),
        "dietary_notes": draw(maybe(names(500))),
        "table_number": draw(maybe(st.integers(-(2**31), 2**31 - 1))),
        "invited_at": draw(instants), "responded_at": draw(maybe(instants)),
    }


@pytest.fixture(scope="module")
def empty_legacy(databases: Databases, bundle: Bundle) -> Database:
    """The legacy schema with two tenants and no weddings."""
    db = databases.create("legacy_empty")
    with db.connect() as conn:
        apply_baseline(conn, bundle)
        for n, tenant in enumerate(TENANTS):
            conn.execute("INSERT INTO tenants (id, name, slug) VALUES (%s, %s, %s)",
                         (tenant, f"Tenant {n}", f"tenant-{n}"))
    return db


def _load(conn: psycopg.Connection, rows: list[dict[str, object]]) -> None:
    for n, wedding in enumerate(rows):
        guests = wedding.pop("guests")
        columns = list(wedding)
        wid = conn.execute(
            f"INSERT INTO wedding_events (slug, {', '.join(columns)}) VALUES "
            f"(%s, {', '.join(['%s'] * len(columns))}) RETURNING id",
            [f"wedding-{n}", *wedding.values()]).fetchone()
        for guest in guests:  # type: ignore[attr-defined]
            cols = list(guest)
            conn.execute(f"INSERT INTO wedding_invitations (wedding_id, {', '.join(cols)}) "
                         f"VALUES (%s, {', '.join(['%s'] * len(cols))})",
                         [wid[0], *guest.values()])  # type: ignore[index]
        conn.execute("INSERT INTO wedding_sections (wedding_id, section_type, title, content) "
                     "VALUES (%s, 'story', %s, %s)", (wid[0], wedding["bride_name"],  # type: ignore[index]
                                                      wedding["venue_address"]))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(rows=st.lists(weddings(), min_size=1, max_size=4))
def test_migration_keeps_every_value_or_refuses_and_rollback_restores(
        rows: list[dict[str, object]], databases: Databases, empty_legacy: Database,
        bundle: Bundle) -> None:
    db = databases.create("property", template=empty_legacy.name)
    try:
        with db.connect() as conn:
            _load(conn, rows)
            before = content_checksums(conn)
            runner = Runner(conn, bundle)
            try:
                runner.execute()
            except MigrationError as refused:
                message = str(refused)
                assert "legacy data the events schema cannot hold; nothing was migrated" in (
                    message), message
                assert "fix or delete these rows" in message
            else:
                log = bundle.expectations.change_log
                for mapping in bundle.mapping.values():
                    if mapping.backup:
                        # A generated wedding may have no guests: an empty table is not proven,
                        # which is fine here; only a failure breaks the property.
                        parity = content_parity(conn, mapping, log=log)
                        assert parity.outcome != "failed", parity.explain()
                        view = view_matches_legacy(conn, mapping, log=log)
                        assert view.outcome != "failed", view.explain()
            runner.rollback(to=0)
            after = content_checksums(conn)
        assert after == before
    finally:
        databases.drop(db)
