"""The legacy rows the migration would refuse, as the bundle's preflight.toml states them: per
rule the tables it reads, the SQL that finds the offending rows, what they are and how to fix
them. Nothing here knows a table: a bundle for another migration brings its own rules file, and
one without it is preflighted with no data rules (the report says so)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from eventgate.bundle import Bundle
from eventgate.errors import BundleError
from eventgate.safety.preflight.check import EXAMPLES, Check, Status
from eventgate.safety.preflight.state import MigrationState, cannot_read

FILENAME = "preflight.toml"
DEFAULT_DATABASE = "the legacy database"
RULE_KEYS = {"name", "what", "fix", "tables", "needs", "status", "key", "from", "where",
             "example", "column", "sql"}


@dataclass(frozen=True)
class DataRule:
    """A kind of legacy row that the final migration refuses (or, with status "warn", accepts
    but someone should know of). `sql` returns up to EXAMPLES rows of (example, offending rows
    in all, examples in all); its conditions are the migration's, so that preflight and the
    migration agree."""

    name: str
    what: str  # what is counted, e.g. "orders whose customer does not exist"
    sql: str
    fix: str
    tables: tuple[str, ...]  # the legacy tables it reads
    status: Status = "fail"
    needs: tuple[str, ...] = ()  # relations the rule reads besides the legacy tables


@dataclass(frozen=True)
class RulesFile:
    path: Path | None  # None: the bundle has none
    database: str  # the database to point --dsn at, in words
    rules: tuple[DataRule, ...]


def _rows_query(spec: dict[str, Any], key: str) -> str:
    """Offending rows, in key order, each named by `example` (by default its key)."""
    example = spec.get("example", f"'{key} ' || {key}")
    return (f"SELECT {example}, count(*) OVER (), count(*) OVER () FROM {spec['from']} "
            f"WHERE {spec['where']} ORDER BY {key} LIMIT {EXAMPLES}")


def _values_query(spec: dict[str, Any], key: str) -> str:
    """Offending values of one column, most frequent first, each with its row count and an
    example key; `where` tests the value under the column's own name."""
    column = spec["column"]
    return (f"SELECT format('%L (%s rows, e.g. {key} %s)', {column}, n, first_id), "
            f"sum(n) OVER ()::bigint, count(*) OVER () FROM (SELECT {column}, count(*) AS n, "
            f"min({key}) AS first_id FROM {spec['from']} GROUP BY {column}) g "
            f"WHERE {spec['where']} ORDER BY n DESC, {column} LIMIT {EXAMPLES}")


def _rule(spec: object, where: Path, legacy: tuple[str, ...], final: str) -> DataRule:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BundleError(f"{where}: every [[rules]] entry needs a name")
    name = spec["name"]
    unknown = set(spec) - RULE_KEYS
    missing = {"what", "fix", "tables"} - set(spec)
    if "sql" not in spec and not {"from", "where"} <= set(spec):
        missing.add("sql, or from and where")
    problems = ([f"lacks {', '.join(sorted(missing))}"] if missing else []) + (
        [f"has unknown keys {', '.join(sorted(unknown))}"] if unknown else [])
    texts = RULE_KEYS - {"tables", "needs"}
    problems += [f"{k} is not a string" for k in sorted(texts & set(spec))
                 if not isinstance(spec[k], str)]
    problems += [f"{k} is not a list of names" for k in ("tables", "needs") if k in spec
                 and not (isinstance(spec[k], list) and all(isinstance(t, str) for t in spec[k]))]
    if problems:
        raise BundleError(f"{where}: rule {name!r} {'; '.join(problems)}")
    status = spec.get("status", "fail")
    if status not in ("fail", "warn"):
        raise BundleError(f"{where}: rule {name!r}: status must be fail or warn, not {status!r}")
    strange = [t for t in spec["tables"] if t not in legacy]
    if strange:
        raise BundleError(f"{where}: rule {name!r} reads {', '.join(strange)}, which "
                          f"mapping.toml does not map; tables lists legacy tables only, other "
                          "relations go in needs")
    key = spec.get("key", "id")
    if "sql" in spec:
        query = f"{spec['sql'].strip()} LIMIT {EXAMPLES}"
    elif "column" in spec:
        query = _values_query(spec, key)
    else:
        query = _rows_query(spec, key)
    # A failing rule is one the migration refuses; the fix says so in the same words for all.
    fix = spec["fix"] + (f"; {final} refuses to migrate while any remain"
                         if status == "fail" else "")
    return DataRule(name, spec["what"], query, fix, tuple(spec["tables"]), status,
                    tuple(spec.get("needs", ())))


def load_rules(bundle: Bundle) -> RulesFile:
    """The bundle's preflight.toml; no rules (not an error) when the bundle has none."""
    path = bundle.root / FILENAME
    if not path.is_file():
        return RulesFile(None, DEFAULT_DATABASE, ())
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(f"{path} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"database", "rules"}
    if unknown:
        raise BundleError(f"{path}: unknown keys {', '.join(sorted(unknown))}; it takes "
                          "database and [[rules]]")
    final = f"{bundle.final_migration:03d}"
    rules = tuple(_rule(spec, path, tuple(bundle.mapping), final)
                  for spec in data.get("rules", []))
    return RulesFile(path, str(data.get("database", DEFAULT_DATABASE)), rules)


def no_rules_check(bundle: Bundle) -> Check:
    """What the report says for a bundle without a rules file."""
    return Check("data rules", "skip", f"the bundle has no {FILENAME} (looked at "
                 f"{bundle.root / FILENAME}): no legacy data rules to check")


def _missing_relations(conn: psycopg.Connection, names: tuple[str, ...]) -> list[str]:
    rows = conn.execute("SELECT t FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NULL",
                        (list(names),)).fetchall()
    return [str(r[0]) for r in rows]


def check_rule(conn: psycopg.Connection, rule: DataRule, state: MigrationState,
               locked: dict[str, str]) -> Check:
    why_not = cannot_read(state, locked, rule.tables)
    if why_not:
        return Check(rule.name, "skip", why_not)
    absent = _missing_relations(conn, rule.needs)
    if absent:
        return Check(rule.name, "ok", f"nothing to collide with: {', '.join(absent)} not "
                     "created yet")
    rows = conn.execute(rule.sql).fetchall()
    if not rows:
        return Check(rule.name, "ok", f"none ({rule.what})")
    offending, examples = int(rows[0][1]), int(rows[0][2])
    shown = ", ".join(str(r[0]) for r in rows)
    more = f", … {examples - len(rows)} more" if examples > len(rows) else ""
    return Check(rule.name, rule.status, f"{offending} {rule.what}: {shown}{more}", rule.fix)
