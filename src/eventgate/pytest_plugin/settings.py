"""One frozen settings object, resolved once from command-line flags, environment and ini."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eventgate.bundle import default_bundle_path
from eventgate.errors import ConfigError
from eventgate.seed.choice import SEED_ENV, parse_seed, random_seed
from eventgate.seed.profiles import PROFILES


@dataclass(frozen=True)
class Option:
    dest: str
    flag: str
    env: str
    help: str
    default: str | None = None


SEED = Option("eventgate_seed", "--seed", SEED_ENV,
              "random seed of the embedded database's data; default: a new one each run, "
              "shown in the header, so a failure it finds can be replayed")
# Not --profile: pytest-profiling owns that flag.
PROFILE = Option("eventgate_profile", "--seed-profile", "EVENTGATE_PROFILE",
                 "seed the embedded database with a named data shape instead of --scale: "
                 + ", ".join(PROFILES) + " (eventgate seed --help describes them)")

OPTIONS = (
    Option("eventgate_dsn", "--dsn", "EVENTGATE_DSN",
           "an existing PostgreSQL database to check (read-only for green tests); the suite "
           "never creates or drops it. Without it the suite starts its own cluster."),
    Option("eventgate_bundle", "--bundle", "EVENTGATE_BUNDLE",
           "migration bundle directory (baseline/, migrations/, rollback/, mapping.toml, "
           "expectations.toml); default: the reference FASE 0 bundle"),
    Option("eventgate_pg_bindir", "--pg-bindir", "EVENTGATE_PG_BINDIR",
           "directory holding initdb and postgres for the embedded cluster; default: PATH, "
           "pg_config --bindir, then /usr/lib/postgresql/*/bin"),
    Option("eventgate_scale", "--scale", "EVENTGATE_SCALE",
           "seed data volume for the embedded database: small, medium or prod (10M "
           "invitations; minutes to build)", "small"),
    SEED,
    PROFILE,
    Option("eventgate_base_url", "--base-url", "EVENTGATE_BASE_URL",
           "an Event Management Engine already running (e.g. staging); without it the suite "
           "starts the reference engine against its own database"),
    Option("eventgate_engine_factory", "--engine-factory", "EVENTGATE_ENGINE_FACTORY",
           "MODULE:FUNCTION serving the engines the suite starts (default: the reference "
           "engine); used to prove the gates catch a broken engine"),
    Option("eventgate_tenant_tokens", "--tenant-tokens", "EVENTGATE_TENANT_TOKENS",
           "a TOML file of the tokens the engine gates authenticate with, one per tenant: "
           "\"<tenant uuid>\" = \"<token>\" (or EVENTGATE_TOKEN_KEYS, the engine's keys, to "
           "mint them; or --tenant-token-command)"),
    Option("eventgate_tenant_token_command", "--tenant-token-command",
           "EVENTGATE_TENANT_TOKEN_COMMAND",
           "a command printing a tenant's token, {tenant} replaced by its UUID, e.g. "
           "'vault read -field=token secret/engine/{tenant}'"),
    Option("eventgate_auth_header", "--auth-header", "EVENTGATE_AUTH_HEADER",
           "the header a token is sent in, {token} replaced", "Authorization: Bearer {token}"),
    Option("eventgate_reports", "--reports-dir", "EVENTGATE_REPORTS",
           "directory for check results as JSON (checks/) and, unless --alluredir is given, "
           "Allure results (allure-results/)", "reports"),
)


@dataclass(frozen=True)
class Flag:
    """A yes/no setting: a flag that takes no value, an environment variable and an ini key."""

    dest: str
    flag: str
    env: str
    help: str


ALLOW_DESTRUCTIVE = Flag(
    "eventgate_allow_destructive", "--allow-destructive", "EVENTGATE_ALLOW_DESTRUCTIVE",
    "against an external target (--dsn or --base-url), run the tests that are not green too: "
    "they write, and may change or delete the target's data. Without it they are skipped.")
REQUIRE_PROOF = Flag(
    "eventgate_require_proof", "--require-proof", "EVENTGATE_REQUIRE_PROOF",
    "fail every gate the data cannot exercise (not proven) instead of reporting it apart: "
    "for a CI gate that must not go on anything less than proof")
FLAGS = (ALLOW_DESTRUCTIVE, REQUIRE_PROOF)

# The spellings pytest accepts for bool ini values, so the environment takes the same ones.
_TRUE = frozenset({"1", "y", "yes", "t", "true", "on"})
_FALSE = frozenset({"", "0", "n", "no", "f", "false", "off"})


@dataclass(frozen=True)
class Settings:
    dsn: str | None
    bundle: Path
    pg_bindir: str | None
    scale: str
    reports: Path = Path("reports")
    base_url: str | None = None
    engine_factory: str | None = None
    allow_destructive: bool = False
    require_proof: bool = False
    seed: int | None = None  # None only in a Settings built by hand
    profile: str | None = None
    tenant_tokens: Path | None = None
    tenant_token_command: str | None = field(default=None, repr=False)
    auth_header: str = "Authorization: Bearer {token}"

    @property
    def external(self) -> bool:
        return self.dsn is not None

    @property
    def external_target(self) -> bool:
        """Pointed at something the suite does not own: a database, an engine, or both."""
        return bool(self.dsn or self.base_url)


def _resolve(config: pytest.Config, option: Option) -> str | None:
    value = config.getoption(option.dest, default=None)
    if value:
        return str(value)
    if os.environ.get(option.env):
        return os.environ[option.env]
    ini = config.getini(option.dest)
    return str(ini) if ini else option.default


def _resolve_flag(config: pytest.Config, flag: Flag) -> bool:
    if config.getoption(flag.dest, default=None):
        return True
    raw = os.environ.get(flag.env)
    if raw is not None:
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        # A typo must not silently decide whether tests may write to staging.
        raise pytest.UsageError(
            f"{flag.env}={raw!r} is neither true (1, yes, true, on) nor false (0, no, false, "
            "off)")
    return bool(config.getini(flag.dest))


# Key of the seed in xdist's workerinput: the controller chooses, every worker seeds with it
# (plugin.pytest_configure_node), or the workers would test different data sets.
WORKER_SEED = "eventgate_seed"
_SEED_KEY = pytest.StashKey[int]()


def session_seed(config: pytest.Config) -> int:
    """The run's seed, chosen once per process: the controller's (under xdist), the one set,
    or a random one."""
    if _SEED_KEY not in config.stash:
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and WORKER_SEED in workerinput:
            seed = int(workerinput[WORKER_SEED])
        else:
            raw = _resolve(config, SEED)
            try:
                seed = parse_seed(raw, f"{SEED.flag} / {SEED.env}") if raw else random_seed()
            except ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
        config.stash[_SEED_KEY] = seed
    return config.stash[_SEED_KEY]


def _profile(config: pytest.Config) -> str | None:
    name = _resolve(config, PROFILE)
    if name is not None and name not in PROFILES:
        raise pytest.UsageError(f"{PROFILE.flag} / {PROFILE.env}={name!r} is not a profile; "
                                f"choose one of {', '.join(PROFILES)}")
    return name


def settings_from(config: pytest.Config) -> Settings:
    values = {o.dest: _resolve(config, o) for o in OPTIONS}
    return Settings(
        dsn=values["eventgate_dsn"],
        bundle=Path(values["eventgate_bundle"] or default_bundle_path()),
        pg_bindir=values["eventgate_pg_bindir"],
        scale=values["eventgate_scale"] or "small",
        reports=Path(values["eventgate_reports"] or "reports"),
        base_url=values["eventgate_base_url"],
        engine_factory=values["eventgate_engine_factory"],
        allow_destructive=_resolve_flag(config, ALLOW_DESTRUCTIVE),
        require_proof=_resolve_flag(config, REQUIRE_PROOF),
        seed=session_seed(config),
        profile=_profile(config),
        tenant_tokens=(Path(values["eventgate_tenant_tokens"])
                       if values["eventgate_tenant_tokens"] else None),
        tenant_token_command=values["eventgate_tenant_token_command"],
        auth_header=values["eventgate_auth_header"] or "Authorization: Bearer {token}",
    )
