"""Who is asking: the tenant a request may act for, from a signed token the engine verifies.

A credential is a JWT (RFC 7519) signed with HS256 by one of the engine's token keys, naming
its tenant in the `tenant` claim. A client cannot forge one: the tenant comes from the verified
claims only, never from a header the client writes. Keys are `id:secret` pairs
(EVENTGATE_TOKEN_KEYS, comma-separated): the first signs (`eventgate token`), every one
verifies, picked by the token's `kid`, so keys rotate without a flag day (docs/tenant-isolation.md).

Everything here is decided before the database is asked anything, so a refused credential
costs the same whether or not its tenant exists."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from uuid import UUID

import jwt

from eventgate.errors import ConfigError

ALGORITHM = "HS256"
ISSUER = "eventgate"
AUDIENCE = "event-engine"
MIN_SECRET_CHARS = 32  # 256 bits of a urlsafe secret, what HS256 asks for (RFC 7518 3.2)
LEEWAY_S = 30  # clocks of the issuer and the engine may differ this much
KEYS_ENV = "EVENTGATE_TOKEN_KEYS"


class CredentialRefused(Exception):
    """The request's credential proves nothing: the reason is safe to tell the client."""


@dataclass(frozen=True)
class TokenKeys:
    """The engine's signing keys, newest first. Secrets stay out of every repr."""

    keys: tuple[tuple[str, str], ...] = field(repr=False)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(kid for kid, _ in self.keys)

    @classmethod
    def parse(cls, text: str, source: str = KEYS_ENV) -> TokenKeys:
        keys: list[tuple[str, str]] = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            kid, colon, secret = part.partition(":")
            if not colon or not kid.strip():
                raise ConfigError(f"{source}: each key is id:secret (got one without an id); "
                                  "make one with `eventgate token --new-key`")
            if len(secret) < MIN_SECRET_CHARS:
                raise ConfigError(f"{source}: key {kid.strip()!r} has a secret of "
                                  f"{len(secret)} characters; HS256 needs at least "
                                  f"{MIN_SECRET_CHARS} (eventgate token --new-key)")
            if kid.strip() in {k for k, _ in keys}:
                raise ConfigError(f"{source}: key id {kid.strip()!r} appears twice")
            keys.append((kid.strip(), secret))
        if not keys:
            raise ConfigError(f"{source} holds no key; make one with `eventgate token "
                              "--new-key`")
        return cls(tuple(keys))

    @classmethod
    def generate(cls, kid: str | None = None) -> TokenKeys:
        return cls(((kid or time.strftime("k%Y%m%d"), secrets.token_urlsafe(32)),))

    def text(self) -> str:
        """The setting's value, to hand to an engine started here (never printed)."""
        return ",".join(f"{kid}:{secret}" for kid, secret in self.keys)

    def secret(self, kid: str) -> str | None:
        return dict(self.keys).get(kid)


@dataclass(frozen=True)
class Identity:
    tenant: UUID
    subject: str


def issue(keys: TokenKeys, tenant: UUID, *, ttl_s: int = 3600, subject: str = "eventgate",
          now: float | None = None) -> str:
    """A token for `tenant`, signed with the newest key, valid for ttl_s seconds (negative
    gives one that has already expired, for the gates that must see it refused)."""
    kid, secret = keys.keys[0]
    issued = int(time.time() if now is None else now)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "tenant": str(tenant),
              "iat": issued, "exp": issued + ttl_s, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})


class Verifier:
    """Turns a bearer token into an Identity, or refuses it with a reason."""

    def __init__(self, keys: TokenKeys | None) -> None:
        self.keys = keys

    def identify(self, token: str) -> Identity:
        if self.keys is None:
            raise CredentialRefused("this engine accepts no tenant credentials yet")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise CredentialRefused("the token is not a JWT") from None
        # Only our algorithm, whatever the header claims: "none" and key confusion end here.
        if header.get("alg") != ALGORITHM:
            raise CredentialRefused(f"tokens are signed with {ALGORITHM}") from None
        secret = self.keys.secret(str(header.get("kid", "")))
        if secret is None:
            raise CredentialRefused("the token is signed with a key this engine does not hold")
        try:
            claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                                issuer=ISSUER, leeway=LEEWAY_S,
                                options={"require": ["exp", "iat", "sub", "tenant"]})
        except jwt.ExpiredSignatureError:
            raise CredentialRefused("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise CredentialRefused("the token's signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise CredentialRefused(f"the token is not valid: {exc}") from None
        try:
            tenant = UUID(str(claims["tenant"]))
        except ValueError:
            raise CredentialRefused("the token's tenant claim is not a UUID") from None
        return Identity(tenant, str(claims["sub"]))
