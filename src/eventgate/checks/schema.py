"""Schema presence: the tables and views the migration must leave behind, and a mapping that
accounts for every legacy column."""

from __future__ import annotations

import psycopg

from eventgate.bundle import Expectations, TableMapping
from eventgate.checks.catalog import KIND_NAMES, columns, kind_name, relkind
from eventgate.checks.result import CheckResult


def required_relations(conn: psycopg.Connection, expectations: Expectations) -> CheckResult:
    wanted = [(t, "r") for t in expectations.tables] + [(v, "v") for v in expectations.views]
    wrong = []
    for name, kind in wanted:
        found = relkind(conn, name)
        if found != kind:
            wrong.append(f"{name}: expected {KIND_NAMES[kind]}, found {kind_name(found)}")
    if wrong:
        return CheckResult("required schema objects", "expectations.toml [schema]", False,
                           f"{len(wrong)} of {len(wanted)} tables and views are not as required",
                           tuple(wrong))
    return CheckResult("required schema objects", "expectations.toml [schema]", True,
                       f"all {len(wanted)} tables and views present")


def mapping_covers_legacy(conn: psycopg.Connection, mapping: TableMapping) -> CheckResult:
    """Every column of the legacy table is mapped or declared dropped, and nothing else is."""
    subject = f"mapping.toml [tables.{mapping.legacy_table}]"
    actual = [c.name for c in columns(conn, mapping.legacy_source)]
    if not actual:
        return CheckResult("mapping totality", subject, False,
                           f"the legacy table {mapping.legacy_source} does not exist")
    unmapped = [c for c in actual if c not in mapping.columns]
    unknown = [c for c in mapping.columns if c not in actual]
    details = [f"legacy column {mapping.legacy_table}.{c} is neither mapped nor declared "
               "dropped" for c in unmapped]
    details += [f"mapping.toml maps {mapping.legacy_table}.{c}, which the legacy table "
                "does not have" for c in unknown]
    if details:
        return CheckResult("mapping totality", subject, False,
                           f"{len(details)} column(s) unaccounted for", tuple(details))
    return CheckResult("mapping totality", subject, True, f"all {len(actual)} columns accounted "
                       "for")
