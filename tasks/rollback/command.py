"""`type: command`: any command does the rollback (`kubectl rollout undo`, `pm2 deploy
revert`, a PaaS API call); vigil tells it what to roll back in its environment:
VIGIL_TARGET, VIGIL_RELEASE (the release rolled back from) and VIGIL_PREVIOUS_RELEASE (the
release to restore: `--to`, else the newest known-good one, else empty when vigil knows none
and the command must work it out itself, as `kubectl rollout undo` does)."""

from __future__ import annotations

from tasks.shell import Deadline, run_command
from vigil.config import CommandRollback
from vigil.deploy.rollback import RollbackPlan, RollbackRequest, RollbackResult, newest_usable


def plan(config: CommandRollback, request: RollbackRequest) -> RollbackPlan:
    to = request.to or newest_usable(request.known_good, lambda _: True, [request.release])
    env = _environment(request.target, request.release, to)
    shown = " ".join(f"{k}={v or '(empty)'}" for k, v in env.items())
    return RollbackPlan(
        "command", request.target, request.release, to, (f"run `{config.command}` with {shown}",)
    )


def execute(config: CommandRollback, plan: RollbackPlan) -> RollbackResult:
    deadline = Deadline(config.timeout.total_seconds())
    env = _environment(plan.target, plan.from_release, plan.to_release)
    return RollbackResult(plan, (run_command(config.command, timeout=deadline.left(), env=env),))


def _environment(target: str, release: str | None, to: str | None) -> dict[str, str]:
    return {
        "VIGIL_TARGET": target,
        "VIGIL_RELEASE": release or "",
        "VIGIL_PREVIOUS_RELEASE": to or "",
    }
