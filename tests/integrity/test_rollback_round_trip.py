"""Rollback as a gate, with the configured bundle: rolling back keeps what the old application
wrote through the compatibility views during the blue-green window, and a round trip to the base
gives back the legacy database exactly, catalog and rows.

The rollbacks run with the runner's own verification off: with it, a rollback that loses data is
refused and undone (safe, but the migration can then not be rolled back at all); without it the
gate sees what the script itself does and names the table, the row and the column it loses."""

import psycopg
import pytest
from psycopg import sql

from eventgate.bundle import Bundle, TableMapping
from eventgate.checks import snapshot, view_writes
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database

pytestmark = [pytest.mark.integrity, pytest.mark.destructive]

Rows = dict[object, tuple[object, ...]]


def _rows(conn: psycopg.Connection, mapping: TableMapping) -> Rows:
    key = sql.Identifier(mapping.key)
    query = sql.SQL("SELECT {}, t.* FROM {} t ORDER BY 1").format(
        key, sql.Identifier(mapping.legacy_table))
    return {r[0]: tuple(r[1:]) for r in conn.execute(query).fetchall()}


def _write_through_the_views(conn: psycopg.Connection, mapping: TableMapping) -> list[str]:
    """What the old application might do to one legacy name during the window: change every
    column of one row (each to a new value, then NULL where allowed), add a row, delete one."""
    name, key = mapping.legacy_table, mapping.key
    done = []
    row = view_writes.edit_row(conn, name, key)
    for column, to_null in view_writes.edits(conn, name, key):
        edit = view_writes.make_edit(conn, name, key, row, column, to_null)
        if to_null:
            continue  # the last value each column gets is a real one, which a rollback can lose
        _, refused = view_writes.apply(conn, edit)
        assert refused is None, f"{edit.describe()} is refused by the view: {refused}"
        done.append(edit.describe())
    # A new row: a copy of the edited one (its key from the view's default); its text columns
    # edited again, so a unique slug stays unique.
    columns = [c for c in view_writes.columns(conn, name) if c.name != key]
    values = [view_writes.new_value(conn, name, key, row, c)
              if c.base_type in ("text", "character varying") and not c.name.endswith("_id")
              else _text(conn, name, key, row, c.name) for c in columns]
    added = conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
        sql.SQL(", ").join(sql.SQL("CAST({} AS {})").format(sql.Literal(v), sql.SQL(c.type))
                           for v, c in zip(values, columns, strict=True)),
        sql.Identifier(key))).fetchone()
    assert added is not None
    done.append(f"INSERT INTO {name} … ({key} {added[0]})")
    gone = conn.execute(sql.SQL("DELETE FROM {} WHERE {} = (SELECT min({}) FROM {}) "
                                "RETURNING {}").format(
        sql.Identifier(name), sql.Identifier(key), sql.Identifier(key), sql.Identifier(name),
        sql.Identifier(key))).fetchone()
    assert gone is not None
    done.append(f"DELETE FROM {name} WHERE {key} = {gone[0]}")
    return done


def _text(conn: psycopg.Connection, name: str, key: str, row: object,
          column: str) -> str | None:
    found = conn.execute(sql.SQL("SELECT {}::text FROM {} WHERE {} = {}").format(
        sql.Identifier(column), sql.Identifier(name), sql.Identifier(key), sql.Literal(row))
    ).fetchone()
    assert found is not None
    return None if found[0] is None else str(found[0])


def _differences(name: str, names: list[str], before: Rows, after: Rows) -> list[str]:
    lines = [f"{name}: {key} lost: {before[key]}" for key in before.keys() - after.keys()]
    lines += [f"{name}: {key} appeared: {after[key]}" for key in after.keys() - before.keys()]
    for key in sorted(before.keys() & after.keys(), key=repr):
        if before[key] != after[key]:
            lines.append(f"{name}: {key} differs in "
                         + view_writes.differing(names, before[key], after[key])
                         + " (through the view before vs the table after)")
    return lines


def test_rolling_back_keeps_what_the_old_application_wrote_through_the_views(
        migrated_db: Database, bundle: Bundle) -> None:
    newest = bundle.migrations[-1]
    views = [m for m in bundle.mapping.values() if m.view and m.backup]
    assert views, "the bundle declares no compatibility views"
    with migrated_db.connect() as conn:
        written = [line for m in views for line in _write_through_the_views(conn, m)]
        before = {m.legacy_table: _rows(conn, m) for m in views}
        names = {m.legacy_table: [c.name for c in view_writes.columns(conn, m.legacy_table)]
                 for m in views}
        Runner(conn, bundle, verify_rollbacks=False).rollback()
        kinds = dict(conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = ANY(%s)",
            ([m.legacy_table for m in views],)).fetchall())
        assert all(kinds.get(m.legacy_table) == "r" for m in views), (
            f"after rolling back {newest.label} the legacy names are not tables again: {kinds}")
        problems = [line for m in views for line in _differences(
            m.legacy_table, names[m.legacy_table], before[m.legacy_table], _rows(conn, m))]
    assert not problems, (
        f"rolling back {newest.label} did not keep what the old application wrote through the "
        f"views ({len(written)} writes, e.g. {written[0]}):\n  " + "\n  ".join(problems[:20]))


def test_a_round_trip_to_the_base_gives_back_the_legacy_database(legacy_db: Database,
                                                                  bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        before = snapshot.fingerprint(conn)
        runner = Runner(conn, bundle, verify_rollbacks=False)
        runner.execute()
        runner.rollback(to=0)
        changed = snapshot.differences(before, snapshot.fingerprint(conn))
    assert not changed, ("migrating to the newest version and rolling back to the base does not "
                         "give back the legacy database (catalog, sequences, rows):\n  "
                         + "\n  ".join(changed))
