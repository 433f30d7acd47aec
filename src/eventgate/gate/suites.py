"""The acceptance suites the gate runs, in the order it reports them: tests/<suite>/ each."""

SUITES = ("integrity", "compat", "performance", "functional")

# The suites whose tests start or ask the engine. The others read and write only the database,
# so the engine factory (EVENTGATE_ENGINE_FACTORY) never reaches them: the selftest runs them
# once for every variant that changes only the engine (tests/tooling/test_selftest.py holds
# the others to it).
ENGINE_SUITES = ("functional",)
