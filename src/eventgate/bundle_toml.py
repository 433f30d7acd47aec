"""What a bundle's TOML files say, read and checked: mapping.toml (where every legacy column
lives after the migration, and the stated policy), expectations.toml (the schema, indexes,
integrity rules, query budgets and change record the gates hold the migration to) and
rollback.toml (what a rollback must export first). Each a frozen dataclass; a malformed file is
a BundleError naming the entry."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from eventgate.bundle_budgets import QueryBudget, read_budget
from eventgate.bundle_security import RowSecurity, read_row_security
from eventgate.errors import BundleError

MAPPING_KINDS = ("column", "jsonb", "derived", "dropped")



@dataclass(frozen=True)
class ColumnMapping:
    legacy_column: str
    kind: str  # one of MAPPING_KINDS
    target: str  # column name, "column.key" for jsonb, or the reason when dropped
    sql: str | None = None
    inverse: str | None = None
    also: str | None = None
    note: str | None = None

    @property
    def jsonb_column(self) -> str:
        return self.target.split(".", 1)[0]

    @property
    def jsonb_key(self) -> str:
        return self.target.split(".", 1)[1]


@dataclass(frozen=True)
class TableMapping:
    legacy_table: str
    target: str
    columns: dict[str, ColumnMapping]
    filter: str | None = None
    backup: str | None = None
    view: str | None = None
    key: str = "id"
    note: str | None = None
    new_columns: dict[str, str] = field(default_factory=dict)
    # jsonb keys the new engine may add beyond the mapped ones, per jsonb column
    extra_jsonb_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def declared_jsonb_keys(self) -> dict[str, set[str]]:
        declared: dict[str, set[str]] = {}
        for column in self.columns.values():
            if column.kind == "jsonb":
                declared.setdefault(column.jsonb_column, set()).add(column.jsonb_key)
        for jsonb_column, keys in self.extra_jsonb_keys.items():
            declared.setdefault(jsonb_column, set()).update(keys)
        return declared

    @property
    def legacy_source(self) -> str:
        """Where the legacy rows are read after migration: the backup, or the kept table."""
        return self.backup or self.legacy_table


@dataclass(frozen=True)
class IndexExpectation:
    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool = False
    why: str = ""
    method: str = "btree"


@dataclass(frozen=True)
class Reference:
    """Every `child.column` value names an existing `parent.parent_column` row."""

    child: str
    column: str
    parent: str
    parent_column: str = "id"


@dataclass(frozen=True)
class SameValue:
    """A child row and the parent it points at (child.via = parent.id) agree on `column`."""

    child: str
    via: str
    parent: str
    column: str


@dataclass(frozen=True)
class UniqueValues:
    table: str
    columns: tuple[str, ...]
    where: str | None = None


@dataclass(frozen=True)
class ChangeLog:
    """expectations.toml [change_log]: a table the bundle's migration installs, in which its
    triggers record every row written to the migrated-to tables after the migration (columns
    relation, row_key, origin 'legacy' or 'engine', op, changed_at). The gates only read it."""

    table: str  # "schema.name" or "name" (then in public)
    note: str = ""

    @property
    def schema(self) -> str:
        return self.table.split(".", 1)[0] if "." in self.table else "public"

    @property
    def name(self) -> str:
        return self.table.split(".", 1)[-1]


@dataclass(frozen=True)
class LockBudget:
    """expectations.toml [locks]: the longest a live writer or reader of the legacy names (and
    the shared tables) may wait on the migration's locks, at production volume."""

    max_write_wait_ms: float = 1000.0
    max_read_wait_ms: float = 1000.0
    # Rows the migration may read or write while it holds a lock that blocks those writers: what
    # its waits grow with, so the lock gate can judge a small clone for production volume.
    max_rows_under_write_lock: int = 1000


@dataclass(frozen=True)
class LintWaiver:
    """expectations.toml [[lint.waivers]]: findings of the lock-hazard lint (squawk) accepted,
    each with the reason a reviewer reads. Without `file` it covers the rule in every file;
    without `statement` every statement of the file. A waiver that covers no finding is stale,
    and fails the gate."""

    rule: str
    reason: str
    # relative to the bundle, e.g. "migrations/008_x.sql", or a glob ("rollback/00[6-9]_*.sql")
    file: str | None = None
    statement: str | None = None  # a substring of the statement, compared with blanks collapsed

    def covers(self, rule: str, file: str, statement: str) -> bool:
        return (rule == self.rule and (self.file is None or fnmatchcase(file, self.file))
                and (self.statement is None
                     or " ".join(self.statement.split()) in " ".join(statement.split())))

    def describe(self) -> str:
        where = f" in {self.file}" if self.file else " in every file"
        return f"{self.rule}{where}" + (f" at {self.statement!r}" if self.statement else "")


@dataclass(frozen=True)
class Expectations:
    tables: tuple[str, ...]
    views: tuple[str, ...]
    indexes: tuple[IndexExpectation, ...]
    references: tuple[Reference, ...] = ()
    same_values: tuple[SameValue, ...] = ()
    unique: tuple[UniqueValues, ...] = ()
    budgets: tuple[QueryBudget, ...] = ()
    # None: no change record, so every difference from the *_backup tables is the migration's
    change_log: ChangeLog | None = None
    locks: LockBudget = LockBudget()
    lint_waivers: tuple[LintWaiver, ...] = ()
    lint_pg_version: str | None = None  # [lint] pg_version: the server squawk lints for
    row_security: RowSecurity | None = None  # None: the bundle declares no tenant wall


@dataclass(frozen=True)
class RollbackExports:
    """rollback.toml: what the rollback of one migration would delete that the legacy schema
    cannot hold, to be written out before its script runs."""

    version: int
    lock: tuple[str, ...]  # locked (SHARE) first, so nothing is added between export and drop
    queries: dict[str, str]  # file stem -> SELECT



def _column_mapping(table: str, column: str, spec: dict[str, Any]) -> ColumnMapping:
    kinds = [k for k in MAPPING_KINDS if k in spec]
    if len(kinds) != 1:
        raise BundleError(
            f"mapping.toml: {table}.{column} must have exactly one of "
            f"{', '.join(MAPPING_KINDS)}; it has {kinds or 'none'}"
        )
    kind = kinds[0]
    if kind == "jsonb" and "." not in spec["jsonb"]:
        raise BundleError(f"mapping.toml: {table}.{column} jsonb must read 'column.key'")
    if kind == "derived" and not (spec.get("sql") and spec.get("inverse")):
        raise BundleError(f"mapping.toml: derived {table}.{column} needs both sql and inverse")
    return ColumnMapping(column, kind, spec[kind], spec.get("sql"), spec.get("inverse"),
                         spec.get("also"), spec.get("note"))


def read_mapping(path: Path) -> tuple[dict[str, TableMapping], dict[str, str]]:
    """mapping.toml: the legacy tables by name, and the [policy] rules it states."""
    data = read_toml(path)
    tables: dict[str, TableMapping] = {}
    for legacy, spec in data.get("tables", {}).items():
        if "target" not in spec or "columns" not in spec:
            raise BundleError(f"mapping.toml: [tables.{legacy}] needs target and columns")
        columns = {c: _column_mapping(legacy, c, s) for c, s in spec["columns"].items()}
        tables[legacy] = TableMapping(
            legacy, spec["target"], columns, spec.get("filter"), spec.get("backup"),
            spec.get("view"), spec.get("key", "id"), spec.get("note"),
            dict(spec.get("new_columns", {})),
            {k: tuple(v) for k, v in spec.get("extra_jsonb_keys", {}).items()},
        )
    if not tables:
        raise BundleError(f"{path} maps no tables")
    return tables, {k: str(v) for k, v in data.get("policy", {}).items()}


def read_expectations(path: Path) -> Expectations:
    """expectations.toml."""
    data = read_toml(path)
    schema = data.get("schema", {})
    indexes = []
    for spec in data.get("indexes", []):
        try:
            indexes.append(IndexExpectation(spec["name"], spec["table"], tuple(spec["columns"]),
                                            bool(spec.get("unique", False)), spec.get("why", ""),
                                            spec.get("method", "btree")))
        except KeyError as exc:
            raise BundleError(f"expectations.toml: an [[indexes]] entry lacks {exc}") from exc
    try:
        references = tuple(Reference(**r) for r in data.get("references", []))
        same_values = tuple(SameValue(**r) for r in data.get("same_values", []))
        unique = tuple(UniqueValues(r["table"], tuple(r["columns"]), r.get("where"))
                       for r in data.get("unique", []))
    except (TypeError, KeyError) as exc:
        raise BundleError(f"expectations.toml: a [[references]], [[same_values]] or [[unique]] "
                          f"entry is malformed ({exc})") from exc
    return Expectations(tuple(schema.get("tables", ())), tuple(schema.get("views", ())),
                        tuple(indexes), references, same_values, unique,
                        tuple(read_budget(spec) for spec in data.get("budgets", [])),
                        _change_log(data.get("change_log")), _locks(data.get("locks", {})),
                        *_lint(data.get("lint", {})),
                        read_row_security(data.get("row_security")))


LINT_KEYS = {"pg_version", "waivers"}
WAIVER_KEYS = {"rule", "file", "statement", "reason"}


def _lint(spec: dict[str, Any]) -> tuple[tuple[LintWaiver, ...], str | None]:
    """[lint]: the PostgreSQL version to lint for and the waivers, each with its reason (a
    waiver without one is refused here: an unexplained waiver hides a hazard)."""
    if set(spec) - LINT_KEYS:
        raise BundleError(f"expectations.toml [lint]: unknown keys {sorted(set(spec) - LINT_KEYS)}"
                          "; it takes pg_version and [[lint.waivers]]")
    waivers = []
    for n, entry in enumerate(spec.get("waivers", []), 1):
        name = f"expectations.toml [[lint.waivers]] #{n} ({entry.get('rule', 'no rule')})"
        if set(entry) - WAIVER_KEYS or not all(isinstance(v, str) for v in entry.values()):
            raise BundleError(f"{name}: takes only {', '.join(sorted(WAIVER_KEYS))}, as strings")
        if not entry.get("rule"):
            raise BundleError(f"{name}: names no rule (a squawk rule, e.g. "
                              "require-concurrent-index-creation)")
        if not entry.get("reason", "").strip():
            raise BundleError(f"{name}: gives no reason; a waiver says why the finding is no "
                              "hazard here, or that it is a known one and where it is tracked")
        waivers.append(LintWaiver(entry["rule"], " ".join(entry["reason"].split()),
                                  entry.get("file"), entry.get("statement")))
    version = spec.get("pg_version")
    if version is not None and not re.fullmatch(r"\d+(\.\d+)?", str(version)):
        raise BundleError(f"expectations.toml [lint] pg_version {version!r} must read like "
                          "\"16\" or \"16.4\"")
    return tuple(waivers), None if version is None else str(version)


def _locks(spec: dict[str, Any]) -> LockBudget:
    known = {"max_write_wait_ms", "max_read_wait_ms", "max_rows_under_write_lock"}
    unknown = set(spec) - known
    if unknown:
        raise BundleError(f"expectations.toml [locks]: unknown keys {sorted(unknown)}; it takes "
                          f"{', '.join(sorted(known))}")
    rows = spec.get("max_rows_under_write_lock", LockBudget.max_rows_under_write_lock)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise BundleError("expectations.toml [locks]: max_rows_under_write_lock is a whole "
                          f"number of rows, not {rows!r}")
    try:
        budget = LockBudget(**{k: float(v) for k, v in spec.items()
                               if k != "max_rows_under_write_lock"},
                            max_rows_under_write_lock=rows)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"expectations.toml [locks]: each wait is a number of ms ({exc})"
                          ) from exc
    if min(budget.max_write_wait_ms, budget.max_read_wait_ms) <= 0:
        raise BundleError("expectations.toml [locks]: a wait budget is a positive number of ms")
    return budget


CHANGE_LOG_NAME = re.compile(r"^([a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$")


def _change_log(spec: object) -> ChangeLog | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"table", "note"} or not isinstance(
            spec.get("table"), str) or not isinstance(spec.get("note", ""), str):
        raise BundleError("expectations.toml: [change_log] takes table = \"schema.name\" and "
                          "an optional note, both strings")
    if not CHANGE_LOG_NAME.match(spec["table"]):
        raise BundleError(f"expectations.toml: [change_log] table {spec['table']!r} must read "
                          "'name' or 'schema.name' (lower case, unquoted identifiers)")
    return ChangeLog(spec["table"], " ".join(spec.get("note", "").split()))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise BundleError(f"the bundle has no {path.name} (looked at {path})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(f"{path} is not valid TOML: {exc}") from exc


def read_rollback_exports(path: Path, versions: set[int]) -> dict[int, RollbackExports]:
    if not path.is_file():
        return {}
    plans = {}
    for key, spec in read_toml(path).get("rollback", {}).items():
        try:
            version = int(key)
        except ValueError:
            raise BundleError(f"{path}: [rollback.{key}] is not a migration number") from None
        if version not in versions:
            raise BundleError(f"{path}: [rollback.{key}] names no migration of the bundle")
        queries = spec.get("exports", {})
        if not queries or not all(isinstance(q, str) for q in queries.values()):
            raise BundleError(f"{path}: [rollback.{key}.exports] needs name = \"SELECT ...\" "
                              "lines")
        plans[version] = RollbackExports(version, tuple(spec.get("lock", ())), dict(queries))
    return plans
