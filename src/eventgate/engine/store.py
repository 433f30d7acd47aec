"""The engine's SQL: every query is scoped to one tenant, so no handler can forget to."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

EVENT_COLUMNS = ("id", "tenant_id", "event_type", "title", "slug", "start_date", "end_date",
                 "timezone", "venue_name", "venue_address", "status", "metadata", "created_at",
                 "updated_at")
# The per-transaction setting the tables' row-level security policies read (bundle 007).
TENANT_SETTING = "eventgate.tenant_id"
SELECT_EVENT = sql.SQL("SELECT {} FROM events").format(
    sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS)))


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The id a page continues after, or None when the cursor is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        number = int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return number if kind == "id" and 0 <= number < 2**63 else None


def escapes_row_security(conn: psycopg.Connection) -> str | None:
    """The session's login when the events table's row-level security does not hold it (a
    superuser, BYPASSRLS, or the owner of an unforced table), else None."""
    row = conn.execute("SELECT session_user, to_regclass('events') IS NOT NULL AND NOT "
                       "row_security_active('events')").fetchone()
    return str(row[0]) if row and row[1] else None


def tenant_exists(conn: psycopg.Connection, tenant: UUID) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = %s)",
                        (tenant,)).fetchone() == (True,)


def busiest_tenant(conn: psycopg.Connection) -> UUID | None:
    """The tenant owning the most events (the gates' subject), None on an empty database."""
    row = conn.execute("SELECT tenant_id FROM events GROUP BY 1 "
                       "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    return None if row is None else UUID(str(row[0]))


def another_tenant(conn: psycopg.Connection, tenant: UUID) -> UUID | None:
    """Some real tenant other than `tenant`, None on a single-tenant database."""
    row = conn.execute("SELECT id FROM tenants WHERE id <> %s ORDER BY id LIMIT 1",
                       (tenant,)).fetchone()
    return None if row is None else UUID(str(row[0]))


def list_events(conn: psycopg.Connection, tenant: UUID, *, event_type: str | None,
                status: str | None, start_from: datetime | None, start_to: datetime | None,
                after_id: int | None, limit: int) -> list[dict[str, Any]]:
    where = [sql.SQL("tenant_id = %(tenant)s")]
    if event_type:
        where.append(sql.SQL("event_type = %(event_type)s"))
    if status:
        where.append(sql.SQL("status = %(status)s"))
    if start_from:
        where.append(sql.SQL("start_date >= %(start_from)s"))
    if start_to:
        where.append(sql.SQL("start_date <= %(start_to)s"))
    if after_id is not None:
        where.append(sql.SQL("id > %(after_id)s"))
    query = sql.SQL("{} WHERE {} ORDER BY id LIMIT %(limit)s").format(
        SELECT_EVENT, sql.SQL(" AND ").join(where))
    params = {"tenant": tenant, "event_type": event_type, "status": status,
              "start_from": start_from, "start_to": start_to, "after_id": after_id,
              "limit": limit}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def get_event(conn: psycopg.Connection, tenant: UUID, event_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql.SQL("{} WHERE id = %s AND tenant_id = %s").format(SELECT_EVENT),
                           (event_id, tenant)).fetchone()


def event_children(conn: psycopg.Connection, event_id: int) -> tuple[list[dict[str, Any]],
                                                                     list[dict[str, Any]]]:
    with conn.cursor(row_factory=dict_row) as cur:
        participants = cur.execute(
            "SELECT id, role, display_name, email, phone, rsvp_status, party_size, metadata, "
            "invited_at, responded_at FROM event_participants WHERE event_id = %s ORDER BY id",
            (event_id,)).fetchall()
        sections = cur.execute(
            "SELECT id, section_type, title, content, position, is_visible, metadata "
            "FROM event_sections WHERE event_id = %s ORDER BY position, id",
            (event_id,)).fetchall()
    return participants, sections


def insert_event(conn: psycopg.Connection, tenant: UUID, values: dict[str, Any]) -> dict[
        str, Any]:
    columns = ["tenant_id", *values]
    query = sql.SQL("INSERT INTO events ({}) VALUES ({}) RETURNING {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
        sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS)))
    params = {**_adapt(values), "tenant_id": tenant}
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, params).fetchone()
    assert row is not None
    return row


def update_event(conn: psycopg.Connection, tenant: UUID, event_id: int,
                 values: dict[str, Any]) -> dict[str, Any] | None:
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values]
    assignments.append(sql.SQL("updated_at = now()"))
    query = sql.SQL("UPDATE events SET {} WHERE id = %(event_id)s AND tenant_id = %(tenant)s "
                    "RETURNING {}").format(sql.SQL(", ").join(assignments),
                                           sql.SQL(", ").join(map(sql.Identifier,
                                                                  EVENT_COLUMNS)))
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, {**_adapt(values), "event_id": event_id,
                                   "tenant": tenant}).fetchone()


def delete_event(conn: psycopg.Connection, tenant: UUID, event_id: int) -> bool:
    done = conn.execute("DELETE FROM events WHERE id = %s AND tenant_id = %s",
                        (event_id, tenant))
    return done.rowcount == 1


def _adapt(values: dict[str, Any]) -> dict[str, Any]:
    return {k: Jsonb(v) if k == "metadata" else v for k, v in values.items()}


def event_types(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT code, name, plugin, is_active FROM event_types "
                           "ORDER BY code").fetchall()


def legacy_invitations(conn: psycopg.Connection, tenant: UUID,
                       wedding_id: int) -> list[dict[str, Any]] | None:
    """The wedding's invitations through the compatibility views, or None if the tenant has no
    such wedding."""
    found = conn.execute("SELECT EXISTS (SELECT 1 FROM wedding_events WHERE id = %s AND "
                         "tenant_id = %s)", (wedding_id, tenant)).fetchone()
    if found != (True,):
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM wedding_invitations WHERE wedding_id = %s "
                           "ORDER BY id", (wedding_id,)).fetchall()


def known_timezones(conn: psycopg.Connection) -> frozenset[str]:
    rows = conn.execute("SELECT name FROM pg_timezone_names").fetchall()
    return frozenset(r[0] for r in rows)


def event_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Events of every tenant by type. The engine's role sees one tenant at a time, so the
    count is the schema's own (a function acting as the owner); a schema without it is
    counted directly."""
    try:
        with conn.transaction():
            rows = conn.execute("SELECT event_type, events FROM event_counts_by_type()"
                                ).fetchall()
    except psycopg.errors.UndefinedFunction:
        rows = conn.execute("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1"
                            ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def migration_complete(conn: psycopg.Connection, version: int) -> bool:
    row = conn.execute(
        "SELECT to_regclass('eventgate_ledger.migration_ledger') IS NOT NULL").fetchone()
    if row != (True,):
        return False
    done = conn.execute("SELECT EXISTS (SELECT 1 FROM eventgate_ledger.migration_ledger "
                        "WHERE version = %s)", (version,)).fetchone()
    return done == (True,)
