"""The acceptance suites the gate runs, in the order it reports them: tests/<suite>/ each."""

SUITES = ("integrity", "compat", "performance", "functional")
