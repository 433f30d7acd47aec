"""The sabotage matrix behind `eventgate selftest`: the acceptance suites run against the clean
reference bundle and against variants of it that each carry one realistic defect, to show every
gate turning red on the defect it exists to catch (and the clean bundle staying green).

By job: variants (reading fixtures/sabotage/<name>.toml), overlay (a variant applied to a copy
of the bundle), running (the child pytests, side by side), child_hooks (the plugin those
children load), judging (a run's cells and status), matrix (matrix.json, Markdown, the README
block) and terminal (what the verb prints). The names callers use are re-exported here.
"""

from eventgate.selftest.judging import Cell, Outcome, judge, refusal_class, refusals
from eventgate.selftest.matrix import (
    README_BEGIN,
    README_END,
    Matrix,
    cell_text,
    markdown,
    now_utc,
    update_readme,
    write_json,
)
from eventgate.selftest.overlay import apply_overlay, resolve_engine_factory
from eventgate.selftest.running import Plan, cpu_count, prepare, run
from eventgate.selftest.variants import (
    CLEAN,
    CLEAN_VARIANT,
    Patch,
    SabotageError,
    Variant,
    default_variants_dir,
    load_variant,
    load_variants,
    select,
)

__all__ = [
    "CLEAN", "CLEAN_VARIANT", "README_BEGIN", "README_END", "Cell", "Matrix", "Outcome", "Patch",
    "Plan", "SabotageError", "Variant", "apply_overlay", "cell_text", "cpu_count",
    "default_variants_dir", "judge", "load_variant", "load_variants", "markdown", "now_utc",
    "prepare", "refusal_class", "refusals", "resolve_engine_factory", "run", "select",
    "update_readme", "write_json",
]
