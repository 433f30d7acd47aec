"""Writes the old application can make, column by column: for one row of a legacy table (or
the compatibility view answering to its name), a new value for every column but the key, then
NULL where the legacy table allows it. The same edits run on the legacy tables and through the
views show whether an INSTEAD OF trigger drops or mangles a field (compat), and, before a
rollback, whether the rollback keeps what was written through the views (integrity).

Values are made so that every constraint of both schemas accepts them: a column with few
distinct values (a status, a time zone, a wedding id) gets another value the table already
holds, or, when it holds one, another its foreign key accepts; any other column a changed value
of its own type."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from eventgate.bundle import TableMapping
from eventgate.checks.catalog import Column, checked, columns, in_unique, referenced
from eventgate.checks.result import error_line
from eventgate.checks.rows import has_rows

# At most this many distinct values: treated as a closed set (status, rsvp_status, time zone,
# theme), whose other members the CHECK constraints of the new schema accept.
FEW_VALUES = 20

# How a value of each legacy type is changed, from its current value %s (NULL: a fixed one).
CHANGED: dict[str, tuple[str, str]] = {
    "text": ("'edited ' || {v}", "'edited'"),
    "character varying": ("'edited ' || {v}", "'edited'"),
    "smallint": ("{v} + 1", "1"),
    "integer": ("{v} + 1", "1"),
    "bigint": ("{v} + 1", "1"),
    "boolean": ("NOT {v}", "true"),
    "date": ("{v} + 1", "date '2030-06-15'"),
    "time without time zone": ("{v} + interval '1 minute 1 microsecond'", "time '12:34:56'"),
    "timestamp with time zone": ("{v} + interval '1 day 1 microsecond'",
                                 "timestamptz '2030-06-15 12:34:56.789012+00'"),
}


class Unchangeable(Exception):
    """The data offers no other value for a column (one tenant, and the table its key
    references holds no second one): the edit of that column cannot be exercised."""


@dataclass(frozen=True)
class Edit:
    """SET column = value (as text, cast to the column's type; None: NULL) WHERE key = row."""

    relation: str
    key: str
    row: object
    column: Column
    value: str | None

    def statement(self) -> sql.Composed:
        return sql.SQL("UPDATE {} SET {} = CAST({} AS {}) WHERE {} = {} RETURNING *").format(
            sql.Identifier(self.relation), sql.Identifier(self.column.name),
            sql.Literal(self.value), sql.SQL(self.column.type), sql.Identifier(self.key),
            sql.Literal(self.row))

    def describe(self) -> str:
        value = "NULL" if self.value is None else repr(self.value)
        return (f"UPDATE {self.relation} SET {self.column.name} = {value} WHERE "
                f"{self.key} = {self.row}")


def edit_row(conn: psycopg.Connection, relation: str, key: str) -> object:
    """The row the edits go to: the one with the highest key (an ordinary row, not one of the
    seed's edge cases, which come first)."""
    row = conn.execute(sql.SQL("SELECT max({}) FROM {}").format(
        sql.Identifier(key), sql.Identifier(relation))).fetchone()
    assert row is not None and row[0] is not None, f"{relation} holds no rows to edit"
    return row[0]


def _wants_fresh(conn: psycopg.Connection, relation: str, column: Column, distinct: int,
                 values: int) -> bool:
    """A column that is unique (an index says so, or every row holds its own value: a slug,
    which the new schema keeps unique per tenant) gets a fresh value when eventgate can make one
    and no CHECK limits it: among a few weddings another one's slug is a duplicate. A status
    under a CHECK takes another row's."""
    return column.base_type in CHANGED and checked(conn, relation, column.name) is None and (
        distinct == values > 1 or in_unique(conn, relation, column.name) is not None)


def new_value(conn: psycopg.Connection, relation: str, key: str, row: object,
              column: Column) -> str | None:
    """A value for `column` of that row, different from the current one, as text."""
    name, table = sql.Identifier(column.name), sql.Identifier(relation)
    current = sql.SQL("(SELECT {} FROM {} WHERE {} = {})").format(
        name, table, sql.Identifier(key), sql.Literal(row))
    counted = conn.execute(sql.SQL("SELECT count(DISTINCT {0}), count({0}) FROM {1}").format(
        name, table)).fetchone()
    assert counted is not None
    if column.name.endswith("_id") or (
            counted[0] <= FEW_VALUES and not _wants_fresh(conn, relation, column, *counted)):
        # Another value the table holds: a real wedding or tenant, a status the new schema's
        # CHECK accepts.
        found = conn.execute(sql.SQL(
            "SELECT {name}::text FROM {table} WHERE {name} IS NOT NULL "
            "AND {name} IS DISTINCT FROM {current} ORDER BY {key} DESC LIMIT 1").format(
                name=name, table=table, current=current, key=sql.Identifier(key))).fetchone()
        if found is not None:
            return str(found[0])
        # The table holds one value (every wedding in one tenant): another one its foreign key
        # accepts, from the table it references.
        source = referenced(conn, relation, column.name)
        if source is not None:
            other = conn.execute(sql.SQL(
                "SELECT {ref}::text FROM {parent} WHERE {ref} IS DISTINCT FROM {current} "
                "ORDER BY {ref} DESC LIMIT 1").format(
                    ref=sql.Identifier(source[1]), parent=sql.SQL(source[0]),
                    current=current)).fetchone()
            if other is None:
                raise Unchangeable(f"{relation}.{column.name}: {source[0]}.{source[1]} holds "
                                   "no other value for it to reference")
            return str(other[0])
    if column.base_type not in CHANGED:
        raise Unchangeable(f"{relation}.{column.name}: the table holds no other {column.type} "
                           "value, no foreign key names one, and eventgate makes none of that "
                           "type (eventgate.checks.view_writes.CHANGED)")
    changed, fixed = CHANGED[column.base_type]
    expression = sql.SQL("coalesce({}, {})").format(
        sql.SQL(changed.format(v="{}")).format(current), sql.SQL(fixed))
    if column.max_length is not None:
        expression = sql.SQL("left({}, {})").format(expression, sql.Literal(column.max_length))
    value = conn.execute(sql.SQL("SELECT ({})::text").format(expression)).fetchone()
    assert value is not None
    return None if value[0] is None else str(value[0])


def edits(conn: psycopg.Connection, relation: str, key: str) -> list[tuple[Column, bool]]:
    """What to write, in order: every column but the key to a new value, then to NULL where
    allowed (the value itself is drawn just before each write, from the row as it is then)."""
    plan = []
    for column in columns(conn, relation):
        if column.name == key:
            continue
        plan.append((column, False))
        if column.nullable:
            plan.append((column, True))
    return plan


@dataclass(frozen=True)
class EditPlan:
    """The relation's columns, the row the edits go to and the edits, in order."""

    columns: list[Column]
    row: object
    edits: list[tuple[Column, bool]]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def edit_plan(conn: psycopg.Connection, mapping: TableMapping) -> EditPlan | str:
    """The plan for one legacy table, or why there is none (the gates then fail, as they
    always have: a table the old application writes to holds rows)."""
    name, key = mapping.legacy_table, mapping.key
    if not has_rows(conn, name):
        return f"{name} holds no rows to edit"
    return EditPlan(columns(conn, name), edit_row(conn, name, key), edits(conn, name, key))


def make_edit(conn: psycopg.Connection, relation: str, key: str, row: object,
              column: Column, to_null: bool) -> Edit:
    value = None if to_null else new_value(conn, relation, key, row, column)
    return Edit(relation, key, row, column, value)


def edit_or_why(conn: psycopg.Connection, relation: str, key: str, row: object,
                column: Column, to_null: bool) -> Edit | str:
    """make_edit, or why the data offers no value to make it with (Unchangeable's reason)."""
    try:
        return make_edit(conn, relation, key, row, column, to_null)
    except Unchangeable as why:
        return str(why)


def apply(conn: psycopg.Connection, edit: Edit) -> tuple[tuple[object, ...] | None, str | None]:
    """Run the edit; (the row it returned, None), or (None, the error) when it was refused."""
    try:
        with conn.transaction():
            returned = conn.execute(edit.statement()).fetchone()
    except psycopg.Error as exc:
        return None, f"{type(exc).__name__}: {error_line(exc)}"
    return returned, None


def read_row(conn: psycopg.Connection, relation: str, key: str,
             row: object) -> tuple[object, ...] | None:
    return conn.execute(sql.SQL("SELECT * FROM {} WHERE {} = {}").format(
        sql.Identifier(relation), sql.Identifier(key), sql.Literal(row))).fetchone()


def differing(names: list[str], left: tuple[object, ...] | None,
              right: tuple[object, ...] | None) -> str:
    """The columns two rows disagree on, with both values."""
    if left is None or right is None:
        return f"{'no row' if left is None else left} vs {'no row' if right is None else right}"
    return ", ".join(f"{n}: {a!r} vs {b!r}" for n, a, b in zip(names, left, right, strict=True)
                     if a != b)
