"""What a rollback is asked, what it plans and what it did, in the words every strategy
shares, and the choice of the release to restore. The strategies themselves (which look at
releases directories, git and commands on the target's host) are in `tasks/rollback/`.

A plan is made before anything changes, so a dry run can say exactly what would happen and
the verification record can name the release it would restore. Executing a plan runs its
steps in order and stops at the first that fails.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from vigil.durations import format_duration


@dataclass(frozen=True)
class StepRun:
    """One step as it ran: a command, or something vigil did itself (exit_code None)."""

    action: str
    ok: bool
    exit_code: int | None = None
    output: str = ""
    error: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        mark = "ok" if self.ok else "FAILED"
        why = f" ({self.error})" if self.error else ""
        return f"{mark} in {format_duration(self.seconds)}: {self.action}{why}"


@dataclass(frozen=True)
class RollbackRequest:
    """A rollback to plan: away from `release`, to `to` if given, else to the newest release
    in `known_good` the strategy can use. `refused` are the releases vigil rolled back (the
    ones `deploy-gate` refuses): no fallback of any strategy ever picks one."""

    target: str
    release: str | None
    to: str | None = None
    known_good: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback would do, in words; `problem` says why it cannot be done at all,
    `why` where the release to restore came from (the records, `--to`, git's reflog...)."""

    strategy: str
    target: str
    from_release: str | None
    to_release: str | None
    actions: tuple[str, ...]
    problem: str | None = None
    why: str = ""

    def describe(self) -> str:
        if self.problem:
            return f"cannot roll back ({self.strategy}): {self.problem}"
        return f"{self.strategy} rollback: " + "; then ".join(self.actions)


@dataclass(frozen=True)
class RollbackResult:
    """A plan as it was carried out: its steps, in order, up to the first that failed.
    `unchanged`: the strategy knows its failed first step changed nothing (an atomic switch,
    a checkout git refused), so what ran before still runs. `next_step`: the command the
    strategy knows gets past its failure (stash the changes that blocked a checkout...)."""

    plan: RollbackPlan
    steps: tuple[StepRun, ...]
    unchanged: bool = False
    next_step: str | None = None

    @property
    def ok(self) -> bool:
        return self.plan.problem is None and all(step.ok for step in self.steps)

    def failure(self) -> str | None:
        """The reason the rollback did not complete, in one line."""
        if self.plan.problem:
            return self.plan.problem
        bad = next((step for step in self.steps if not step.ok), None)
        if bad is None:
            return None
        tail = bad.output.strip().splitlines()[-1:] if bad.output.strip() else []
        return "; ".join([f"{bad.action}: {bad.error or 'failed'}", *tail])


def newest_usable(
    known_good: Sequence[str], usable: Callable[[str], bool], avoid: Collection[str | None]
) -> str | None:
    """The first (newest) known-good release the strategy can restore (`usable`: its
    directory or commit exists) that is not one to `avoid` (the release rolled back from,
    the one running now)."""
    return next((r for r in known_good if r not in avoid and usable(r)), None)
