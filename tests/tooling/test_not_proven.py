"""The third outcome end to end: a gate the data cannot exercise is *not proven*, shown apart
from passed and failed in the terminal, junit, the verdict and Allure; --require-proof turns it
into a failure."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.counts import row_count_parity
from eventgate.checks.integrity import keys_one_to_one, no_orphans
from eventgate.checks.parity import content_parity
from eventgate.checks.result import CheckResult
from eventgate.checks.views import view_matches_legacy
from eventgate.gate.junit import read_outcomes
from eventgate.pg.databases import Database
from eventgate.reports.categories import categorize

GATES = """
    from eventgate.checks.result import CheckResult
    from eventgate.pytest_plugin.proof import hold

    def test_proven():
        hold(CheckResult("row-count parity", "a -> b", True, "3 rows on both sides"))

    def test_nothing_to_compare():
        hold(CheckResult.unproven("legacy query", "dietary-report",
                                  "returned no rows on either side; it needs dietary notes"))

    def test_ordinary_skip():
        import pytest
        pytest.skip("benchmarking is disabled")
"""


def test_a_result_that_is_not_proven_is_neither_a_pass_nor_a_failure() -> None:
    result = CheckResult.unproven("legacy query", "q", "no rows")
    assert (result.passed, result.proven, result.outcome) == (False, False, "not proven")
    assert result.explain().startswith("not proven: legacy query")
    assert result.to_json()["outcome"] == "not proven"
    assert CheckResult("c", "s", False, "broke").outcome == "failed"


def test_not_proven_has_its_own_tally_and_list(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gates=GATES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*not proven: the data cannot exercise these gates*",
        "NOT PROVEN test_gates.py::test_nothing_to_compare - legacy query — dietary-report: "
        "returned no rows on either side; it needs dietary notes",
        "*1 passed, 1 skipped, 1 not proven*"])


def test_junit_and_the_verdict_keep_not_proven_apart(pytester: pytest.Pytester,
                                                     tmp_path: Path) -> None:
    pytester.mkpydir("tests")
    (pytester.path / "tests" / "integrity").mkdir()
    (pytester.path / "tests" / "integrity" / "test_gates.py").write_text(
        "\n".join(line[4:] for line in GATES.splitlines()))
    junit = tmp_path / "junit.xml"
    pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--junitxml={junit}")
    tallies, failed, unproven = read_outcomes(junit)
    assert (tallies["integrity"].passed, tallies["integrity"].not_proven,
            tallies["integrity"].skipped) == (1, 1, 1)
    assert not failed
    assert [u.test for u in unproven] == ["test_gates::test_nothing_to_compare"]
    assert unproven[0].reason.startswith("legacy query — dietary-report: returned no rows")
    skipped = next(ET.parse(junit).getroot().iter("skipped"))
    assert "not proven: " in (skipped.get("message") or "")


def test_require_proof_fails_what_is_not_proven(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gates=GATES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--require-proof")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*--require-proof: a gate the data cannot exercise fails*",
                                 "*1 failed, 1 passed, 1 skipped*"])


def test_allure_files_not_proven_under_its_own_category() -> None:
    assert categorize("skipped", "not proven: legacy query — q: no rows") == (
        "Not proven: the data cannot exercise the gate")
    assert categorize("skipped", "benchmarking is disabled") is None


@pytest.mark.destructive
def test_gates_over_an_empty_table_are_not_proven_rather_than_passed(migrated_db: Database,
                                                                      bundle: Bundle) -> None:
    mapping = bundle.mapping["wedding_sections"]
    with migrated_db.connect() as conn:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(f"DELETE FROM {mapping.target}")
            conn.execute(f"DELETE FROM {mapping.legacy_source}")
        log = bundle.expectations.change_log
        results = [content_parity(conn, mapping, log=log),
                   row_count_parity(conn, mapping, log=log),
                   view_matches_legacy(conn, mapping, log=log),
                   keys_one_to_one(conn, mapping)]
        results += [no_orphans(conn, r) for r in bundle.expectations.references
                    if r.child == mapping.target]
    assert [r.outcome for r in results] == ["not proven"] * len(results), [
        r.explain() for r in results]
    assert all(mapping.legacy_source in r.summary or mapping.target in r.summary
               for r in results)
