"""The credentials the gate presents to the engine under test, per tenant: minted with the
engine's token keys, read from a file of tokens, or printed by a command (a secret store's
CLI), each sent in a header made from a template. Tokens never leave this module except in
the headers: not in a repr, a message or a report (reports/redact.py masks the headers)."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from eventgate.engine.identity import TokenKeys, issue
from eventgate.errors import ConfigError
from eventgate.settings_file import read_settings

DEFAULT_HEADER = "Authorization: Bearer {token}"
COMMAND_TIMEOUT_S = 30


class NoCredential(ConfigError):
    """The gate has no way to authenticate as a tenant."""


@dataclass
class TenantCredentials:
    """How to authenticate as any tenant. `keys`: mint tokens (and the expired ones the
    isolation gate tries); `tokens`: tenant → token, from --tenant-tokens; `command`: run with
    {tenant} replaced, its standard output is the token."""

    header: str = DEFAULT_HEADER
    keys: TokenKeys | None = field(default=None, repr=False)
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    command: str | None = field(default=None, repr=False)  # may carry a secret store's token
    _printed: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        name, colon, value = self.header.partition(":")
        if not colon or not name.strip() or "{token}" not in value:
            raise ConfigError(f"the credential header template {self.header!r} must read "
                              "'Header-Name: ... {token} ...', e.g. "
                              f"{DEFAULT_HEADER!r}")

    @property
    def configured(self) -> bool:
        return bool(self.keys or self.tokens or self.command)

    @property
    def can_mint(self) -> bool:
        return self.keys is not None

    def describe(self) -> str:
        """Where tokens come from, for the run's header (no secret in it)."""
        sources = ([f"minted with key {', '.join(self.keys.ids)}"] if self.keys else []) + (
            [f"{len(self.tokens)} from a tokens file"] if self.tokens else []) + (
            [f"printed by `{shlex.split(self.command)[0]} ...`"] if self.command else [])
        return "; ".join(sources) or "none"

    def token(self, tenant: UUID) -> str:
        key = str(tenant)
        if key in self.tokens:
            return self.tokens[key]
        if self.keys is not None:
            return issue(self.keys, tenant, subject="eventgate gate")
        if self.command:
            if key not in self._printed:
                self._printed[key] = self._run_command(key)
            return self._printed[key]
        raise NoCredential(
            f"no credential for tenant {key}: give the gate the engine's token keys "
            "(EVENTGATE_TOKEN_KEYS), a tokens file (--tenant-tokens, TOML: \"<tenant>\" = "
            "\"<token>\"), or a command printing one (--tenant-token-command 'vault read "
            "-field=token secret/engine/{tenant}')")

    def headers(self, tenant: UUID, token: str | None = None) -> dict[str, str]:
        name, _, value = self.header.partition(":")
        return {name.strip(): value.strip().replace("{token}", token or self.token(tenant))}

    def _run_command(self, tenant: str) -> str:
        assert self.command is not None
        argv = [part.replace("{tenant}", tenant) for part in shlex.split(self.command)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False,
                                  timeout=COMMAND_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NoCredential(f"the tenant token command `{argv[0]}` could not run for "
                               f"tenant {tenant}: {exc}") from None
        token = done.stdout.strip()
        if done.returncode != 0 or not token or "\n" in token:
            why = (f"exited with {done.returncode}" if done.returncode else
                   "printed nothing" if not token else "printed more than one line")
            raise NoCredential(f"the tenant token command `{argv[0]}` {why} for tenant "
                               f"{tenant}; it must print the token alone "
                               f"({done.stderr.strip()[-300:] or 'no stderr'})")
        return token


def read_tokens_file(path: Path) -> dict[str, str]:
    """A TOML file of "<tenant uuid>" = "<token>" lines."""
    data = read_settings(path, "the tenant tokens file (--tenant-tokens)")
    tokens: dict[str, str] = {}
    for tenant, token in data.items():
        try:
            tokens[str(UUID(tenant))] = str(token)
        except ValueError:
            raise ConfigError(f"--tenant-tokens: {path}: key {tenant!r} is not a tenant UUID"
                              ) from None
    return tokens
