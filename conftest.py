"""This repository's own run needs only pytester beyond the eventgate plugin (registered through
its pytest11 entry point), to test the plugin end to end; the rest schedules this run over
xdist's workers (how many, in what chunks, the longest modules first)."""

import os

import pytest

pytest_plugins = ["pytester"]

# The modules with the most seconds in them (a whole gate in a subprocess, a fleet rolled, a
# watch window, a real SMTP exchange), longest first, measured with the 2-core machine's
# timeline of a run. Order only: every test still runs, each module's tests stay together.
LONG_MODULES = (
    "tests/watch/test_rolling_deployment.py",
    "tests/tooling/test_selftest.py",
    "tests/staging/test_staging_gate.py",
    "tests/staging/test_read_only_role.py",
    "tests/gate/test_profiles_gate.py",
    "tests/watch/test_watch.py",
    "tests/tooling/test_email.py",
    "tests/tooling/test_plugin.py",
    "tests/watch/test_blue_green_deploy.py",
    "tests/tooling/test_guide_path.py",
    "tests/runner/test_dry_run_live.py",
    "tests/safety/test_rehearse.py",
)
# pytest-xdist first hands each worker a quarter of its share as one consecutive chunk (93
# tests here), so one worker got every long module and ran 33 s alone at the end of a 212 s
# run. In chunks of two, a worker takes the next test when it frees up: the long modules
# first, spread over both, then the short tests even out the end: 185 s, both ending together.
SCHEDULE_CHUNK = 2


# -n auto: one worker more than the cores. Much of a worker's time is spent waiting on what it
# started (a child gate, an engine's health, an SMTP server, a watch's sampling): with one per
# core, a 2-core run left 30% of the CPU idle and took 185 s; with three, 157 s, the CPU busy.
EXTRA_WORKERS = 1


# optionalhook: without xdist (-p no:xdist, a child gate the selftest runs here) the hook is
# unknown, which pluggy otherwise refuses before collecting anything.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + EXTRA_WORKERS


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "maxschedchunk", "") is None:  # xdist loaded, not given
        config.option.maxschedchunk = SCHEDULE_CHUNK


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(LONG_MODULES)}
    root = config.rootpath

    def order(item: pytest.Item) -> int:
        try:
            return rank.get(item.path.relative_to(root).as_posix(), len(rank))
        except ValueError:  # a pytester test's own files, outside the repository
            return len(rank)

    items.sort(key=order)  # stable: collection order within a module and among the rest
