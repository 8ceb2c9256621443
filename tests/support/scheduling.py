"""How ``make test`` spreads the suite over pytest-xdist workers.

xdist's ``load`` mode hands out single tests, so the tests of one module land on several workers
and each builds the module's expensive fixtures again (the CI templates' plays, a shared
platform); its ``loadgroup`` mode would keep them together, but it marks groups by rewriting
``item._nodeid``, which pytest 9 no longer reads. This scheduler keeps chosen files on one
worker, hands out every other test alone, and starts the longest work first, so the run does
not end waiting on one slow test.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

# Files whose tests share a module- or session-scoped fixture that costs more than the tests.
ONE_WORKER = (
    "tests/ci/",  # one play of each CI template through the real dagster-cloud CLI
    "tests/cleanup/test_cleanup_refusals.py",  # one platform, proven unchanged by each test
)
# Tests of a minute or more on this machine, started first (measured with --durations).
SLOW = (
    "tests/test_safety_property.py",
    "tests/test_dbt_end_to_end.py",
    "tests/cleanup/test_job_multiprocess.py",
    "tests/test_example_project.py::test_dagster_asset_materialize",
    "tests/test_demo.py",
    "tests/test_wheel.py",
    "tests/test_dagster_dev.py",
    "tests/test_sensor.py::test_steady_state",
)


class SlowFirstScheduling(LoadScopeScheduling):
    """``load`` scheduling, except that the files of :data:`ONE_WORKER` go to one worker as one
    unit, and units holding a :data:`SLOW` test, then units of several tests, go first."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return next((prefix for prefix in ONE_WORKER if path.startswith(prefix)), nodeid)

    def _assign_work_unit(self, node: WorkerController) -> None:
        # xdist hands out the queue's first unit: put the most urgent one there.
        urgent = min(self.workqueue, key=lambda scope: _urgency(self.workqueue[scope]))
        self.workqueue.move_to_end(urgent, last=False)
        super()._assign_work_unit(node)


def _urgency(unit: dict[str, bool]) -> int:
    if any(nodeid.startswith(SLOW) for nodeid in unit):
        return 0
    return 1 if len(unit) > 1 else 2
