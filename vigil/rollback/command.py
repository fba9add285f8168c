"""`type: command`: any command does the rollback (`kubectl rollout undo`, `pm2 deploy
revert`, a PaaS API call); vigil tells it what to roll back in its environment:
VIGIL_TARGET, VIGIL_RELEASE (the release rolled back from) and VIGIL_PREVIOUS_RELEASE (the
release to restore: `--to`, else the newest known-good one, else empty when vigil knows none
and the command must work it out itself, as `kubectl rollout undo` does)."""

from __future__ import annotations

from vigil.config import CommandRollback
from vigil.rollback.base import Deadline, Plan, Request, Result, run_command


def plan(config: CommandRollback, request: Request) -> Plan:
    to = request.to or next((r for r in request.known_good if r != request.release), None)
    env = _environment(request.target, request.release, to)
    shown = " ".join(f"{k}={v or '(empty)'}" for k, v in env.items())
    return Plan(
        "command", request.target, request.release, to, (f"run `{config.command}` with {shown}",)
    )


def execute(config: CommandRollback, plan: Plan) -> Result:
    deadline = Deadline(config.timeout.total_seconds())
    env = _environment(plan.target, plan.from_release, plan.to_release)
    return Result(plan, (run_command(config.command, timeout=deadline.left(), env=env),))


def _environment(target: str, release: str | None, to: str | None) -> dict[str, str]:
    return {
        "VIGIL_TARGET": target,
        "VIGIL_RELEASE": release or "",
        "VIGIL_PREVIOUS_RELEASE": to or "",
    }
