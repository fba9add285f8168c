"""`type: git`: a working copy deployed by checking out commits. Rolling back checks out the
last release that passed verification (from vigil's records, never a blind `HEAD~1`, which
may be another bad commit or a merge's other parent), then runs each `build` command and
`restart`, all in the working copy.

The checkout is detached and never forced: uncommitted changes in the working copy make it
fail (and the rollback with it) rather than being thrown away.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from tasks.shell import Deadline, run_command
from vigil.config import GitRollback
from vigil.deploy.rollback import (
    RollbackPlan,
    RollbackRequest,
    RollbackResult,
    StepRun,
    newest_usable,
)

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # never wait for a credential prompt
QUICK = 30.0


def plan(config: GitRollback, request: RollbackRequest) -> RollbackPlan:
    repo = Path(config.repo)
    head = _commit(repo, "HEAD")
    if head is None:
        problem = f"repo {repo} is not a git working copy with a commit checked out"
        return RollbackPlan("git", request.target, request.release, None, (), problem)
    from_release = request.release if _commit(repo, request.release) == head else head[:12]
    to, problem = _choose(repo, request, head)
    if to is None:
        return RollbackPlan("git", request.target, from_release, None, (), problem)
    actions = [f"git checkout --detach {to} in {repo} (now at {head[:12]})"]
    actions += [f"run `{command}`" for command in config.build]
    if config.restart:
        actions.append(f"run `{config.restart}`")
    return RollbackPlan("git", request.target, from_release, to, tuple(actions))


def execute(config: GitRollback, plan: RollbackPlan) -> RollbackResult:
    deadline = Deadline(config.timeout.total_seconds())
    repo = Path(config.repo)
    commit = _commit(repo, plan.to_release)
    if commit is None:
        missing = StepRun(f"find {plan.to_release} in {repo}", False, error="not a commit there")
        return RollbackResult(plan, (missing,))
    checkout = f"git checkout --quiet --detach {commit}"
    steps = [run_command(checkout, timeout=deadline.left(), cwd=repo, env=GIT_ENV)]
    for command in [*config.build, *([config.restart] if config.restart else [])]:
        if not steps[-1].ok:
            break
        steps.append(run_command(command, timeout=deadline.left(), cwd=repo))
    return RollbackResult(plan, tuple(steps))


def _choose(repo: Path, request: RollbackRequest, head: str) -> tuple[str | None, str]:
    if request.to:
        if _commit(repo, request.to) is None:
            return None, f"{request.to!r} is not a commit in {repo}"
        return request.to, ""
    bad = {head, _commit(repo, request.release)}

    def usable(good: str) -> bool:
        commit = _commit(repo, good)
        return commit is not None and commit not in bad

    good = newest_usable(request.known_good, usable, ())
    if good is not None:
        return good, ""
    return None, (
        f"no release of {request.target} that passed verification is a commit in {repo}, so "
        "vigil knows no good commit to return to (it never guesses HEAD~1); roll back by "
        f"hand with `vigil rollback {request.target} --to COMMIT`"
    )


def _commit(repo: Path, ref: str | None) -> str | None:
    """The full commit id `ref` names in `repo`, or None."""
    if not ref:
        return None
    command = f"git rev-parse --verify --quiet --end-of-options {shlex.quote(ref + '^{commit}')}"
    step = run_command(command, timeout=QUICK, cwd=repo, env=GIT_ENV)
    return step.output.strip() if step.ok else None
