"""Parallel query through a compatibility view: the old application's reports over every row
may use every core, as they did on the legacy tables.

A function is PARALLEL UNSAFE unless it is declared otherwise, and one unsafe function in a
view's definition, or in a row-level security policy of a table it reads, keeps every query
through the view in one process. At ten million guests the old application's whole-table
reports then take twice as long through the views as on the legacy tables. The check asks the
planner with parallelism made free (read-only: EXPLAIN, never the query), so the answer does not
depend on how much data the target holds, and names the unsafe functions the catalog records."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from eventgate.bundle import TableMapping
from eventgate.checks.result import CheckResult

CHECK = "views in parallel"

# Parallelism at no cost, so a plan without it is one the planner could not make, not one it
# chose against on a small table.
FREE_PARALLELISM = {"parallel_setup_cost": "0", "parallel_tuple_cost": "0",
                    "min_parallel_table_scan_size": "0", "min_parallel_index_scan_size": "0",
                    "max_parallel_workers_per_gather": "2"}

# The parallel-unsafe functions the view's rule and the policies of the tables it reads depend
# on (built-in functions are pinned, not recorded: the plan still shows them).
UNSAFE_FUNCTIONS_SQL = """
WITH rule AS (SELECT oid FROM pg_rewrite WHERE ev_class = %(view)s::regclass),
reads AS (SELECT DISTINCT d.refobjid FROM pg_depend d JOIN rule r ON d.objid = r.oid
           WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
             AND d.refobjid <> %(view)s::regclass),
users AS (SELECT 'pg_rewrite'::regclass AS classid, oid AS objid FROM rule
          UNION ALL SELECT 'pg_policy'::regclass, p.oid FROM pg_policy p
           WHERE p.polrelid IN (SELECT refobjid FROM reads))
SELECT DISTINCT f.oid::regprocedure::text
  FROM pg_depend d JOIN users u ON d.classid = u.classid AND d.objid = u.objid
  JOIN pg_proc f ON d.refclassid = 'pg_proc'::regclass AND f.oid = d.refobjid
 WHERE f.proparallel = 'u' ORDER BY 1"""


def _nodes(plan: dict[str, Any]) -> list[str]:
    return [str(plan.get("Node Type")), *(n for child in plan.get("Plans", [])
                                          for n in _nodes(child))]


def view_goes_parallel(conn: psycopg.Connection, mapping: TableMapping) -> CheckResult:
    """Whether `SELECT count(*)` through the mapping's view can have a parallel plan."""
    if not mapping.view:
        return CheckResult.unproven(CHECK, mapping.target,
                                    "the mapping names no compatibility view to ask about")
    view = sql.Identifier(mapping.view)
    query = sql.SQL("SELECT count(*) FROM {}").format(view)
    reproduce = "; ".join(f"SET {k} = {v}" for k, v in FREE_PARALLELISM.items()) + \
        f"; EXPLAIN {query.as_string(conn)}"
    # Rolled back on the way out, so the settings (local to it) never outlive the check, even
    # inside a caller's transaction, where this is a savepoint.
    with conn.transaction(force_rollback=True):
        for name, value in FREE_PARALLELISM.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query)).fetchone()
    unsafe = [r[0] for r in conn.execute(UNSAFE_FUNCTIONS_SQL,
                                         {"view": mapping.view}).fetchall()]
    assert row is not None
    plan = (row[0] if isinstance(row[0], list) else json.loads(row[0]))[0]["Plan"]
    nodes = _nodes(plan)
    parallel = any(n.startswith("Gather") for n in nodes)
    data = {"plan_nodes": nodes, "parallel_unsafe_functions": unsafe}
    if parallel:
        return CheckResult(CHECK, mapping.view, True,
                           "count(*) through the view has a parallel plan "
                           f"({', '.join(n for n in nodes if n.startswith('Gather'))})",
                           sql=reproduce, data=data)
    return CheckResult(
        CHECK, mapping.view, False,
        "count(*) through the view gets no parallel plan even with parallelism free: every "
        "query through it runs on one core"
        + (f"; parallel-unsafe functions in it or its tables' policies: {', '.join(unsafe)} "
           "(declare them PARALLEL SAFE if they only read)" if unsafe else
           "; a function in it or its tables' policies is PARALLEL UNSAFE (the default)"),
        (f"plan: {' > '.join(nodes)}",), reproduce, data)
