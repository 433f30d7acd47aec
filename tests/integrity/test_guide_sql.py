"""The deployment guide's own validation SQL (data-integrity-validation.sql,
performance-validation.sql, shipped in the bundle's guide/), run through psql as the guide runs
it, read-only, its tenant drawn from the data: no row may be marked ❌."""

from collections.abc import Callable

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.guide_sql import guide_scripts, run_guide_sql
from eventgate.checks.result import CheckResult
from eventgate.pg.databases import Database
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.integrity, pytest.mark.green]


def test_the_guides_validation_sql_marks_nothing_failed(
        target_database: Database, bundle: Bundle,
        record_check: Callable[[CheckResult], CheckResult]) -> None:
    scripts = guide_scripts(bundle.root)
    if not scripts:
        pytest.skip(f"the bundle {bundle.root} ships no guide/*.sql")
    results = [record_check(run_guide_sql(target_database.dsn, bundle.root, script))
               for script in scripts]
    # The worst first: a failure, then a script that could not be proven.
    for result in sorted(results, key=lambda r: {"failed": 0, "not proven": 1}.get(r.outcome, 2)):
        hold(result)
