"""Named data shapes: small legacy data sets, each missing or exaggerating one thing the default
data always has, so a gate that only passes on the default's shape shows up.

Each profile is a SeedPlan (parameters of the one generator), small enough to seed in well under
a second; its seed is whatever the caller chooses, so `--profile` combines with `--seed`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from eventgate.errors import ConfigError
from eventgate.seed.generator import (
    NO_DST_EDGE_WEDDINGS,
    NO_DST_TIMEZONES,
    STATUSES,
    SeedPlan,
)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str  # one line, for --help
    plan: SeedPlan


_OPEN_STATUSES = tuple((s, w) for s, w in STATUSES if s not in ("cancelled", "completed"))

_PROFILES = (
    Profile("single-tenant", "exactly one tenant",
            SeedPlan(weddings=120, guests_per_wedding=12, tenants=1)),
    Profile("no-cancelled-or-completed",
            "no wedding is cancelled or completed",
            SeedPlan(weddings=120, guests_per_wedding=12, statuses=_OPEN_STATUSES)),
    Profile("no-emails", "no guest has an email (all NULL)",
            SeedPlan(weddings=120, guests_per_wedding=12, missing_email=1.0)),
    # 801 weddings over 5 tenants: about 800 in the first, the other four with one or none,
    # the skew that turns an index scan into a sequential one.
    Profile("giant-tenant", "one tenant holds ~800 of 801 weddings",
            SeedPlan(weddings=801, guests_per_wedding=4, sections_per_wedding=2, tenants=5,
                     first_tenant_share=0.998)),
    Profile("no-dst-zones",
            "only zones without DST, no DST-edge weddings",
            SeedPlan(weddings=120, guests_per_wedding=12, timezones=NO_DST_TIMEZONES,
                     edge_weddings=NO_DST_EDGE_WEDDINGS)),
    Profile("large-guest-lists", "20 weddings, 200 to 600 guests each",
            SeedPlan(weddings=20, guests_per_wedding=400, tenants=3)),
)
PROFILES: dict[str, Profile] = {p.name: p for p in _PROFILES}


def profile(name: str, seed: int | None = None) -> SeedPlan:
    """The plan of the named profile, with `seed` if given (else the plan's own, 42)."""
    try:
        plan = PROFILES[name].plan
    except KeyError:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    return plan if seed is None else replace(plan, seed=seed)


def describe() -> str:
    """One line per profile, for --help."""
    return "; ".join(f"{p.name}: {p.description}" for p in _PROFILES)
