"""`eventgate selftest`: the sabotage overlays stay applicable, the matrix judges runs the way
its comments say, and a real run shows the clean bundle green and two defects caught, while a
defect no gate can see makes the selftest fail."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eventgate.bundle import default_bundle_path, load_bundle
from eventgate.gate.junit import FailedGate, SuiteTally
from eventgate.gate.suites import ENGINE_SUITES, SUITES
from eventgate.selftest import (
    CLEAN_VARIANT,
    README_BEGIN,
    README_END,
    Matrix,
    SabotageError,
    Variant,
    apply_overlay,
    default_variants_dir,
    judge,
    load_variant,
    load_variants,
    markdown,
    refusals,
    resolve_engine_factory,
    update_readme,
)

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = load_variants(default_variants_dir())


def selftest(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventgate.cli", "selftest", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


# (a) Every overlay applies to the reference bundle and gives a bundle eventgate can load.


def test_the_matrix_covers_every_suite_with_at_least_twenty_variants() -> None:
    assert len(VARIANTS) >= 20
    assert {suite for v in VARIANTS for suite in v.catches} == set(SUITES)
    assert any(v.engine_factory for v in VARIANTS) and any(v.patches for v in VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_the_overlay_applies_and_loads(variant: Variant, tmp_path: Path) -> None:
    reference = default_bundle_path()
    bundle = load_bundle(apply_overlay(variant, reference, tmp_path / "bundle"))
    for patch in variant.patches:
        changed = (bundle.root / patch.file).read_text(encoding="utf-8")
        assert changed != (reference / patch.file).read_text(encoding="utf-8")
        assert patch.replace in changed
    if variant.engine_factory:
        resolve_engine_factory(variant.engine_factory, ROOT)


# (b) An overlay that no longer applies is an error naming the variant and the file.


def _variant(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


STALE = '''title = "stale"
defect = "lost rows"
catches = ["integrity"]

[[patch]]
file = "migrations/010_wedding_data_migration.sql"
find = "{find}"
replace = "nothing"
'''


def test_a_stale_overlay_names_the_variant_and_the_file(tmp_path: Path) -> None:
    stale = load_variant(_variant(tmp_path / "v", "gone-stale",
                                  STALE.format(find="SELECT no_such_column FROM nowhere")))
    with pytest.raises(SabotageError, match=r"sabotage variant gone-stale: "
                       r"migrations/010_wedding_data_migration\.sql: the find text "
                       r"'SELECT no_such_column FROM nowhere' occurs 0 times, expected "
                       r"exactly once"):
        apply_overlay(stale, default_bundle_path(), tmp_path / "bundle")


def test_an_ambiguous_overlay_is_refused_too(tmp_path: Path) -> None:
    twice = load_variant(_variant(tmp_path / "v", "twice", STALE.format(find="INSERT INTO")))
    with pytest.raises(SabotageError, match=r"twice: migrations/010.*occurs \d+ times"):
        apply_overlay(twice, default_bundle_path(), tmp_path / "bundle")


def test_a_patch_of_a_file_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    text = STALE.format(find="x").replace("migrations/010_wedding_data_migration.sql",
                                          "../../etc/passwd")
    outside = load_variant(_variant(tmp_path / "v", "outside", text))
    with pytest.raises(SabotageError, match=r"outside: \.\./\.\./etc/passwd is not a file of the"):
        apply_overlay(outside, default_bundle_path(), tmp_path / "bundle")


@pytest.mark.parametrize(("text", "message"), [
    ('title = "t"\ndefect = "d"\ncatches = ["integrity"]\n', "changes nothing"),
    ('title = "t"\ndefect = "d"\ncatches = ["speed"]\nengine_factory = "m:f"\n',
     "catches must list the suites"),
    ('title = "t"\ndefect = "d"\ncatches = []\nengine_factory = "m:f"\n',
     "catches must list the suites"),
    ('title = "t"\ncatches = ["compat"]\nengine_factory = "m:f"\n', 'needs defect = "..."'),
    ('title = "t"\ndefect = "d"\ncatches = ["compat"]\nengine = "m:f"\n', "unknown keys engine"),
    ('title = "t"\ndefect = "d"\ncatches = ["compat"]\n[[patch]]\nfile = "a"\nfind = ""\n'
     'replace = ""\n', r"\[\[patch\]\] 1 needs exactly file, find \(not empty\)"),
])
def test_a_malformed_variant_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SabotageError, match=rf"sabotage variant bad \(.*bad\.toml\).*{message}"):
        load_variant(_variant(tmp_path / "v", "bad", text))


# How a run is judged (see the comment above eventgate.selftest.judging.refusal_class).

DEFECT = Variant("lost", "loses rows", "lost rows", ("integrity",),
                 engine_factory="fixtures.engine_faults:metrics_off_by_one")
TALLIES = {s: SuiteTally(passed=5) for s in SUITES}


def _judge(variant: Variant, failed: list[FailedGate], refused: frozenset[str] = frozenset(),
           exit_code: int = 1) -> str:
    outcome = judge(variant, SUITES, exit_code, TALLIES, failed, set(refused), 1.0, Path("r"))
    return f"{outcome.status}: {outcome.problem}"


def test_a_gate_failing_in_the_declared_suite_is_a_catch() -> None:
    assert _judge(DEFECT, [FailedGate("integrity", "t::a", "parity")]) == "caught: None"
    assert _judge(DEFECT, [FailedGate("compat", "t::a", "view")]).startswith(
        "missed: integrity stayed green")


def test_an_error_before_the_gates_looked_is_a_broken_run_not_a_catch() -> None:
    errors = [FailedGate(s, f"t::{s}", "failed on setup with MigrationError: syntax error",
                         "error") for s in SUITES]
    assert _judge(DEFECT, errors).startswith(
        "broken run: tests errored in integrity, compat, performance, functional before their "
        "gates could look")
    refused = frozenset(f"t::{s}" for s in SUITES)
    assert _judge(DEFECT, errors, refused) == "caught: None"
    assert _judge(DEFECT, [], exit_code=4).startswith(
        "broken run: the suites did not run to completion (pytest exit code 4)")


def test_any_failure_of_the_clean_bundle_is_a_false_alarm() -> None:
    assert _judge(CLEAN_VARIANT, [], exit_code=0) == "clean: None"
    assert _judge(CLEAN_VARIANT, [FailedGate("functional", "t::a", "503")]).startswith(
        "false alarm: the unchanged bundle failed in functional")


def test_refusals_are_told_apart_by_the_errors_psycopg_class(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.integrity.test_x" name="refused">'
        '<error message="failed on setup with MigrationError">psycopg.errors.ForeignKeyViolation:'
        ' insert or update on table</error></testcase>'
        '<testcase classname="tests.integrity.test_x" name="validation">'
        '<error message="x">psycopg.errors.RaiseException: nothing was migrated</error>'
        '</testcase>'
        '<testcase classname="tests.integrity.test_x" name="typo">'
        '<error message="x">psycopg.errors.SyntaxError: at or near</error></testcase>'
        '<testcase classname="tests.integrity.test_x" name="fine"/>'
        '</testsuite></testsuites>', encoding="utf-8")
    assert refusals(junit) == {"test_x::refused", "test_x::validation"}


def test_the_readme_block_is_replaced_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\nSTALE MATRIX\n{README_END}\nafter\n",
                      encoding="utf-8")
    outcome = judge(CLEAN_VARIANT, SUITES, 0, TALLIES, [], set(), 3.0, tmp_path)
    matrix = Matrix("2026-01-01 00:00 UTC", 61.0, 2, 2, "small", list(SUITES),
                    "eventgate selftest", [outcome])
    update_readme(readme, markdown(matrix))
    text = readme.read_text(encoding="utf-8")
    assert "STALE MATRIX" not in text and text.endswith(f"{README_END}\nafter\n")
    assert "| `clean` | none | · | · | · | · | clean |" in text
    assert "took 1 min 1 s with --jobs 2 on a machine with 2 CPUs" in text
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(Exception, match="has no <!-- selftest:begin --> … <!-- selftest:end "):
        update_readme(readme, "x")


def test_only_the_engine_suites_ever_start_the_engine() -> None:
    # The selftest runs the other suites once for all the variants that change only the engine
    # (eventgate.selftest.running.shares_clean_run): that holds only while no test in them
    # starts an engine, through the fixture or by hand, or reads the engine factory.
    others = [f"tests/{s}" for s in SUITES if s not in ENGINE_SUITES]
    plan = subprocess.run([sys.executable, "-m", "pytest", "--setup-plan", "-q",
                           "-p", "no:cacheprovider", "-p", "no:xdist", *others],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert re.search(r"SETUP +S migrated_template", plan.stdout), plan.stdout[-2000:]
    assert not re.search(r"SETUP +[SMF] engine\b", plan.stdout), plan.stdout
    by_hand = [str(path.relative_to(ROOT)) for suite in others
               for path in sorted((ROOT / suite).rglob("*.py"))
               if re.search(r"engine_process|engine_factory|ENGINE_FACTORY",
                            path.read_text(encoding="utf-8"))]
    assert by_hand == []
    engine_suite = subprocess.run([sys.executable, "-m", "pytest", "--setup-plan", "-q",
                                   "-p", "no:cacheprovider", "-p", "no:xdist",
                                   *(f"tests/{s}" for s in ENGINE_SUITES)],
                                  capture_output=True, text=True, cwd=ROOT, timeout=120)
    # The control: the same search finds the engine where it is started.
    assert re.search(r"SETUP +S engine\b", engine_suite.stdout), engine_suite.stdout[-2000:]


# (c) and (d): real runs, each variant in its own child pytest with its own PostgreSQL.


@pytest.mark.destructive
def test_the_clean_bundle_stays_green_and_both_kinds_of_defect_are_caught(
        tmp_path: Path) -> None:
    reports = tmp_path / "selftest"
    markdown_file = tmp_path / "matrix.md"
    # All three at once: on two cores that ends sooner than two, then the third alone.
    result = selftest("--only", "clean,010-truncates-guest-names,engine-metrics-off-by-one",
                      "--jobs", "3", "--reports", str(reports), "--markdown", str(markdown_file))
    assert result.returncode == 0, result.stdout + result.stderr
    matrix = json.loads((reports / "matrix.json").read_text())
    rows = {row["name"]: row for row in matrix["variants"]}
    assert [row["name"] for row in matrix["variants"]] == [
        "clean", "010-truncates-guest-names", "engine-metrics-off-by-one"]
    assert rows["clean"]["status"] == "clean"
    assert {s: c["state"] for s, c in rows["clean"]["cells"].items()} == dict.fromkeys(
        SUITES, "clean")
    truncated = rows["010-truncates-guest-names"]
    assert truncated["status"] == "caught"
    assert truncated["cells"]["integrity"]["state"] == "caught"
    assert truncated["cells"]["compat"]["state"] == "caught"
    assert "guest_name" in json.dumps(truncated["first_failure"])
    metrics = rows["engine-metrics-off-by-one"]
    assert metrics["status"] == "caught" and metrics["cells"]["functional"]["state"] == "caught"
    # Its database suites are the clean run's (same bundle and seed; they never start the
    # engine), not a run of their own.
    assert {s: metrics["cells"][s]["state"] for s in SUITES if s not in ENGINE_SUITES} == \
        dict.fromkeys((s for s in SUITES if s not in ENGINE_SUITES), "as clean")
    ran = json.loads((reports / "engine-metrics-off-by-one" / "verdict.json").read_text())
    assert {s for s, tally in ran["suites"].items() if tally["passed"] + tally["failed"]} == \
        set(ENGINE_SUITES)
    assert "test_plugins_health_metrics::test_metrics_agree_with_the_database" in [
        f["test"] for f in metrics["failures"]]
    assert re.search(r"^\| `engine-metrics-off-by-one` \| metric off by one \| = clean \| "
                     r"= clean \| = clean \| \*\*✓ \d+\*\* \| caught \|$",
                     markdown_file.read_text(encoding="utf-8"), re.MULTILINE)
    assert "every defect caught" in result.stdout


HARMLESS = '''title = "008 with its comment reworded"
defect = "none: a comment changed"
catches = ["performance"]

[[patch]]
file = "migrations/008_enhanced_indexing.sql"
find = "-- Listed in expectations.toml"
replace = "-- Named in expectations.toml"
'''


@pytest.mark.destructive
def test_a_defect_no_gate_sees_is_reported_missed_and_fails_the_selftest(
        tmp_path: Path) -> None:
    variants = tmp_path / "variants"
    _variant(variants, "harmless-comment", HARMLESS)
    reports = tmp_path / "selftest"
    # Only the suite it claims, to keep the run short: a missed defect is judged the same way.
    result = selftest("--variants", str(variants), "--only", "harmless-comment",
                      "--suites", "performance", "--reports", str(reports))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✗ MISSED: harmless-comment (008 with its comment reworded): performance stayed " \
           "green: the defect (none: a comment changed) went through" in result.stdout
    row = json.loads((reports / "matrix.json").read_text())["variants"][0]
    assert row["status"] == "missed" and row["cells"]["performance"]["state"] == "missed"
    assert row["cells"]["integrity"]["state"] == "not run"
