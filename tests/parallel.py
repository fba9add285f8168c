"""The suite on several workers (pytest-xdist, `./dev test` runs `-n auto`): whole test files
go to one worker each, so a module's shared fixture is built once, and the files that share
one piece of cluster-wide state of the PostgreSQL server go to the same worker, one after
another, as in a serial run.

That state: a drill takes the server's one drill lock and fails at once if another holds it;
restore tests take a lock per database name ("main" in many files) and may drop what they
take for a crashed run's leftovers; `nothing_left_behind` compares every scratch database on
the server before and after; the globals tests dump, drop and recreate cluster-wide roles.
A file that starts a drill, a restore test, `vigil restore` or dumps globals belongs here.

The slowest work goes first so that no worker is left alone with a long file at the end.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

# Run on one worker, in this order, as one unit of work.
ON_ONE_SERVER = "tests/[recovery: drills, restore tests, roles]"
RECOVERY = {
    "tests/test_secrets_stay_in.py",
    "tests/test_restore_completeness.py",
    "tests/test_drill.py",
    "tests/test_e2e_prefect.py",
    "tests/test_globals_recovery.py",
    "tests/test_restore_command.py",
    "tests/test_restore_test_faults.py",
    "tests/test_restore_test_flow.py",
    "tests/test_restore_test_real_world.py",
    "tests/test_extreme_names.py",
    "tests/test_backup_globals.py",
    "tests/test_backup_sealed.py",
    "tests/test_backup_retention.py",
    "tests/test_backup_tampered.py",
}
# Long single files (a minute or more each), started early.
SLOW_FIRST = [
    ON_ONE_SERVER,
    "tests/test_sweep_locations.py",
    "tests/test_deploy_pipeline.py",
    "tests/test_backup_many_tables.py",
]


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or the recovery files together."""
    path = nodeid.split("::", 1)[0]
    return ON_ONE_SERVER if path in RECOVERY else path


class SlowFirst(OrderedDict[str, Any]):
    """xdist's queue of units of work (taken from the front), the units of SLOW_FIRST kept
    at the front in that order, the others in the order they came."""

    def __setitem__(self, unit: str, tests: Any) -> None:
        super().__setitem__(unit, tests)
        for slow in reversed(SLOW_FIRST):
            if slow in self:
                self.move_to_end(slow, last=False)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Units of work as above, for any load-balancing `--dist` (xdist's own for `each`)."""
    if config.getvalue("dist") == "each":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def __init__(self, config: pytest.Config, log: Any) -> None:
            super().__init__(config, log)
            self.workqueue = SlowFirst()

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return ByUnit(config, log)
