"""The tenant wall in the database: the tables the bundle's [row_security] guards have
row-level security enabled and forced, the engine's role can neither bypass it nor own its way
past it, and, asked as that role, each table shows exactly the rows of the tenant the
transaction names: none of another tenant's, none at all when it names no tenant or one that
does not exist. The last part is judged by what the role sees, not by reading the policies,
so a policy that lets one tenant's rows through is caught whatever its text.

Everything runs in read-only transactions of the gate's session; the role is taken with SET
LOCAL ROLE, which needs the gate's role to be a superuser or a member of the engine's role."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from eventgate.bundle_security import GuardedTable, RowSecurity
from eventgate.checks.result import CheckResult, error_line

CHECK = "tenant row-level security"
CATALOG_CHECK = "row-level security enabled and forced"
ROLE_CHECK = "the engine's role is held to row-level security"

_CATALOG = """
SELECT c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner),
       pg_has_role(%(role)s, c.relowner, 'USAGE'),
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid
           AND (p.polroles = '{0}' OR %(role)s::regrole = ANY (p.polroles)))
  FROM pg_class c WHERE c.oid = to_regclass(%(table)s)
"""


# The roles granted the engine's role, directly or through others (pg_has_role would also
# count every superuser as a member).
_LOGIN_MEMBERS = """
WITH RECURSIVE members(oid) AS (
    SELECT member FROM pg_auth_members WHERE roleid = (SELECT oid FROM pg_roles
                                                          WHERE rolname = %s)
    UNION SELECT am.member FROM pg_auth_members am JOIN members ON am.roleid = members.oid)
SELECT r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r JOIN members USING (oid)
 WHERE r.rolcanlogin ORDER BY 1
"""


_VIEW_OWNERS = """
SELECT v.name, r.rolname, r.rolsuper, r.rolbypassrls
  FROM unnest(%s::text[]) WITH ORDINALITY AS v(name, n)
  JOIN pg_class c ON c.oid = to_regclass(v.name) JOIN pg_roles r ON r.oid = c.relowner
 ORDER BY v.n
"""


def _role(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s",
                       (name,)).fetchone()
    return None if row is None else {"super": row[0], "bypass": row[1]}


def engine_role_held(conn: psycopg.Connection, security: RowSecurity) -> CheckResult:
    """The engine's role exists, is no superuser, has no BYPASSRLS, and neither it nor a login
    role that is a member of it (the engine logs in as one) escapes the policies so; nor do the
    views over the tables, which act as their owner."""
    role = security.engine_role
    found = _role(conn, role)
    if found is None:
        return CheckResult(ROLE_CHECK, role, False, f"the engine's role {role} does not exist; "
                           "the bundle's migration creates it (or a DBA: CREATE ROLE "
                           f"{role} NOLOGIN)")
    escapes = [f"{role} is a superuser" if found["super"] else "",
               f"{role} has BYPASSRLS" if found["bypass"] else ""]
    members = conn.execute(_LOGIN_MEMBERS, (role,)).fetchall()
    escapes += [f"login {name}, a member of {role}, " + ("is a superuser" if sup else
                                                          "has BYPASSRLS")
                for name, sup, bypass in members if sup or bypass]
    escapes += [f"view {view} acts as its owner {owner}, who " + (
        "is a superuser" if sup else "has BYPASSRLS") + ": reading it bypasses the policies"
        for view, owner, sup, bypass in conn.execute(_VIEW_OWNERS, (list(security.views),))
        if sup or bypass]
    escapes = [e for e in escapes if e]
    if escapes:
        return CheckResult(ROLE_CHECK, role, False, f"the engine's role escapes row-level "
                           f"security: {'; '.join(escapes)}", details=tuple(escapes),
                           sql=_LOGIN_MEMBERS.replace("%s", f"'{role}'"))
    return CheckResult(ROLE_CHECK, role, True, f"{role}: no superuser, no BYPASSRLS, nor any "
                       f"of its {len(members)} login member(s), nor the owner of "
                       f"{len(security.views)} view(s) over the tables",
                       data={"login_members": [m[0] for m in members]})


def table_guarded(conn: psycopg.Connection, security: RowSecurity,
                  table: GuardedTable) -> CheckResult:
    """Row-level security enabled and forced on `table`, a policy applying to the engine's
    role, and the role not its owner (an owner is exempt unless forced), from the catalog.
    What the role then sees is tenant_view's."""
    row = conn.execute(_CATALOG, {"role": security.engine_role, "table": table.name}).fetchone()
    if row is None or row[0] is None:
        return CheckResult(CATALOG_CHECK, table.name, False, f"{table.name} does not exist")
    enabled, forced, owner, owns, policies = row
    broken = ([] if enabled else [f"row-level security is off on {table.name} (ALTER TABLE "
                                  f"{table.name} ENABLE ROW LEVEL SECURITY)"]) + (
        [] if forced else [f"row-level security is not forced on {table.name}, so its owner "
                           f"{owner} is exempt (ALTER TABLE {table.name} FORCE ROW LEVEL "
                           "SECURITY)"]) + (
        [f"{security.engine_role} owns {table.name} (or inherits its owner {owner})"]
        if owns else []) + (
        [] if policies else [f"no policy on {table.name} applies to {security.engine_role}: "
                             "the engine sees none of its rows"])
    if broken:
        return CheckResult(CATALOG_CHECK, table.name, False, broken[0], details=tuple(broken),
                           sql=f"SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                           f"WHERE oid = '{table.name}'::regclass")
    return CheckResult(CATALOG_CHECK, table.name, True, f"enabled and forced, owned by {owner} "
                       f"(not {security.engine_role}), {policies} polic"
                       f"{'y applies' if policies == 1 else 'ies apply'} to "
                       f"{security.engine_role}")


def _busiest_tenant(conn: psycopg.Connection, security: RowSecurity) -> UUID | None:
    source = next((t for t in security.tables if t.tenant_column), None)
    if source is None:
        return None
    row = conn.execute(sql.SQL("SELECT {c} FROM {t} GROUP BY 1 ORDER BY count(*) DESC, 1 "
                               "LIMIT 1").format(c=sql.Identifier(source.tenant_column or ""),
                                                 t=sql.Identifier(source.name))).fetchone()
    return None if row is None else UUID(str(row[0]))


def _as_engine(conn: psycopg.Connection, security: RowSecurity, table: GuardedTable,
               tenant: str, of: UUID) -> tuple[int, int]:
    """(rows visible, rows visible of another tenant than `of`) to the engine's role in a
    transaction whose setting is `tenant` ('' names none)."""
    query = (f"SELECT count(*), count(*) FILTER (WHERE {table.tenant_sql('x')} IS DISTINCT "
             f"FROM %s) FROM {table.name} x")
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(security.engine_role)))
        conn.execute("SELECT set_config(%s, %s, true)", (security.setting, tenant))
        row = conn.execute(query, (of,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def tenant_view(conn: psycopg.Connection, security: RowSecurity,
                table: GuardedTable) -> CheckResult:
    tenant = _busiest_tenant(conn, security)
    if tenant is None:
        return CheckResult.unproven(CHECK, table.name, "no tenant holds rows, so no tenant's "
                                    "view of the table can be compared with its rows")
    expected = conn.execute(f"SELECT count(*) FROM {table.name} x WHERE "
                            f"{table.tenant_sql('x')} = %s", (tenant,)).fetchone()
    total = conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()
    assert expected is not None and total is not None
    nobody = str(uuid.uuid4())  # a tenant that does not exist: it must see nothing
    # Asked first rather than tried: a refused SET ROLE is an error in the server's log.
    may = conn.execute("SELECT session_user, pg_has_role(session_user, %s, 'MEMBER')",
                       (security.engine_role,)).fetchone()
    if may is None or not may[1]:
        gate_role = may[0] if may else "the gate's role"
        return CheckResult.unproven(CHECK, table.name, f"the gate's role {gate_role} may not "
                                    f"act as {security.engine_role}, so the tables cannot be "
                                    "seen as the engine sees them; GRANT "
                                    f"{security.engine_role} TO {gate_role} lets it")
    try:
        seen = {label: _as_engine(conn, security, table, value, tenant) for label, value in
                (("the busiest tenant", str(tenant)), ("a tenant that does not exist", nobody),
                 ("no tenant", ""))}
    except psycopg.errors.InsufficientPrivilege as exc:
        return CheckResult(CHECK, table.name, False, f"{security.engine_role} may not read "
                           f"{table.name} ({error_line(exc)}): the engine could not serve it")
    setting = security.setting
    leaks = [f"with {setting} = {value!r} ({label}), {security.engine_role} sees "
             f"{visible if label != 'the busiest tenant' else foreign} row(s) of another "
             f"tenant in {table.name}" for (label, (visible, foreign)), value in
             zip(seen.items(), (str(tenant), nobody, ""), strict=True)
             if (foreign if label == "the busiest tenant" else visible)]
    own = seen["the busiest tenant"][0] - seen["the busiest tenant"][1]
    if own != expected[0]:
        leaks.append(f"with {setting} = {str(tenant)!r}, {security.engine_role} sees {own} of "
                     f"that tenant's {expected[0]} row(s) in {table.name}")
    data = {"tenant": str(tenant), "rows": total[0], "tenant_rows": expected[0],
            "seen": {k: {"visible": v[0], "of_other_tenants": v[1]} for k, v in seen.items()}}
    reproduce = (f"BEGIN READ ONLY; SET LOCAL ROLE {security.engine_role}; SELECT set_config("
                 f"'{setting}', '{nobody}', true); SELECT count(*) FROM {table.name}; ROLLBACK;")
    if leaks:
        return CheckResult(CHECK, table.name, False, leaks[0], details=tuple(leaks),
                           sql=reproduce, data=data)
    if total[0] == expected[0]:
        return CheckResult.unproven(CHECK, table.name, f"every row of {table.name} is tenant "
                                    f"{tenant}'s, so no other tenant's row could show where "
                                    "it must not", sql=reproduce, data=data)
    return CheckResult(CHECK, table.name, True, f"as {security.engine_role}: tenant {tenant} "
                       f"sees its {expected[0]} of {total[0]} rows and no other; a tenant that "
                       "does not exist and no tenant see none", sql=reproduce, data=data)
