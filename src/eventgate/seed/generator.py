"""Deterministic legacy wedding data: the same seed gives the same rows, byte for byte.

Values are meant to look like production: several tenants with skew (a few large ones), many
time zones, every RSVP state, NULL ceremony times, empty strings beside NULLs, non-ASCII names,
and a handful of weddings placed on the edges where date-and-zone arithmetic breaks (DST gaps
and overlaps, zones at +14 and -11, no date at all).

Every shape is a field of SeedPlan (statuses, zones, the share of guests without an email, how
weddings spread over tenants, which edge weddings are placed), so differently shaped data sets
(eventgate.seed.profiles) come from this one generator. With the defaults the random stream is
the one it always was: a seed gives the rows it gave before those fields existed.
"""

from __future__ import annotations

import bisect
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import cast

from eventgate.errors import ConfigError

TIMEZONES = (
    "Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura", "Europe/London", "Europe/Berlin",
    "America/New_York", "America/Sao_Paulo", "Australia/Sydney", "UTC", "Asia/Kolkata",
)
# Zones that have kept one UTC offset all year for decades: no gap, no overlap.
NO_DST_TIMEZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura", "Asia/Kolkata", "UTC")
FIRST_NAMES = (
    "Ayu", "Budi", "Citra", "Dewi", "Eka", "Fajar", "Gita", "Hadi", "Indah", "Joko", "Zoë",
    "José", "Anaïs", "Łukasz", "Siobhán", "Nguyễn", "Ni Made", "O'Brien", "Mary-Jane", "Søren",
)
LAST_NAMES = (
    "Santoso", "Wijaya", "Pratama", "Smith", "Müller", "García", "Kowalski", "Tanaka",
    "Nasution", "Hutapea", "D'Angelo", "van der Berg",
)
THEMES = ("rustic", "classic", "beach", "garden", "modern", "traditional-javanese", "bohemian")
STATUSES = (("published", 50), ("completed", 25), ("draft", 18), ("cancelled", 7))
RSVP = (("pending", 40), ("accepted", 40), ("declined", 15), ("maybe", 5))
DIETARY = ("vegetarian", "vegan", "halal", "no nuts", "gluten-free; lactose-free",
           "kosher", "pescatarian", "allergic to shellfish\nEpiPen at table")
SECTION_TYPES = ("hero", "story", "schedule", "venue", "gallery", "registry", "rsvp", "faq")

# (wedding_date, ceremony_time, timezone): the places a date + time + zone derivation breaks.
EDGE_WEDDINGS = (
    (date(2025, 3, 9), time(2, 30), "America/New_York"),      # DST gap: 02:30 never happens
    (date(2025, 11, 2), time(1, 30), "America/New_York"),     # DST overlap: 01:30 happens twice
    (date(2025, 3, 30), time(2, 15), "Europe/Berlin"),        # DST gap in Europe
    (date(2025, 10, 5), time(2, 0), "Australia/Sydney"),      # southern-hemisphere DST gap
    (date(2025, 12, 31), time(23, 59, 59, 999999), "Pacific/Kiritimati"),  # UTC+14, year end
    (date(2026, 1, 1), time(0, 0), "Pacific/Pago_Pago"),      # UTC-11, midnight
    (date(2025, 6, 15), None, "Asia/Jakarta"),                # no ceremony time
    (None, None, "UTC"),                                      # no date yet
)
# The edges above in zones that never change their offset (+14, -11, no time, no date),
# picked by zone so that a new DST edge is left out without anyone remembering to.
NO_DST_EDGE_WEDDINGS = tuple(e for e in EDGE_WEDDINGS if e[2] in (
    *NO_DST_TIMEZONES, "Pacific/Kiritimati", "Pacific/Pago_Pago"))
EdgeWedding = tuple[date | None, time | None, str]

TENANTS_COLUMNS = ("id", "name", "slug", "created_at")
WEDDING_COLUMNS = (
    "id", "tenant_id", "slug", "bride_name", "groom_name", "wedding_date", "ceremony_time",
    "reception_time", "timezone", "venue_name", "venue_address", "theme", "status",
    "created_at", "updated_at",
)
INVITATION_COLUMNS = (
    "id", "wedding_id", "guest_name", "email", "phone", "rsvp_status", "party_size",
    "dietary_notes", "table_number", "invited_at", "responded_at",
)
SECTION_COLUMNS = ("id", "wedding_id", "section_type", "title", "content", "position",
                   "is_visible")

Row = tuple[object, ...]


@dataclass(frozen=True)
class SeedPlan:
    weddings: int
    guests_per_wedding: int
    seed: int = 42
    sections_per_wedding: int = 5
    tenants: int | None = None
    # (status, weight): the statuses weddings are drawn from; a subset of STATUSES' names.
    statuses: tuple[tuple[str, int], ...] = STATUSES
    # Zones the ordinary (non-edge) weddings are placed in.
    timezones: tuple[str, ...] = TIMEZONES
    # Chance that a guest has no email (NULL); 1.0: nobody has one.
    missing_email: float = 0.15
    # None: a Zipf-like spread over tenants; else the first tenant's share of the weddings
    # drawn, the others splitting the rest evenly.
    first_tenant_share: float | None = None
    # Placed as weddings 1..n, all in the first tenant; () places none.
    edge_weddings: tuple[EdgeWedding, ...] = EDGE_WEDDINGS

    def __post_init__(self) -> None:
        # A bad plan must fail here, not as a half-loaded COPY or a refusal in migration 010.
        known = {name for name, _ in STATUSES}
        if not self.statuses or any(s not in known or w <= 0 for s, w in self.statuses):
            raise ConfigError(f"statuses must be positive weights over {sorted(known)}")
        if not self.timezones:
            raise ConfigError("timezones must name at least one zone")
        if not 0.0 <= self.missing_email <= 1.0:
            raise ConfigError("missing_email is a probability, 0.0 to 1.0")
        if self.first_tenant_share is not None and not 0.0 < self.first_tenant_share <= 1.0:
            raise ConfigError("first_tenant_share is a share of the weddings, above 0 up to 1")
        if self.weddings < 0 or self.guests_per_wedding < 0:
            raise ConfigError("weddings and guests_per_wedding cannot be negative")
        if self.tenants is not None and self.tenants < 1:
            raise ConfigError("a plan needs at least one tenant")

    @property
    def tenant_count(self) -> int:
        if self.tenants is not None:
            return self.tenants
        return max(3, min(1000, self.weddings // 20))


@dataclass(frozen=True)
class WeddingStub:
    """What a wedding's guests and sections draw on: its id, creation and date."""

    id: int
    created_at: datetime
    wedding_date: date | None


_STUB_FIELDS = tuple(WEDDING_COLUMNS.index(f) for f in ("id", "created_at", "wedding_date"))


def stub(wedding: Row) -> WeddingStub:
    """The stub of a row weddings() made."""
    wid, created, day = (wedding[i] for i in _STUB_FIELDS)
    return WeddingStub(cast(int, wid), cast(datetime, created), cast("date | None", day))


# random() is one C call; randrange() and choice() cost several Python frames each, which at
# ten million rows is most of the seeding time.
def _below(rng: random.Random, n: int) -> int:
    return int(rng.random() * n)


def _pick(rng: random.Random, options: tuple[str, ...]) -> str:
    return options[int(rng.random() * len(options))]


def _cumulative(choices: tuple[tuple[str, int], ...]) -> tuple[tuple[str, ...], list[float]]:
    total, running, bounds = sum(w for _, w in choices), 0, []
    for _, weight in choices:
        running += weight
        bounds.append(running / total)
    return tuple(c for c, _ in choices), bounds


_RSVP_TABLE = _cumulative(RSVP)


def _weighted(rng: random.Random, table: tuple[tuple[str, ...], list[float]]) -> str:
    return table[0][bisect.bisect(table[1], rng.random())]


def _name(rng: random.Random) -> str:
    return f"{_pick(rng, FIRST_NAMES)} {_pick(rng, LAST_NAMES)}"


# The first guest of the middle wedding of every data set (away from the first rows, which the
# change-record tests write to): the drawn first and last names run to 22 characters at most,
# and a small seed may draw none past 20 (seed 509415 drew none), so a migration that cuts
# names short would go unseen on it. A real guest list holds longer names; this one is set in
# place of the drawn one, so the random stream, and every other row a seed gives, stays as it
# was.
LONG_GUEST_NAME = "Ni Made Ayu Lestari Kusumawardhani-van der Berg"


def _instant(rng: random.Random, start: datetime, span_days: int) -> datetime:
    # Microseconds on purpose: comparisons must hold at full timestamp precision.
    return start + timedelta(seconds=_below(rng, span_days * 86400),
                             microseconds=_below(rng, 1_000_000))


def tenants(plan: SeedPlan) -> list[Row]:
    rng = random.Random(f"{plan.seed}:tenants")
    rows: list[Row] = []
    for n in range(plan.tenant_count):
        tid = uuid.UUID(int=rng.getrandbits(128), version=4)
        created = _instant(rng, datetime(2019, 1, 1, tzinfo=UTC), 1500)
        rows.append((tid, f"{rng.choice(LAST_NAMES)} Weddings {n + 1}", f"organiser-{n + 1}",
                     created))
    return rows


def _tenant_weights(count: int, first_share: float | None) -> list[float]:
    if first_share is None or count == 1:
        # Zipf-like: the first tenants are much larger than the long tail.
        return [1.0 / (rank + 1) for rank in range(count)]
    return [first_share] + [(1.0 - first_share) / (count - 1)] * (count - 1)


def weddings(plan: SeedPlan, tenant_rows: list[Row]) -> Iterator[Row]:
    rng = random.Random(f"{plan.seed}:weddings")
    tenant_ids = [r[0] for r in tenant_rows]
    weights = _tenant_weights(len(tenant_ids), plan.first_tenant_share)
    statuses = _cumulative(plan.statuses)
    edges = plan.edge_weddings
    for wid in range(1, plan.weddings + 1):
        tenant = tenant_ids[0] if wid <= len(edges) else rng.choices(
            tenant_ids, weights=weights)[0]
        bride, groom = _name(rng), _name(rng)
        if wid <= len(edges):
            wedding_date, ceremony, zone = edges[wid - 1]
        else:
            # Until 2035, so queries from CURRENT_DATE on keep finding weddings for years.
            wedding_date = date(2023, 1, 1) + timedelta(days=rng.randrange(13 * 365))
            ceremony = None if rng.random() < 0.1 else time(rng.randrange(8, 20),
                                                             rng.choice((0, 15, 30, 45)))
            zone = rng.choice(plan.timezones)
        reception = None
        if ceremony is not None and rng.random() < 0.8:
            reception = time((ceremony.hour + 3) % 24, ceremony.minute)
        created = _instant(rng, datetime(2022, 1, 1, tzinfo=UTC), 900)
        updated = created + timedelta(seconds=rng.randrange(0, 90 * 86400),
                                      microseconds=rng.randrange(1_000_000))
        slug = f"{bride.split()[0]}-and-{groom.split()[0]}-{wid}".lower().replace("'", "")
        venue = None if rng.random() < 0.15 else f"{rng.choice(LAST_NAMES)} Hall"
        address = None if venue is None else ("" if rng.random() < 0.05 else
                                              f"Jl. {rng.choice(LAST_NAMES)} No. {wid % 200}")
        theme = None if rng.random() < 0.3 else rng.choice(THEMES)
        yield (wid, tenant, slug, bride, groom, wedding_date, ceremony, reception, zone, venue,
               address, theme, _weighted(rng, statuses), created, updated)


def invitations(plan: SeedPlan, stubs: list[WeddingStub]) -> Iterator[Row]:
    rng = random.Random(f"{plan.seed}:invitations")
    next_id = 1
    low, high = plan.guests_per_wedding // 2, plan.guests_per_wedding * 3 // 2
    middle = stubs[len(stubs) // 2].id if stubs else None
    for wedding in stubs:
        for n in range(low + _below(rng, high - low + 1) if high else 0):
            name = _name(rng)
            if wedding.id == middle and n == 0:
                name = LONG_GUEST_NAME
            email = None if rng.random() < plan.missing_email else (
                f"{name.split()[0].lower()}.{next_id}@example.org")
            if email and rng.random() < 0.05:
                email = email.upper()
            phone = None if rng.random() < 0.4 else f"+62 8{10**9 + _below(rng, 9 * 10**9)}"
            rsvp = _weighted(rng, _RSVP_TABLE)
            invited = _instant(rng, wedding.created_at, 60)
            responded = None if rsvp == "pending" else invited + timedelta(
                seconds=1 + _below(rng, 30 * 86400), microseconds=_below(rng, 1_000_000))
            dice = rng.random()
            dietary = None if dice < 0.7 else ("" if dice < 0.8 else _pick(rng, DIETARY))
            table = None if rsvp in ("pending", "declined") else 1 + _below(rng, 30)
            yield (next_id, wedding.id, name, email, phone, rsvp, 1 + _below(rng, 4), dietary,
                   table, invited, responded)
            next_id += 1


def sections(plan: SeedPlan, stubs: list[WeddingStub]) -> Iterator[Row]:
    rng = random.Random(f"{plan.seed}:sections")
    next_id = 1
    for wedding in stubs:
        count = min(plan.sections_per_wedding, len(SECTION_TYPES))
        for position, kind in enumerate(rng.sample(SECTION_TYPES, count)):
            title = None if rng.random() < 0.1 else kind.replace("-", " ").title()
            content = None if rng.random() < 0.05 else (
                f"<p>{kind} for wedding {wedding.id}</p>\n\t“Selamat menempuh hidup baru”")
            yield (next_id, wedding.id, kind, title, content, position * 10,
                   rng.random() > 0.1)
            next_id += 1
