"""Which seed a run uses: the one given, else a fresh random one, always printed so that a
failure found with it can be replayed."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from eventgate.errors import ConfigError

SEED_ENV = "EVENTGATE_SEED"
# Six digits at most: short enough to read off a CI log and type back in.
_RANDOM_BELOW = 1_000_000


def parse_seed(raw: str, where: str) -> int:
    """`raw` as a seed; `where` names the setting it came from, for the error."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{where}={raw!r} is not a seed; give a whole number, e.g. 42") from None
    if value < 0:
        raise ConfigError(f"{where}={raw!r} is negative; a seed is a whole number from 0")
    return value


def random_seed() -> int:
    return secrets.randbelow(_RANDOM_BELOW)


def replay_hint(seed: int) -> str:
    return f"replay with --seed {seed} / {SEED_ENV}={seed}"


def choose_seed(given: int | None, environ: Mapping[str, str] = os.environ) -> int:
    """A verb's seed: the one given (--seed), else EVENTGATE_SEED, else a fresh random one."""
    if given is not None:
        return int(given)
    raw = environ.get(SEED_ENV)
    return parse_seed(raw, SEED_ENV) if raw else random_seed()
