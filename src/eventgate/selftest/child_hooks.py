"""The pytest plugin each variant's child pytest loads (`-p eventgate.selftest.child_hooks`, see
selftest.running.run_variant): settings that serve the selftest's question only."""

from __future__ import annotations


def pytest_configure(config: object) -> None:
    """Hypothesis finds failing examples as always but does not shrink them. Measured,
    shrinking the property test's counterexample was most of a failing variant's time (208 s
    of 226 s; hypothesis stops only after 5 minutes), and the selftest asks only whether the
    gate went red, which shrinking never changes; the failing example is still reported,
    unshrunk."""
    from hypothesis import Phase, settings

    settings.register_profile("eventgate-selftest",
                              phases=[p for p in Phase if p is not Phase.shrink])
    settings.load_profile("eventgate-selftest")
