"""Rollback strategies, one module each: `command`, `symlink`, `git`.

A strategy is a module with `plan(config, request) -> Plan` (decide, change nothing) and
`execute(config, plan) -> Result` (do it). A new strategy is one module, its config model
in `vigil.config`, and one entry in `STRATEGIES`.
"""

from __future__ import annotations

from typing import Any, Protocol

from vigil.config import Rollback
from vigil.rollback import command, git, symlink
from vigil.rollback.base import Plan, Request, Result, StepRun, run_command

__all__ = [
    "STRATEGIES",
    "Plan",
    "Request",
    "Result",
    "StepRun",
    "execute_rollback",
    "plan_rollback",
    "run_command",
]


class Strategy(Protocol):
    def plan(self, config: Any, request: Request) -> Plan: ...

    def execute(self, config: Any, plan: Plan) -> Result: ...


STRATEGIES: dict[str, Strategy] = {"command": command, "symlink": symlink, "git": git}


def plan_rollback(config: Rollback, request: Request) -> Plan:
    return STRATEGIES[config.type].plan(config, request)


def execute_rollback(config: Rollback, plan: Plan) -> Result:
    """Carry out `plan`; a plan that found a problem does nothing and reports it."""
    if plan.problem:
        return Result(plan, ())
    return STRATEGIES[config.type].execute(config, plan)
