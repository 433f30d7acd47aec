"""The gates as a library: pure functions over a database connection that return CheckResults.
A check never prints and never asserts; tests assert on results and reports render them."""

from eventgate.checks.result import CheckResult

__all__ = ["CheckResult"]
