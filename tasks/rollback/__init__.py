"""Rollback strategies, one module each: `command`, `symlink`, `git`.

A strategy is a module with `plan(config, request) -> RollbackPlan` (look, decide, change
nothing) and `execute(config, plan) -> RollbackResult` (do it). The words they share and the
choice of the release to restore are core (`vigil.deploy.rollback`). A new strategy is one
module, its config model in `vigil.config`, and one entry in `STRATEGIES`.
"""

from __future__ import annotations

from typing import Any, Protocol

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.rollback import command, git, symlink
from vigil.config import Rollback
from vigil.deploy.rollback import RollbackPlan, RollbackRequest, RollbackResult


class Strategy(Protocol):
    def plan(self, config: Any, request: RollbackRequest) -> RollbackPlan: ...

    def execute(self, config: Any, plan: RollbackPlan) -> RollbackResult: ...


STRATEGIES: dict[str, Strategy] = {"command": command, "symlink": symlink, "git": git}


def plan_rollback(config: Rollback, request: RollbackRequest) -> RollbackPlan:
    return STRATEGIES[config.type].plan(config, request)


def execute_rollback(config: Rollback, plan: RollbackPlan) -> RollbackResult:
    """Carry out `plan`; a plan that found a problem does nothing and reports it."""
    if plan.problem:
        return RollbackResult(plan, ())
    return STRATEGIES[config.type].execute(config, plan)


@task(
    name="roll back",
    task_run_name="roll back {plan.target} to {plan.to_release}",
    cache_policy=NO_CACHE,
)
def roll_back(rollback: Rollback, plan: RollbackPlan) -> RollbackResult:
    """No retries: a retried rollback could run its steps twice."""
    return execute_rollback(rollback, plan)
