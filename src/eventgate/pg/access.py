"""What the green gates need of the role they log in as, checked once before the first gate
reads anything: CONNECT on the database, USAGE on the schemas and SELECT on every table and
view the bundle names (its expectations and mapping) and on the migration ledger. Whatever is
missing comes back as one error naming it and the GRANT that fixes it, instead of a
"permission denied" in every test.

Nothing here writes or needs more than it checks: the catalog and the has_*_privilege
functions are open to every role, so this runs in the gate's own read-only session."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from eventgate import dsn as dsn_mod
from eventgate.bundle import Bundle
from eventgate.errors import EventgateError
from eventgate.migrate import ledger

LEDGER = f"{ledger.SCHEMA}.{ledger.TABLE}"
READ_ALL_DATA_SINCE = 140000  # server_version_num of PostgreSQL 14, which has pg_read_all_data
_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
          "f": "foreign table"}


class ReadAccessError(EventgateError):
    """The gate's role may not read what the gates read."""


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    kind: str  # table, view, ...
    usage: bool  # USAGE on its schema
    select: bool  # SELECT on the relation itself

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Access:
    role: str  # the login role, quoted as an identifier where it needs to be
    database: str
    server_version_num: int
    connect: bool
    relations: tuple[Relation, ...]

    @property
    def unreadable(self) -> list[Relation]:
        return [r for r in self.relations if not (r.usage and r.select)]


def relations_read(bundle: Bundle) -> list[str]:
    """Every relation the green gates read, as the bundle names it (unqualified names resolve
    through the search_path), the ledger last; each once, in order."""
    expected = bundle.expectations
    names: list[str] = [*expected.tables, *expected.views]
    names += [i.table for i in expected.indexes]
    names += [n for r in expected.references for n in (r.child, r.parent)]
    names += [n for r in expected.same_values for n in (r.child, r.parent)]
    names += [u.table for u in expected.unique]
    for mapping in bundle.mapping.values():
        names += [n for n in (mapping.legacy_table, mapping.target, mapping.backup, mapping.view)
                  if n]
    if expected.change_log is not None:
        names.append(f"{expected.change_log.schema}.{expected.change_log.name}")
    names.append(LEDGER)
    return list(dict.fromkeys(names))


def _search_path(conn: psycopg.Connection) -> list[str]:
    """The search_path as set, not as effective: a schema the role may not use drops out of
    current_schemas(), and that is exactly the schema to report."""
    row = conn.execute("SELECT current_setting('search_path'), session_user").fetchone()
    assert row is not None
    setting, user = str(row[0]), str(row[1])
    schemas = []
    for item in setting.split(","):
        item = item.strip()
        if item.startswith('"') and item.endswith('"'):
            item = item[1:-1].replace('""', '"')
        if item:
            schemas.append(user if item == "$user" else item)
    return schemas or ["public"]


_LOOKUP = """
SELECT w.wanted, w.rank, n.nspname, c.relname, c.relkind,
       has_schema_privilege(n.oid, 'USAGE'), has_table_privilege(c.oid, 'SELECT')
FROM unnest(%s::int[], %s::int[], %s::text[], %s::text[]) AS w(wanted, rank, schema, name)
JOIN pg_namespace n ON n.nspname = w.schema
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.name
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY w.wanted, w.rank
"""


def inspect(conn: psycopg.Connection, names: list[str]) -> Access:
    """What the session's login role may do with the named relations. A name that resolves to
    nothing is left out: the gates themselves report a table that is missing."""
    path = _search_path(conn)
    wanted: list[int] = []
    rank: list[int] = []
    schemas: list[str] = []
    rels: list[str] = []
    for i, name in enumerate(names):
        schema, dot, rel = name.rpartition(".")
        for j, candidate in enumerate([schema] if dot else path):
            wanted.append(i)
            rank.append(j)
            schemas.append(candidate)
            rels.append(rel)
    found: dict[int, Relation] = {}
    for i, _, schema, rel, kind, usage, select in conn.execute(
            _LOOKUP, (wanted, rank, schemas, rels)).fetchall():
        found.setdefault(i, Relation(schema, rel, _KINDS.get(kind, "relation"), usage, select))
    row = conn.execute(
        "SELECT quote_ident(session_user), current_database(), "
        "current_setting('server_version_num')::int, "
        "has_database_privilege(current_database(), 'CONNECT')").fetchone()
    assert row is not None
    return Access(str(row[0]), str(row[1]), int(row[2]), bool(row[3]),
                  tuple(found[i] for i in sorted(found)))


def _label(relation: Relation) -> str:
    name = relation.name if relation.schema == "public" else relation.qualified
    return f"{relation.kind} {name}"


def problem(access: Access) -> str | None:
    """The one message saying what the role lacks and how to grant it, or None."""
    role, db = access.role, access.database
    if not access.connect:
        return (f"the gate's role '{role}' may not connect to database {db}: permission "
                f"denied (no CONNECT privilege); grant it with: "
                f"GRANT CONNECT ON DATABASE {db} TO {role};")
    unreadable = access.unreadable
    if not unreadable:
        return None
    first, rest = unreadable[0], unreadable[1:]
    no_usage = list(dict.fromkeys(r.schema for r in unreadable if not r.usage))
    no_select = list(dict.fromkeys(r.schema for r in unreadable if not r.select))
    what = f"read {_label(first)}"
    if not first.usage:
        what += f" (no USAGE on schema {first.schema})"
    message = f"the gate's role '{role}' cannot {what}: permission denied"
    if rest:
        message += f"; nor {len(rest)} more the gates read: {', '.join(map(_label, rest))}"
    narrow = []
    if no_usage:
        narrow.append(f"GRANT USAGE ON SCHEMA {', '.join(no_usage)} TO {role};")
    if no_select:
        narrow.append(f"GRANT SELECT ON ALL TABLES IN SCHEMA {', '.join(no_select)} TO {role};")
    fix = " ".join(narrow)
    if access.server_version_num >= READ_ALL_DATA_SINCE:
        fix = f"GRANT pg_read_all_data TO {role};  (PostgreSQL 14+) or {fix}"
    return f"{message}\ngrant it with: {fix}"


def row_security_problem(conn: psycopg.Connection, bundle: Bundle) -> str | None:
    """The gates read every tenant's rows. A role held to the tables' row-level security (not
    their owner, no BYPASSRLS) would see none and report every row missing: say so first."""
    security = bundle.expectations.row_security
    if security is None:
        return None
    held = [name for (name,) in conn.execute(
        "SELECT t.name FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, n) JOIN pg_class c "
        "ON c.oid = to_regclass(t.name) WHERE row_security_active(c.oid) "
        "AND NOT pg_has_role(session_user, c.relowner, 'USAGE') ORDER BY t.n",
        ([t.name for t in security.tables],)).fetchall()]
    if not held:
        return None
    row = conn.execute("SELECT quote_ident(session_user)").fetchone()
    role = str(row[0]) if row else "the gate's role"
    return (f"the gate's role '{role}' is held to row-level security on {', '.join(held)}: "
            "it would see no tenant's rows there and report every row missing. The gates "
            "read all tenants; give the role BYPASSRLS (a superuser can): "
            f"ALTER ROLE {role} BYPASSRLS;")


def require_read_access(dsn: str, bundle: Bundle, *, statement_timeout_ms: int = 60_000) -> None:
    """Raise ReadAccessError naming what the DSN's role may not read, and the GRANT; the
    session is read-only and gives up after the statement timeout."""
    options = (f"-c default_transaction_read_only=on "
               f"-c statement_timeout={statement_timeout_ms}")
    try:
        with psycopg.connect(dsn, autocommit=True, application_name="eventgate green gate",
                             options=options) as conn:
            found = problem(inspect(conn, relations_read(bundle))) or row_security_problem(
                conn, bundle)
    except psycopg.Error as exc:
        raise EventgateError(f"could not check what the gate's role may read in "
                             f"{dsn_mod.describe(dsn)}: {dsn_mod.redact(str(exc)).strip()}"
                             ) from exc
    if found:
        raise ReadAccessError(found)
