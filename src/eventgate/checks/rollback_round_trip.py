"""Rollback as a gate, with the configured bundle: rolling back keeps what the old application
wrote through the compatibility views during the blue-green window, and a round trip to the base
gives back the legacy database exactly, catalog and rows.

The rollbacks run with the runner's own verification off: with it, a rollback that loses data is
refused and undone (safe, but the migration can then not be rolled back at all); without it the
gate sees what the script itself does and names the table, the row and the column it loses. A
migration or rollback that fails outright raises, as the runner does."""

from __future__ import annotations

import psycopg
from psycopg import sql

from eventgate.bundle import Bundle, TableMapping
from eventgate.checks import catalog, snapshot, view_writes
from eventgate.checks.result import CheckResult
from eventgate.migrate.runner import Runner

CHECK_KEEPS = "rollback keeps view writes"
CHECK_ROUND_TRIP = "rollback round trip"
SHOWN = 20  # differences listed in a result

def _keep(conn: psycopg.Connection, mapping: TableMapping) -> sql.Identifier:
    """What the old application left behind one legacy name, kept in a temporary table of this
    session for after the rollback: compared in the server, never fetched whole (ten million
    invitations are gigabytes in Python)."""
    kept = sql.Identifier(f"eventgate_before_{mapping.legacy_table}")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(kept))
    conn.execute(sql.SQL("CREATE TEMP TABLE {} AS SELECT * FROM {}").format(
        kept, sql.Identifier(mapping.legacy_table)))
    return kept


def _row(conn: psycopg.Connection, relation: sql.Composable, key: str,
         value: object) -> tuple[object, ...] | None:
    found = conn.execute(sql.SQL("SELECT * FROM {} WHERE {} = {}").format(
        relation, sql.Identifier(key), sql.Literal(value))).fetchone()
    return None if found is None else tuple(found)


def _as_text(conn: psycopg.Connection, relation: str, key: str, row: object,
             columns: list[catalog.Column]) -> tuple[str | None, ...] | None:
    """One row's values as text, in the order of `columns`; None when the row is gone."""
    found = conn.execute(sql.SQL("SELECT {} FROM {} WHERE {} = {}").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in columns),
        sql.Identifier(relation), sql.Identifier(key), sql.Literal(row))).fetchone()
    return None if found is None else tuple(None if v is None else str(v) for v in found)


def _write_through_the_view(conn: psycopg.Connection, mapping: TableMapping,
                            unexercised: list[str]) -> tuple[list[str], str | None]:
    """What the old application might do to one legacy name during the window: change every
    column of one row (each to a new value: the last value each column gets is a real one,
    which a rollback can lose), add a row, delete one. The writes done, and why the view
    stopped them when it did; a column the data offers no other value for goes to
    `unexercised`."""
    name, key = mapping.legacy_table, mapping.key
    planned = view_writes.edit_plan(conn, mapping)
    if isinstance(planned, str):
        return [], planned
    done: list[str] = []
    for column, to_null in planned.edits:
        if to_null:
            continue
        edit = view_writes.edit_or_why(conn, name, key, planned.row, column, to_null)
        if isinstance(edit, str):
            unexercised.append(edit)
            continue
        _, refused = view_writes.apply(conn, edit)
        if refused is not None:
            return done, f"{edit.describe()} is refused by the view: {refused}"
        done.append(edit.describe())
    # A new row: a copy of the edited one (its key from the view's default); its text columns
    # edited again, so a unique slug stays unique.
    columns = [c for c in planned.columns if c.name != key]
    current = _as_text(conn, name, key, planned.row, columns)
    if current is None:
        return done, f"the row {key} = {planned.row} edited through {name} is gone from it"
    values = [view_writes.new_value(conn, name, key, planned.row, c)
              if c.base_type in ("text", "character varying") and not c.name.endswith("_id")
              else text for c, text in zip(columns, current, strict=True)]
    added = conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
        sql.SQL(", ").join(sql.SQL("CAST({} AS {})").format(sql.Literal(v), sql.SQL(c.type))
                           for v, c in zip(values, columns, strict=True)),
        sql.Identifier(key))).fetchone()
    if added is None:
        return done, f"INSERT INTO {name} through the view returned no row"
    done.append(f"INSERT INTO {name} … ({key} {added[0]})")
    gone = conn.execute(sql.SQL("DELETE FROM {} WHERE {} = (SELECT min({}) FROM {}) "
                                "RETURNING {}").format(
        sql.Identifier(name), sql.Identifier(key), sql.Identifier(key), sql.Identifier(name),
        sql.Identifier(key))).fetchone()
    if gone is None:
        return done, f"DELETE FROM {name} of its lowest {key} through the view returned no row"
    done.append(f"DELETE FROM {name} WHERE {key} = {gone[0]}")
    return done, None


def _differences(conn: psycopg.Connection, mapping: TableMapping, kept: sql.Identifier,
                 names: list[str]) -> tuple[int, list[str]]:
    """Rows of the kept copy lost from the table, rows that appeared in it, and rows whose
    values differ (as text, column by column in order): how many, and the first SHOWN named."""
    name, key = mapping.legacy_table, mapping.key
    table, k = sql.Identifier(name), sql.Identifier(key)
    only = ("SELECT x.{k}, count(*) OVER () FROM {x} x WHERE NOT EXISTS (SELECT 1 FROM {y} y "
            "WHERE y.{k} = x.{k}) ORDER BY 1 LIMIT {n}")
    total, lines = 0, []
    for left, right, word in ((kept, table, "lost"), (table, kept, "appeared")):
        found = conn.execute(sql.SQL(only).format(
            k=k, x=left, y=right, n=sql.Literal(SHOWN))).fetchall()
        total += int(found[0][1]) if found else 0
        lines += [f"{name}: {value} {word}: {_row(conn, left, key, value)}"
                  for value, _ in found]
    changed = conn.execute(sql.SQL(
        "SELECT b.{k}, count(*) OVER () FROM {kept} b JOIN {t} a ON a.{k} = b.{k} "
        "WHERE b::text IS DISTINCT FROM a::text ORDER BY 1 LIMIT {n}").format(
        k=k, kept=kept, t=table, n=sql.Literal(SHOWN))).fetchall()
    total += int(changed[0][1]) if changed else 0
    lines += [f"{name}: {value} differs in "
              + view_writes.differing(names, _row(conn, kept, key, value),
                                      _row(conn, table, key, value))
              + " (through the view before vs the table after)" for value, _ in changed]
    conn.execute(sql.SQL("DROP TABLE pg_temp.{}").format(kept))
    return total, lines


def rollback_keeps_view_writes(conn: psycopg.Connection, bundle: Bundle) -> CheckResult:
    """Write through every compatibility view of a migrated database, roll the newest migration
    back, and find every write in the legacy tables again: each changed column, the added
    rows, and not the deleted ones."""
    newest = bundle.migrations[-1]
    subject = f"rollback of {newest.label}"
    views = [m for m in bundle.mapping.values() if m.view and m.backup]
    if not views:
        return CheckResult(CHECK_KEEPS, subject, False,
                           "the bundle declares no compatibility views")
    written: list[str] = []
    unexercised: list[str] = []
    for mapping in views:
        done, refused = _write_through_the_view(conn, mapping, unexercised)
        written += done
        if refused is not None:
            return CheckResult(CHECK_KEEPS, subject, False, refused, tuple(done))
    tables = [m.legacy_table for m in views]
    kept = {m.legacy_table: _keep(conn, m) for m in views}
    names = {t: [c.name for c in catalog.columns(conn, t)] for t in tables}
    Runner(conn, bundle, verify_rollbacks=False).rollback()
    data = {"writes": written, "tables": tables, "unexercised": unexercised}
    not_tables = {t: catalog.kind_name(kind) for t in tables
                  if (kind := catalog.relkind(conn, t)) != "r"}
    if not_tables:
        return CheckResult(CHECK_KEEPS, subject, False,
                           f"after rolling back {newest.label} the legacy names are not tables "
                           f"again: {not_tables}", data=data)
    found = [_differences(conn, m, kept[m.legacy_table], names[m.legacy_table])
             for m in views]
    problems = [line for _, lines in found for line in lines]
    if problems:
        return CheckResult(CHECK_KEEPS, subject, False,
                           f"rolling back {newest.label} did not keep what the old application "
                           f"wrote through the views ({len(written)} writes, e.g. {written[0]})",
                           tuple(problems[:SHOWN]),
                           data={**data, "differences": sum(n for n, _ in found)})
    if unexercised:
        return CheckResult.unproven(
            CHECK_KEEPS, subject, f"rolling back {newest.label} kept all {len(written)} writes "
            f"made through the views, but {len(unexercised)} could not be made: "
            + "; ".join(unexercised), data=data)
    return CheckResult(CHECK_KEEPS, subject, True,
                       f"rolling back {newest.label} kept all {len(written)} writes through the "
                       f"views of {', '.join(tables)}", data=data)


def round_trip_to_base(conn: psycopg.Connection, bundle: Bundle) -> CheckResult:
    """Migrate a legacy database to the newest version and roll back to the base: catalog,
    sequences and rows must be as before (eventgate.checks.snapshot's fingerprint)."""
    subject = f"base -> {bundle.migrations[-1].label} -> base"
    before = snapshot.fingerprint(conn)
    runner = Runner(conn, bundle, verify_rollbacks=False)
    runner.execute()
    runner.rollback(to=0)
    changed = snapshot.differences(before, snapshot.fingerprint(conn))
    if changed:
        return CheckResult(CHECK_ROUND_TRIP, subject, False,
                           "migrating to the newest version and rolling back to the base does "
                           "not give back the legacy database (catalog, sequences, rows)",
                           tuple(changed), data={"changed": changed})
    return CheckResult(CHECK_ROUND_TRIP, subject, True,
                       "the legacy database is given back exactly: catalog, sequences, rows")
