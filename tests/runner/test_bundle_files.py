"""Reading a bundle from disk: ordering by number and clear errors for malformed bundles."""

from pathlib import Path

import pytest

from eventgate.bundle import load_bundle
from eventgate.errors import BundleError


def _write(path: Path, body: str = "SELECT 1;\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)


def test_migrations_are_ordered_by_their_number_not_their_name(bundle_copy: Path) -> None:
    for version in (2, 11, 100):
        _write(bundle_copy / "migrations" / f"{version}_step.sql")
        _write(bundle_copy / "rollback" / f"{version}_step_rollback.sql")
    assert load_bundle(bundle_copy).versions == [2, 6, 7, 8, 9, 10, 11, 100]


def test_a_migration_without_rollback_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "rollback" / "008_enhanced_indexing_rollback.sql").unlink()
    with pytest.raises(BundleError, match=r"008_enhanced_indexing.sql has no rollback: add "
                                          r"rollback/008_enhanced_indexing_rollback.sql"):
        load_bundle(bundle_copy)


def test_two_files_with_one_number_are_refused(bundle_copy: Path) -> None:
    _write(bundle_copy / "migrations" / "0007_other.sql")
    with pytest.raises(BundleError, match="carry the number 7"):
        load_bundle(bundle_copy)


def test_a_badly_named_file_is_refused(bundle_copy: Path) -> None:
    _write(bundle_copy / "migrations" / "add-venues.sql")
    with pytest.raises(BundleError, match=r"add-venues\.sql is not named NNN_name\.sql"):
        load_bundle(bundle_copy)


def test_a_mapping_entry_of_two_kinds_is_refused(bundle_copy: Path) -> None:
    mapping = bundle_copy / "mapping.toml"
    mapping.write_text(mapping.read_text().replace(
        'status = { column = "status" }', 'status = { column = "status", dropped = "unused" }', 1))
    with pytest.raises(BundleError, match=r"wedding_events.status must have exactly one of"):
        load_bundle(bundle_copy)


def test_a_missing_bundle_says_what_a_bundle_holds(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"baseline/, migrations/, rollback/, mapping\.toml"):
        load_bundle(tmp_path / "nowhere")


def _change_log_section(bundle: Path, section: str) -> None:
    """Replace expectations.toml's [change_log] section (the last one) with `section`."""
    path = bundle / "expectations.toml"
    text = path.read_text()
    head, _, tail = text.partition("[change_log]")
    rest = tail.split("\n[", 1)  # whatever follows the section stays
    path.write_text(head + section + ("\n[" + rest[1] if len(rest) > 1 else "\n"))


def test_the_change_record_is_read_and_optional(bundle_copy: Path) -> None:
    log = load_bundle(bundle_copy).expectations.change_log
    assert log is not None and (log.schema, log.name) == ("wedding_compat", "row_changes")
    _change_log_section(bundle_copy, "")
    assert load_bundle(bundle_copy).expectations.change_log is None


@pytest.mark.parametrize("section", ['[change_log]\ntable = 7', '[change_log]\nname = "x"',
                                     '[change_log]\ntable = "a.b.c"'])
def test_a_malformed_change_record_is_refused(bundle_copy: Path, section: str) -> None:
    _change_log_section(bundle_copy, section)
    with pytest.raises(BundleError, match=r"\[change_log\]"):
        load_bundle(bundle_copy)
