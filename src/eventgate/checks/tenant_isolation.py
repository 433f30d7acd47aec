"""Tenant isolation over HTTP, on any engine: one tenant's credential asks for another
tenant's events (with their participants and sections) and legacy invitations, lists,
filters and pages, and tries to change and delete them; forged credentials (unsigned,
tampered, signed with another key, expired) are refused. The victim's rows are drawn from the
engine's database, which also says what the answers may contain.

A probe that cannot stand on its own is not proof: the owner must read its own event, or the
refusals prove nothing."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import jwt
import psycopg

from eventgate.checks.result import CheckResult
from eventgate.credentials import TenantCredentials
from eventgate.engine.identity import TokenKeys, issue

CHECK = "tenant isolation"
MAX_PAGES = 50
Headers = dict[str, str]


@dataclass(frozen=True)
class Victim:
    """The tenant whose rows another tenant must never reach, and those rows."""

    tenant: UUID
    event_id: int
    title: str
    event_type: str
    status: str
    event_ids: frozenset[int] = field(repr=False)
    wedding_id: int | None = None  # one of its weddings with invitations, if it has one


def victim(conn: psycopg.Connection, tenant: UUID) -> Victim | None:
    """`tenant`'s event with the most participants and sections, and its weddings."""
    row = conn.execute(
        "SELECT e.id, e.title, e.event_type, e.status FROM events e WHERE e.tenant_id = %s "
        "ORDER BY (SELECT count(*) FROM event_participants p WHERE p.event_id = e.id) + "
        "(SELECT count(*) FROM event_sections s WHERE s.event_id = e.id) DESC, e.id LIMIT 1",
        (tenant,)).fetchone()
    if row is None:
        return None
    ids = frozenset(r[0] for r in conn.execute("SELECT id FROM events WHERE tenant_id = %s",
                                               (tenant,)).fetchall())
    wedding = conn.execute(
        "SELECT w.id FROM wedding_events w WHERE w.tenant_id = %s AND EXISTS (SELECT 1 FROM "
        "wedding_invitations i WHERE i.wedding_id = w.id) ORDER BY w.id LIMIT 1",
        (tenant,)).fetchone()
    return Victim(tenant, row[0], str(row[1]), row[2], row[3], ids,
                  None if wedding is None else wedding[0])


def _refused(response: httpx.Response, *statuses: int) -> bool:
    return response.status_code in statuses


def _listed(client: httpx.Client, headers: Headers, **params: Any) -> tuple[list[dict[str, Any]],
                                                                            str | None]:
    """Every event a list request's pages give, or the first non-200 answer."""
    events: list[dict[str, Any]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/events", params=query, headers=headers)
        if response.status_code != 200:
            return events, f"GET /api/events {query} answered {response.status_code}"
        body = response.json()
        events += body.get("data", [])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return events, None


def reads_stay_in_tenant(client: httpx.Client, intruder: UUID, intruder_headers: Headers,
                         owner_headers: Headers, target: Victim) -> CheckResult:
    subject = f"tenant {intruder} reading tenant {target.tenant}'s data"
    own = client.get(f"/api/events/{target.event_id}", headers=owner_headers)
    if own.status_code != 200:
        return CheckResult(CHECK, subject, False, f"the owner cannot read its own event "
                           f"{target.event_id} (answered {own.status_code}), so the refusals "
                           "below would prove nothing", details=(own.text[:300],))
    leaks: list[str] = []
    theirs = client.get(f"/api/events/{target.event_id}", headers=intruder_headers)
    if not _refused(theirs, 403, 404) or target.title in theirs.text:
        leaks.append(f"GET /api/events/{target.event_id} (with its participants and sections) "
                     f"answered {theirs.status_code} to another tenant")
    if target.wedding_id is not None:
        path = f"/api/weddings/{target.wedding_id}/invitations"
        invitations = client.get(path, headers=intruder_headers)
        if not _refused(invitations, 403, 404):
            leaks.append(f"GET {path} answered {invitations.status_code} to another tenant")
    for params in ({}, {"type": target.event_type}, {"status": target.status},
                   {"type": target.event_type, "status": target.status}):
        events, failure = _listed(client, intruder_headers, **params)
        if failure:
            leaks.append(f"{failure} to tenant {intruder}, which may list its own events")
        foreign = sorted({int(e.get("id") or 0) for e in events
                          if e.get("id") in target.event_ids
                          or str(e.get("tenant_id", intruder)) != str(intruder)})
        if foreign:
            leaks.append(f"GET /api/events {params or ''} listed {len(foreign)} event(s) of "
                         f"another tenant to tenant {intruder}: ids {foreign[:10]}")
    if leaks:
        return CheckResult(CHECK, subject, False, leaks[0], details=tuple(leaks))
    return CheckResult(CHECK, subject, True, f"event {target.event_id}"
                       + (f", wedding {target.wedding_id}'s invitations" if target.wedding_id
                          else "") + ", and every page of 4 lists and filters: nothing of "
                       "the other tenant's reached it")


def writes_stay_in_tenant(client: httpx.Client, conn: psycopg.Connection, intruder: UUID,
                          intruder_headers: Headers, target: Victim) -> CheckResult:
    """PATCH and DELETE of the victim's event with another tenant's credential, and a POST
    naming the victim's tenant in its body: refused, and the database unchanged."""
    subject = f"tenant {intruder} writing to tenant {target.tenant}'s events"
    before = _event_row(conn, target.event_id)
    broken: list[str] = []
    patched = client.patch(f"/api/events/{target.event_id}", headers=intruder_headers,
                           json={"title": "taken over by another tenant"})
    if not _refused(patched, 403, 404):
        broken.append(f"PATCH /api/events/{target.event_id} answered {patched.status_code} "
                      "to another tenant")
    deleted = client.delete(f"/api/events/{target.event_id}", headers=intruder_headers)
    if not _refused(deleted, 403, 404):
        broken.append(f"DELETE /api/events/{target.event_id} answered {deleted.status_code} "
                      "to another tenant")
    created = client.post("/api/events", headers=intruder_headers, json={
        "event_type": "conference", "title": "Planted", "tenant_id": str(target.tenant),
        "slug": f"planted-{secrets.token_hex(4)}", "timezone": "UTC"})
    if created.status_code == 201:
        planted = created.json()
        if str(planted.get("tenant_id")) != str(intruder):
            broken.append(f"POST /api/events with tenant_id {target.tenant} in its body created "
                          f"event {planted.get('id')} in tenant {planted.get('tenant_id')}")
        client.delete(f"/api/events/{planted.get('id')}", headers=intruder_headers)
    after = _event_row(conn, target.event_id)
    if after != before:
        broken.append(f"event {target.event_id} of tenant {target.tenant} changed: "
                      f"{before} -> {after}")
    if broken:
        return CheckResult(CHECK, subject, False, broken[0], details=tuple(broken))
    return CheckResult(CHECK, subject, True, f"PATCH and DELETE of event {target.event_id} "
                       f"refused ({patched.status_code}, {deleted.status_code}), a POST naming "
                       "the other tenant stayed in its own, and the row is unchanged")


def _event_row(conn: psycopg.Connection, event_id: int) -> tuple[Any, ...] | None:
    return conn.execute("SELECT tenant_id, title, updated_at FROM events WHERE id = %s",
                        (event_id,)).fetchone()


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def forged_tokens(credentials: TenantCredentials, intruder: UUID,
                  target: Victim) -> dict[str, str]:
    """Tokens that must prove nothing, each claiming the victim's tenant: unsigned, the
    intruder's own token with its tenant claim rewritten (signature kept), one signed with a
    key the engine does not hold, and (when the gate holds the engine's keys) an expired one."""
    claims = {"iss": "eventgate", "aud": "event-engine", "sub": "intruder",
              "tenant": str(target.tenant), "iat": 1, "exp": 4_102_444_800}
    forged = {"unsigned (alg none)": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
              "signed with another key": issue(TokenKeys.generate("k1"), target.tenant)}
    real = credentials.token(intruder)
    parts = real.split(".")
    if len(parts) == 3:
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            payload = {k: (str(target.tenant) if str(v) == str(intruder) else v)
                       for k, v in payload.items()}
            forged["tampered (tenant claim rewritten)"] = f"{parts[0]}.{_b64(payload)}.{parts[2]}"
        except (ValueError, json.JSONDecodeError):
            pass
    if "tampered (tenant claim rewritten)" not in forged:  # an opaque token: flip a character
        flipped = real[:-1] + ("A" if real[-1:] != "A" else "B")
        forged["tampered (last character changed)"] = flipped
    if credentials.keys is not None:
        kid = credentials.keys.ids[0]
        keys = TokenKeys(((kid, str(credentials.keys.secret(kid))),))
        forged["expired an hour ago"] = issue(keys, target.tenant, ttl_s=-3600)
        forged["the engine's key id with a guessed secret"] = jwt.encode(
            claims, "guess" * 8, algorithm="HS256", headers={"kid": kid})
    return forged


def forged_credentials_refused(client: httpx.Client, credentials: TenantCredentials,
                               intruder: UUID, target: Victim) -> CheckResult:
    subject = f"forged credentials claiming tenant {target.tenant}"
    accepted: list[str] = []
    tried = forged_tokens(credentials, intruder, target)
    for name, token in tried.items():
        headers = credentials.headers(target.tenant, token=token)
        for path in (f"/api/events/{target.event_id}", "/api/events"):
            response = client.get(path, headers=headers)
            if response.status_code not in (401, 403) or target.title in response.text:
                accepted.append(f"{name}: GET {path} answered {response.status_code}")
    # A header naming the victim beside the intruder's real credential changes nothing.
    mixed = {**credentials.headers(intruder), "X-Tenant-ID": str(target.tenant)}
    events, _ = _listed(client, mixed)
    if any(e.get("id") in target.event_ids for e in events):
        accepted.append("X-Tenant-ID naming the victim beside another tenant's credential "
                        "listed the victim's events")
    if accepted:
        return CheckResult(CHECK, subject, False, accepted[0], details=tuple(accepted))
    missing = "" if credentials.keys else "; not tried: an expired token (the gate holds no " \
        "token keys to sign one)"
    return CheckResult(CHECK, subject, True, f"{len(tried)} forged tokens refused: "
                       f"{', '.join(tried)}{missing}", data={"tried": list(tried)})

