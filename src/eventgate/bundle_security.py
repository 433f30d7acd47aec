"""expectations.toml's [row_security]: the tables the tenant wall guards, the setting the
engine names its tenant in, and the role the engine runs as. Read here; checked against a
database by checks/row_security.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventgate.errors import BundleError

KEYS = {"setting", "engine_role", "tables", "views", "why"}
TABLE_KEYS = {"name", "tenant_column", "via"}


@dataclass(frozen=True)
class GuardedTable:
    """A table under the tenant policies. Its rows' tenant is `tenant_column`, or, for a table
    without one, the tenant of the row `via` names: `via = "event_id -> events.id"` reads "the
    tenant of the events row whose id is this row's event_id"."""

    name: str
    tenant_column: str | None = None
    via: tuple[str, str, str] | None = None  # (this table's column, parent table, its key)

    def tenant_sql(self, alias: str) -> str:
        """An expression for the tenant of row `alias` of this table (a subquery for `via`)."""
        if self.tenant_column:
            return f"{alias}.{self.tenant_column}"
        assert self.via is not None
        column, parent, key = self.via
        return f"(SELECT p.tenant_id FROM {parent} p WHERE p.{key} = {alias}.{column})"


@dataclass(frozen=True)
class RowSecurity:
    setting: str  # the per-transaction setting the policies read, e.g. eventgate.tenant_id
    engine_role: str  # the role the engine's login is a member of, held to the policies
    tables: tuple[GuardedTable, ...]
    why: str = ""
    views: tuple[str, ...] = ()  # views over them, which must not act as a role past the wall


def read_row_security(spec: object) -> RowSecurity | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or not {"setting", "engine_role", "tables"} <= set(spec):
        raise BundleError("expectations.toml: [row_security] takes setting, engine_role and "
                          "tables (a list of { name, tenant_column } or { name, via })")
    unknown = set(spec) - KEYS
    if unknown:
        raise BundleError(f"expectations.toml: [row_security] has unknown keys "
                          f"{', '.join(sorted(unknown))}; it takes {', '.join(sorted(KEYS))}")
    return RowSecurity(str(spec["setting"]), str(spec["engine_role"]),
                       tuple(_table(t) for t in spec["tables"]),
                       " ".join(str(spec.get("why", "")).split()),
                       tuple(str(v) for v in spec.get("views", ())))


def _table(spec: Any) -> GuardedTable:
    if not isinstance(spec, dict) or "name" not in spec or set(spec) - TABLE_KEYS or (
            ("tenant_column" in spec) == ("via" in spec)):
        raise BundleError(f"expectations.toml: [row_security] table {spec!r} must be "
                          "{ name, tenant_column = \"...\" } or { name, via = \"col -> "
                          "table.key\" }")
    if "tenant_column" in spec:
        return GuardedTable(spec["name"], tenant_column=spec["tenant_column"])
    column, arrow, target = str(spec["via"]).partition("->")
    parent, dot, key = target.strip().rpartition(".")
    if not arrow or not dot or not column.strip() or not parent:
        raise BundleError(f"expectations.toml: [row_security] via {spec['via']!r} must read "
                          "\"column -> table.key\"")
    return GuardedTable(spec["name"], via=(column.strip(), parent, key))
