"""Tenant credentials end to end without an engine: `eventgate token` makes keys and tokens,
the engine's verifier takes what it signed (across a key rotation) and refuses every
forgery with its reason, and the gate's credential settings (a tokens file, a command, a
header template) work or fail naming what is wrong, never printing a token or a secret."""

import re
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest

from eventgate.checks.tenant_isolation import Victim, forged_tokens
from eventgate.credentials import NoCredential, TenantCredentials, read_tokens_file
from eventgate.engine.identity import KEYS_ENV, CredentialRefused, TokenKeys, Verifier, issue
from eventgate.errors import ConfigError


def _eventgate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventgate.cli", *args], capture_output=True,
                          text=True, check=False, env={"PATH": "/usr/bin:/bin", **env},
                          timeout=60)


def test_eventgate_token_makes_a_key_and_a_token_the_engine_verifies() -> None:
    key = _eventgate("token", "--new-key")
    assert key.returncode == 0, key.stderr
    kid, _, secret = key.stdout.strip().partition(":")
    assert kid and len(secret) >= 32
    tenant = uuid4()
    token = _eventgate("token", "--tenant", str(tenant), "--ttl", "5m", "--subject", "ci",
                       **{KEYS_ENV: key.stdout.strip()})
    assert token.returncode == 0, token.stderr
    identity = Verifier(TokenKeys.parse(key.stdout.strip())).identify(token.stdout.strip())
    assert (identity.tenant, identity.subject) == (tenant, "ci")


@pytest.mark.parametrize(("env", "says"), [
    ({}, "no token keys: set EVENTGATE_TOKEN_KEYS"),
    ({KEYS_ENV: "k1:too-short-a-secret"}, "key 'k1' has a secret of 18 characters"),
    ({KEYS_ENV: "no-id-here"}, "each key is id:secret"),
])
def test_eventgate_token_refuses_bad_keys_without_printing_them(env: dict[str, str],
                                                                says: str) -> None:
    done = _eventgate("token", "--tenant", str(uuid4()), **env)
    assert done.returncode == 1 and says in done.stdout, done.stdout + done.stderr
    assert "too-short-a-secret" not in done.stdout + done.stderr


def test_a_rotated_key_keeps_its_tokens_until_it_is_dropped() -> None:
    old, new = TokenKeys.generate("old"), TokenKeys.generate("new")
    tenant = uuid4()
    signed_by_old = issue(old, tenant)
    both = TokenKeys.parse(f"{new.text()},{old.text()}")
    assert Verifier(both).identify(signed_by_old).tenant == tenant
    assert Verifier(both).identify(issue(both, tenant)).tenant == tenant  # newest signs
    with pytest.raises(CredentialRefused, match="a key this engine does not hold"):
        Verifier(new).identify(signed_by_old)


def test_every_forgery_is_refused_with_its_reason() -> None:
    keys = TokenKeys.generate("k-engine")
    intruder, owner = uuid4(), uuid4()
    target = Victim(owner, 1, "Their wedding", "wedding", "published", frozenset({1}))
    credentials = TenantCredentials(keys=keys)
    reasons = {}
    for name, token in forged_tokens(credentials, intruder, target).items():
        with pytest.raises(CredentialRefused) as refused:
            Verifier(keys).identify(token)
        reasons[name] = str(refused.value)
    assert reasons == {
        "unsigned (alg none)": "tokens are signed with HS256",
        "signed with another key": "the token is signed with a key this engine does not hold",
        "tampered (tenant claim rewritten)": "the token's signature does not verify",
        "expired an hour ago": "the token has expired",
        "the engine's key id with a guessed secret": "the token's signature does not verify",
    }
    with pytest.raises(CredentialRefused, match="accepts no tenant credentials"):
        Verifier(None).identify(issue(keys, owner))


def test_a_tokens_file_and_a_token_command_authenticate_as_their_tenant(
        tmp_path: Path) -> None:
    tenant = uuid4()
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'"{tenant}" = "file-token"\n')
    from_file = TenantCredentials(tokens=read_tokens_file(tokens))
    assert from_file.headers(tenant) == {"Authorization": "Bearer file-token"}
    stranger = uuid4()
    with pytest.raises(NoCredential, match=f"no credential for tenant {stranger}"):
        from_file.headers(stranger)
    command = f"{sys.executable} -c \"import sys; print('cmd-' + sys.argv[1])\" {{tenant}}"
    from_command = TenantCredentials("X-Api-Key: {token}", command=command)
    assert from_command.headers(tenant) == {"X-Api-Key": f"cmd-{tenant}"}
    assert "cmd-" not in repr(from_command) and "file-token" not in repr(from_file)


def test_bad_credential_settings_fail_naming_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('"not-a-uuid" = "secret-token"\n')
    with pytest.raises(ConfigError, match="key 'not-a-uuid' is not a tenant UUID"):
        read_tokens_file(bad)
    with pytest.raises(ConfigError, match=re.escape("must read 'Header-Name: ... {token} ...'")):
        TenantCredentials("Authorization: Bearer")
    failing = TenantCredentials(command=f"{sys.executable} -c \"import sys; print('leaked'); "
                                "sys.exit(3)\"")
    with pytest.raises(NoCredential) as refused:
        failing.headers(uuid4())
    assert "exited with 3" in str(refused.value) and "leaked" not in str(refused.value)
