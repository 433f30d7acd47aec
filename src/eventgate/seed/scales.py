"""Named data volumes: the default run uses small; bigger ones are for benchmarks and soak runs."""

from __future__ import annotations

from eventgate.errors import ConfigError
from eventgate.seed.generator import SeedPlan

SCALES: dict[str, SeedPlan] = {
    "small": SeedPlan(weddings=120, guests_per_wedding=12, seed=42),
    "medium": SeedPlan(weddings=5_000, guests_per_wedding=40, seed=42),
    # Production: 100k weddings, ~10M invitations, 500k sections, 1,000 tenants (Zipf skew).
    "prod": SeedPlan(weddings=100_000, guests_per_wedding=100, seed=42, tenants=1_000),
}


def scale(name: str) -> SeedPlan:
    try:
        return SCALES[name]
    except KeyError:
        raise ConfigError(
            f"unknown scale {name!r}; choose one of {', '.join(SCALES)}"
        ) from None
