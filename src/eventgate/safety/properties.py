"""What belongs to a database itself rather than to its contents, which pg_dump leaves out of
an archive taken without --create: its ALTER DATABASE ... SET settings, its privileges and its
comment. A restore copies them from the live database to the restored one before the swap."""

from __future__ import annotations

import psycopg
from psycopg import sql

from eventgate.safety.databases import database_properties

DATABASE_PRIVILEGES = {"CREATE", "CONNECT", "TEMPORARY"}

# Settings whose value is a list of quoted items (GUC_LIST_QUOTE in PostgreSQL): stored as
# '"$user", public', they must be set item by item, as pg_dump does, or become one odd name.
LIST_SETTINGS = {"search_path", "temp_tablespaces", "session_preload_libraries",
                 "shared_preload_libraries", "local_preload_libraries",
                 "unix_socket_directories"}


def _set_setting(name: str, value: str) -> sql.Composable:
    if name.lower() in LIST_SETTINGS:
        items = [sql.Literal(item) for item in _split_list(value)] or [sql.Literal("")]
        return sql.SQL("SET {} TO {}").format(sql.Identifier(name), sql.SQL(", ").join(items))
    return sql.SQL("SET {} TO {}").format(sql.Identifier(name), sql.Literal(value))


def _split_list(value: str) -> list[str]:
    """'"$user", public' → ['$user', 'public'] (PostgreSQL's SplitGUCList)."""
    items, current, quoted, i = [], "", False, 0
    while i < len(value):
        char = value[i]
        if quoted:
            if char == '"' and value[i + 1:i + 2] == '"':
                current += '"'
                i += 1
            elif char == '"':
                quoted = False
            else:
                current += char
        elif char == '"':
            quoted = True
        elif char == ",":
            items.append(current.strip())
            current = ""
        else:
            current += char
        i += 1
    items.append(current.strip())
    return [item for item in items if item]


def copy_database_properties(conn: psycopg.Connection, source: str, target: str) -> tuple[
        int, list[str]]:
    """pg_dump leaves out what belongs to the database itself (it is not in the archive
    without --create): its ALTER DATABASE ... SET settings, privileges and comment. Copied
    from the live database; returns (settings copied, notes)."""
    notes: list[str] = []
    ident = sql.Identifier(target)
    settings = conn.execute(
        "SELECT unnest(s.setconfig) FROM pg_db_role_setting s "
        "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s AND s.setrole = 0",
        (source,)).fetchall()
    for (entry,) in settings:
        name, _, value = str(entry).partition("=")
        conn.execute(sql.SQL("ALTER DATABASE {} ").format(ident) + _set_setting(name, value))
    for role, entry in conn.execute(
            "SELECT pg_get_userbyid(s.setrole), unnest(s.setconfig) FROM pg_db_role_setting s "
            "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s "
            "AND s.setrole <> 0", (source,)).fetchall():
        notes.append(f"not copied (role-specific): ALTER ROLE {role} IN DATABASE {source} SET "
                     f"{entry}; it stays with {source}'s previous database")
    props = database_properties(conn, source) or {}
    if props.get("datacl") is not None:
        _copy_privileges(conn, source, target, str(props["owner"]))
    if props.get("comment") is not None:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            ident, sql.Literal(props["comment"])))
    before, after = _privileges(conn, source), _privileges(conn, target)
    if before != after:
        notes.append(f"database privileges of {source} differ after the copy (grantors are "
                     f"recorded as the owner): before {before}, now {after}")
    return len(settings), notes


def _privileges(conn: psycopg.Connection, name: str) -> list[str]:
    props = database_properties(conn, name) or {}
    return sorted(props.get("datacl") or [])


def _copy_privileges(conn: psycopg.Connection, source: str, target: str, owner: str) -> None:
    ident = sql.Identifier(target)
    # From nothing, then exactly the live database's grants (the owner's own included).
    for grantee in (sql.SQL("PUBLIC"), sql.Identifier(owner)):
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(ident, grantee))
    for grantee, privilege, grantable in conn.execute(
            "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, "
            "a.privilege_type, a.is_grantable FROM pg_database d, aclexplode(d.datacl) a "
            "WHERE d.datname = %s", (source,)).fetchall():
        if privilege not in DATABASE_PRIVILEGES:
            continue
        to = sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)
        conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
            sql.SQL(privilege), ident, to, sql.SQL(" WITH GRANT OPTION" if grantable else "")))
