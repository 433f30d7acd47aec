"""The lock-hazard lint: squawk over every migration and rollback script of the bundle; every
finding is waived in expectations.toml with a reason, or the gate fails. It reads no database,
so it runs in the green (staging) run too."""

from collections.abc import Callable

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.lock_lint import lint_bundle
from eventgate.checks.result import CheckResult
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.performance, pytest.mark.green]


def test_migrations_take_no_unwaived_lock_hazard(
        bundle: Bundle, record_check: Callable[[CheckResult], CheckResult]) -> None:
    hold(record_check(lint_bundle(bundle)))
