"""Query budgets: each named query's parameters resolved from the data, its plan checked for
the indexes it must use and the sequential scans it must not do, and its latency held to a
budget on a percentile (not proven, rather than failed, past the volume an entry says its budget
holds up to)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from eventgate.bundle import QueryBudget
from eventgate.checks.result import CheckResult, error_line
from eventgate.units import human_bytes

FULL_SCAN_CAPABLE = ("Index Scan", "Index Only Scan")


@dataclass(frozen=True)
class PreparedQuery:
    budget: QueryBudget
    params: dict[str, Any]


def _fail(budget: QueryBudget, check: str, summary: str) -> CheckResult:
    return CheckResult(check, f"budget {budget.name}", False, f"[[budgets]] {budget.name!r}: "
                       f"{summary}")


def prepare(conn: psycopg.Connection, budget: QueryBudget) -> PreparedQuery | CheckResult:
    """Resolve parameters and check that the entry can run at all: every parameter query
    returns a value, every named table and index exists, the SQL plans."""
    check = "query budget entry"
    params: dict[str, Any] = {}
    for name, query in budget.params.items():
        try:
            with conn.transaction():
                row = conn.execute(query.encode()).fetchone()
        except psycopg.Error as exc:
            return _fail(budget, check, f"parameter {name!r} cannot be drawn: "
                         f"{error_line(exc)}")
        if row is None or row[0] is None:
            chosen = f" ({budget.params_choice})" if budget.params_choice else ""
            return CheckResult.unproven(
                check, f"budget {budget.name}", f"[[budgets]] {budget.name!r}: parameter "
                f"{name!r}{chosen} drew no value from this database, so the query has nothing "
                f"to answer ({' '.join(query.split())})", sql=query)
        params[name] = row[0]
    # Named tables must exist; a missing index is the plan check's finding, not the entry's.
    for table in budget.no_seq_scan:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            return _fail(budget, check, f"names the table {table!r}, which does not exist in "
                         "this database")
    try:
        with conn.transaction():
            conn.execute(b"EXPLAIN " + budget.sql.encode(), params)
    except psycopg.Error as exc:
        return _fail(budget, check, f"its SQL fails: {error_line(exc)}")
    return PreparedQuery(budget, params)


def explain(conn: psycopg.Connection, query: PreparedQuery, options: str) -> dict[str, Any]:
    row = conn.execute(f"EXPLAIN ({options}, FORMAT JSON) ".encode() + query.budget.sql.encode(),
                       query.params).fetchone()
    assert row is not None
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    top: dict[str, Any] = document[0]
    return top


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for child in node.get("Plans", []):
        found += plan_nodes(child)
    return found


def plan_check(conn: psycopg.Connection, query: PreparedQuery) -> CheckResult:
    """The plan can use the declared indexes and reads no declared table whole for nothing.

    Sequential scans, hash joins and merge joins are discouraged while planning, so the check
    asks whether an index *can* serve the query, its joins included, at any data size. The plan
    is executed once (EXPLAIN ANALYZE, no timing) to see what each read of a declared table
    really did: a read without an index condition fails when it threw rows away (its filter
    removed some) or was repeated per outer row; one that kept every row it read, once, is what
    the query needed on this data (the only tenant of a single-tenant database, a page of a
    table that tenant fills), and then whether an index could narrow it cannot be seen: not
    proven."""
    budget = query.budget
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_hashjoin = off")
        conn.execute("SET LOCAL enable_mergejoin = off")
        plan = explain(conn, query, "ANALYZE true, TIMING false, COSTS true")
    nodes = plan_nodes(plan["Plan"])
    # With sequential scans discouraged, the planner walks a whole index instead: an index
    # scan without an Index Cond reads the table just the same.
    unbounded = [n for n in nodes if n.get("Relation Name") in budget.no_seq_scan and (
        n["Node Type"] == "Seq Scan"
        or (n["Node Type"] in FULL_SCAN_CAPABLE and "Index Cond" not in n))]
    # An index walked in key order under a LIMIT that met it early (a tenant holding a
    # tenth of the events: its first page lies within the first few hundred keys) is the
    # planner's cheapest way to that page, not a whole read.
    stopped = [n for n in unbounded if _stopped_by_limit(conn, plan["Plan"], n)]
    unbounded = [n for n in unbounded if n not in stopped]
    wasteful = [n for n in unbounded if _wasted(n)]
    used = {n.get("Index Name") for n in nodes}
    missing = [i for i in budget.uses_index
               if conn.execute("SELECT to_regclass(%s)", (i,)).fetchone() == (None,)]
    unused = [f"index {i} is not used" + (" (no such index)" if i in missing else "")
              for i in budget.uses_index if i not in used]
    subject = f"budget {budget.name}"
    shape = " -> ".join(f"{n['Node Type']}" + (f" on {n['Relation Name']}" if
                        "Relation Name" in n else "") + (f" using {n['Index Name']}" if
                        "Index Name" in n else "") for n in nodes)
    reproduce = f"EXPLAIN {' '.join(budget.sql.split())};"
    data = {"plan": plan}
    # Wasted reads and missing indexes fail on any data; a whole read that kept every row
    # makes the rest unobservable here.
    if wasteful or missing or (unused and not unbounded):
        problems = sorted({_whole_read(n) for n in wasteful}) + unused
        details = [f"plan: {shape}"]
        details += [f"{_whole_read(n)}: read {_read(n)} rows, kept {_kept(n)}"
                    for n in wasteful]
        return CheckResult("query plan", subject, False,
                           f"{budget.name}: {'; '.join(problems)}", tuple(details),
                           reproduce, data)
    if unbounded:
        kept = "; ".join(f"{_whole_read(n)} kept {_kept(n)} of the {_read(n)} rows it read"
                         for n in unbounded)
        return CheckResult.unproven(
            "query plan", subject, f"{budget.name}: with these parameters the query needs "
            f"most of the rows it reads ({kept}), so whether an index can narrow it cannot be "
            "seen on this data; it needs parameters that select a part of the table (e.g. one "
            "tenant among several)", sql=reproduce, data=data)
    walks = "".join(f"; {n['Index Name']} walked in key order until the LIMIT was met: "
                    f"{_read(n)} rows read, {_kept(n)} kept" for n in stopped)
    return CheckResult("query plan", subject, True, f"plan: {shape}{walks}", data=data)


def _stopped_by_limit(conn: psycopg.Connection, root: dict[str, Any],
                      node: dict[str, Any]) -> bool:
    """An index walk without an Index Cond, under a Limit, run once, that kept every row the
    Limit returned and read what a page of its matching rows takes: the LIMIT ended it, not
    the index.

    What a page takes is the page over the matching rows' share of the table, by the planner's
    own estimate of the matching rows (a tenant holding half the events: two rows read per row
    kept, at any size). Twice that is allowed, and less than half the table always is. A walk
    that reads far more than its share predicts (the matching rows sit at the end of the key)
    or finds nothing reads the table whole."""
    if node["Node Type"] == "Seq Scan" or int(node.get("Actual Loops", 1)) > 1:
        return False
    limits = [n for n in _ancestors(root, node) if n["Node Type"] == "Limit"]
    returned = int(limits[-1].get("Actual Rows", 0)) if limits else 0
    if returned == 0 or _kept(node) < returned:
        return False
    row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
                       (node["Relation Name"],)).fetchone()
    table = float(row[0]) if row is not None else 0.0
    if table <= 0:
        return False
    matching = min(max(float(node.get("Plan Rows", 0)), 1.0), table)
    a_page_takes = returned * table / matching
    # Never the whole table, whatever the estimate says: a planner that expected one matching
    # row would otherwise excuse any walk.
    read = _read(node)
    return read < MOST_ROWS * table or read < min(2 * a_page_takes, table)


def _ancestors(root: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan nodes above `node`, outermost first; [] when it is the root."""
    for child in root.get("Plans", []):
        if child is node:
            return [root]
        below = _ancestors(child, node)
        if below:
            return [root, *below]
    return []


def _whole_read(node: dict[str, Any]) -> str:
    if node["Node Type"] == "Seq Scan":
        return f"Seq Scan on {node['Relation Name']}"
    return f"full scan of {node['Relation Name']} (whole index {node['Index Name']})"


def _kept(node: dict[str, Any]) -> int:
    return int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))


def _read(node: dict[str, Any]) -> int:
    removed = int(node.get("Rows Removed by Filter", 0))
    return (int(node.get("Actual Rows", 0)) + removed) * int(node.get("Actual Loops", 1))


def _wasted(node: dict[str, Any]) -> bool:
    """A read without an index condition that threw most of what it read away, or ran once per
    outer row. One that kept at least half (a tenant holding most of the table) read what the
    query needed: an index would save little, and the planner rightly prefers the walk."""
    if int(node.get("Actual Loops", 1)) > 1:
        return True
    return _kept(node) < MOST_ROWS * _read(node)


# A read without an index condition is what the query needs when it keeps at least this share
# of the rows it reads.
MOST_ROWS = 0.5


def percentile(values: list[float], statistic: str) -> float:
    """Nearest-rank percentile, e.g. p95 of 30 rounds is the 29th smallest."""
    q = float(statistic.lstrip("p")) / 100
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def server_times_ms(conn: psycopg.Connection, query: PreparedQuery, rounds: int) -> list[float]:
    return [float(explain(conn, query, "ANALYZE true, TIMING false")["Execution Time"])
            for _ in range(rounds)]


def client_times_ms(conn: psycopg.Connection, query: PreparedQuery, rounds: int,
                    warmup: int = 3) -> list[float]:
    """Round trips as the application sees them: send, execute, fetch every row."""
    sql, times = query.budget.sql.encode(), []
    for n in range(warmup + rounds):
        started = time.perf_counter()
        conn.execute(sql, query.params).fetchall()
        if n >= warmup:
            times.append((time.perf_counter() - started) * 1000)
    return times


def over_to_decide(rounds: int, statistic: str) -> int:
    """How many rounds over the budget put the percentile of `rounds` over it, whatever the
    others take: the nearest-rank p95 of 30 is the 29th smallest, so 2."""
    q = float(statistic.lstrip("p")) / 100
    return rounds - max(0, math.ceil(q * rounds) - 1)


def decided_over(conn: psycopg.Connection, query: PreparedQuery, rounds: int,
                 warmup: int = 3) -> tuple[list[float], list[float]] | None:
    """The first timed rounds, stopped as soon as one is within the budget (None: the full
    `rounds` decide) or enough are over it to put the percentile of `rounds` over it. Then the
    client and server times of those rounds: the verdict all `rounds` would give, at 10M rows
    in 2 rounds of a slow query instead of 30."""
    budget = query.budget
    client_times_ms(conn, query, 0, warmup)
    needed = over_to_decide(rounds, budget.statistic)
    judged: list[float] = []
    while len(judged) < needed:
        took = (server_times_ms(conn, query, 1) if budget.judged_on == "server"
                else client_times_ms(conn, query, 1, warmup=0))[0]
        if took <= budget.budget_ms:
            return None
        judged.append(took)
    if budget.judged_on == "server":
        return client_times_ms(conn, query, needed, warmup=0), judged
    return judged, server_times_ms(conn, query, needed)


def answer_size(conn: psycopg.Connection, query: PreparedQuery) -> tuple[int, int]:
    """Rows and bytes the query returns (field lengths as sent, in psycopg's text format)."""
    with conn.cursor() as cur:
        cur.execute(query.budget.sql.encode(), query.params)
        result = cur.pgresult
        assert result is not None
        rows, fields = result.ntuples, result.nfields
        size = sum(len(value) for r in range(rows) for f in range(fields)
                   if (value := result.get_value(r, f)) is not None)
    return rows, size


def budget_result(conn: psycopg.Connection, query: PreparedQuery, client_ms: list[float],
                  server_ms: list[float], planned: int | None = None) -> CheckResult:
    """The budget judged on the statistic its entry declares (server-side execution or the
    client round trip), with the other beside it and the size of the answer. With `planned`
    above the rounds given, decided_over() stopped early: the percentile of the planned rounds
    is then at least the fastest of the rounds over the budget, and that is the figure shown."""
    budget = query.budget
    stat = budget.statistic
    early = planned is not None and planned > len(client_ms)
    figure = min if early else (lambda times: percentile(times, stat))
    client, server = figure(client_ms), figure(server_ms)
    judged = server if budget.judged_on == "server" else client
    rows, size = answer_size(conn, query)
    plan = explain(conn, query, "ANALYZE true, BUFFERS true")
    data = {"budget_ms": budget.budget_ms, "statistic": stat, "judged_on": budget.judged_on,
            "rounds": len(client_ms), f"client_{stat}_ms": client, f"server_{stat}_ms": server,
            "client_ms": client_ms, "server_ms": server_ms, "params": query.params,
            "params_choice": budget.params_choice, "rows": rows, "bytes": size,
            "explain_analyze": plan}
    at_least = "at least " if early else ""
    sides = {"server": f"{stat} server-side {at_least}{server:.2f} ms",
             "client": f"{stat} round trip {at_least}{client:.2f} ms"}
    other = "client" if budget.judged_on == "server" else "server"
    rounds = (f"stopped after {len(client_ms)} of {planned} rounds: {len(client_ms)} over the "
              f"budget put the {stat} of {planned} over it" if early
              else f"{len(client_ms)} rounds")
    if early:
        data["planned_rounds"] = planned
    summary = (f"{budget.name}: {sides[budget.judged_on]} against a {budget.budget_ms:g} ms "
               f"budget ({sides[other]}; {rows} rows, {human_bytes(size)}), {rounds}")
    passed = judged <= budget.budget_ms
    if not passed:
        summary = summary.replace(" against ", " is OVER ")
        past = _past_its_volume(conn, budget)
        if past is not None:
            data["holds_up_to"] = past
            return CheckResult.unproven(
                "query budget", f"budget {budget.name}",
                f"{summary}: not judged, this database is past the volume the budget holds "
                f"to ({past['rows']:,} rows, it holds up to {past['holds_up_to_rows']:,}: "
                f"{past['why']})", sql=f"{' '.join(past['of'].split())};", data=data)
    nodes = plan_nodes(plan["Plan"])
    details = tuple(f"{n['Node Type']}" + (f" on {n['Relation Name']}" if "Relation Name" in n
                    else "") + f": {n.get('Actual Total Time', 0):.2f} ms, "
                    f"{n.get('Actual Rows', 0)} rows" for n in nodes[:6]) if not passed else ()
    if budget.params_choice and not passed:
        details += (f"parameters: {budget.params_choice}: {query.params}",)
    return CheckResult("query budget", f"budget {budget.name}", passed, summary, details,
                       f"EXPLAIN (ANALYZE, BUFFERS) {' '.join(budget.sql.split())};", data)


def _past_its_volume(conn: psycopg.Connection, budget: QueryBudget) -> dict[str, Any] | None:
    """The volume when the entry declares one it holds up to and this database is past it."""
    bound = budget.holds_up_to
    if bound is None:
        return None
    with conn.transaction():
        row = conn.execute(bound.of.encode()).fetchone()
    if row is None or row[0] is None or float(row[0]) <= bound.rows:
        return None
    return {"rows": int(row[0]), "holds_up_to_rows": bound.rows, "of": bound.of,
            "why": bound.why}


def measure(conn: psycopg.Connection, query: PreparedQuery, rounds: int = 30) -> CheckResult:
    """The whole budget check without pytest-benchmark (benchmarks and proofs use it)."""
    early = decided_over(conn, query, rounds)
    if early is not None:
        return budget_result(conn, query, *early, planned=rounds)
    return budget_result(conn, query, client_times_ms(conn, query, rounds, warmup=0),
                         server_times_ms(conn, query, rounds))
