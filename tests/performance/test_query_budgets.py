"""Query budgets from expectations.toml: each hot query plans onto its indexes and answers
within its budget (p95 of 30 rounds after warm-up, measured with pytest-benchmark, stopped as
soon as the rounds over the budget decide the p95 of 30), judged on the statistic its entry
declares: server-side execution or the client round trip."""

from collections.abc import Callable

import psycopg
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from eventgate.bundle import QueryBudget
from eventgate.checks.budgets import (
    PreparedQuery,
    budget_result,
    decided_over,
    plan_check,
    prepare,
    server_times_ms,
)
from eventgate.checks.result import CheckResult
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.performance, pytest.mark.green]
ROUNDS, WARMUP = 30, 3
Record = Callable[[CheckResult], CheckResult]


@pytest.fixture(scope="module")
def drawn() -> dict[str, PreparedQuery | CheckResult]:
    """Each entry prepared once for its three tests: the plan checked is the plan of the
    parameters timed, and a parameter drawn from ten million rows is drawn once, not thrice."""
    return {}


def _prepared(conn: psycopg.Connection, budget: QueryBudget,
              drawn: dict[str, PreparedQuery | CheckResult]) -> PreparedQuery:
    if budget.name not in drawn:
        drawn[budget.name] = prepare(conn, budget)
    prepared = drawn[budget.name]
    if isinstance(prepared, CheckResult):
        hold(prepared)  # not proven, or a failure naming what is wrong with the entry
        raise AssertionError(prepared.explain())
    return prepared


def test_budget_entry_can_run(target_conn: psycopg.Connection, query_budget: QueryBudget,
                              drawn: dict[str, PreparedQuery | CheckResult]) -> None:
    _prepared(target_conn, query_budget, drawn)


def test_plan_uses_its_indexes(target_conn: psycopg.Connection, query_budget: QueryBudget,
                               record_check: Record,
                               drawn: dict[str, PreparedQuery | CheckResult]) -> None:
    hold(record_check(plan_check(target_conn, _prepared(target_conn, query_budget, drawn))))


def test_query_answers_within_its_budget(benchmark: BenchmarkFixture,
                                         target_conn: psycopg.Connection,
                                         query_budget: QueryBudget,
                                         record_check: Record,
                                         drawn: dict[str, PreparedQuery | CheckResult]) -> None:
    if benchmark.disabled:
        pytest.skip("benchmarking is disabled (pytest-xdist is active, or --benchmark-disable):"
                    " query budgets are timed only in a serial run, e.g. `eventgate gate` or "
                    "`pytest -p no:xdist tests/performance`")
    query = _prepared(target_conn, query_budget, drawn)
    early = decided_over(target_conn, query, ROUNDS, WARMUP)
    if early is not None:
        # Enough rounds over the budget already decide the percentile of all ROUNDS.
        hold(record_check(budget_result(target_conn, query, *early, planned=ROUNDS)))
        return
    sql = query_budget.sql.encode()
    benchmark.extra_info["budget_ms"] = query_budget.budget_ms
    # decided_over() warmed the query up.
    benchmark.pedantic(lambda: target_conn.execute(sql, query.params).fetchall(),
                       rounds=ROUNDS, warmup_rounds=0, iterations=1)
    client_ms = [seconds * 1000 for seconds in benchmark.stats.stats.data]
    result = record_check(budget_result(target_conn, query, client_ms,
                                        server_times_ms(target_conn, query, ROUNDS)))
    stat = query_budget.statistic
    benchmark.extra_info.update({key: result.data[key] for key in (f"client_{stat}_ms",
                                                                   f"server_{stat}_ms")})
    hold(result)
