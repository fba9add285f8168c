"""`type: symlink`: a Capistrano-style releases directory. Each release is a directory under
`releases_dir` named by its release id; `current` is a symlink to one of them. Rolling back
points `current` at the previous release atomically (a new link under a temporary name,
renamed over `current`, so no request ever sees a missing link) and runs `restart`.

The previous release is `--to`, else the newest release vigil's records know as good that
still has its directory, else the directory just before the current one in name order (name
releases so they sort in deploy order, e.g. timestamps, as Capistrano does), skipping any
release vigil rolled back.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from tasks.shell import Deadline, run_command
from vigil.config import SymlinkRollback
from vigil.deploy.rollback import (
    RollbackPlan,
    RollbackRequest,
    RollbackResult,
    StepRun,
    newest_usable,
)


def plan(config: SymlinkRollback, request: RollbackRequest) -> RollbackPlan:
    releases, link = Path(config.releases_dir), Path(config.current)
    names = _releases(releases)
    current = _linked_release(link, releases)

    def cannot(problem: str) -> RollbackPlan:
        return RollbackPlan("symlink", request.target, current, None, (), problem)

    if names is None:
        return cannot(f"releases_dir {releases} is not a readable directory")
    if current is None:
        return cannot(f"current {link} is not a symlink into releases_dir {releases}")
    to, problem = _choose(request, names, current)
    if to is None:
        return cannot(problem)
    actions = [f"point {link} at {releases / to} (was {current})"]
    if config.restart:
        actions.append(f"run `{config.restart}`")
    return RollbackPlan("symlink", request.target, current, to, tuple(actions))


def execute(config: SymlinkRollback, plan: RollbackPlan) -> RollbackResult:
    deadline = Deadline(config.timeout.total_seconds())
    link = Path(config.current)
    switched = _switch(link, Path(config.releases_dir) / str(plan.to_release))
    steps = [switched]
    if switched.ok and config.restart:
        steps.append(run_command(config.restart, timeout=deadline.left(), cwd=link.parent))
    return RollbackResult(plan, tuple(steps), unchanged=not switched.ok)


def _choose(request: RollbackRequest, names: list[str], current: str) -> tuple[str | None, str]:
    """The release to restore, or None and why there is none."""
    if request.to:
        if request.to not in names:
            return None, f"no release directory {request.to!r} (have: {_listing(names)})"
        return request.to, ""
    good = newest_usable(request.known_good, names.__contains__, (current, request.release))
    if good is not None:
        return good, ""
    if current not in names:
        return None, f"the current release {current!r} is not in releases_dir"
    index = names.index(current)
    earlier = [name for name in names[:index] if name not in request.refused]
    if not earlier:
        refused = [name for name in names[:index] if name in request.refused]
        why = f" ({', '.join(refused)} rolled back before)" if refused else ""
        return None, (
            f"no release before {current!r} in releases_dir that was not rolled back{why} "
            f"(have: {_listing(names)})"
        )
    return earlier[-1], ""


def _releases(releases: Path) -> list[str] | None:
    try:
        return sorted(entry.name for entry in releases.iterdir() if entry.is_dir())
    except OSError:
        return None


def _linked_release(link: Path, releases: Path) -> str | None:
    """The release directory `current` points at, if it points into `releases`."""
    try:
        target = Path(os.readlink(link))
    except OSError:
        return None
    resolved = (link.parent / target).resolve()
    if resolved.parent != releases.resolve():
        return None
    return resolved.name


def _switch(link: Path, release_dir: Path) -> StepRun:
    """Replace `link` atomically: rename(2) over it is the only step readers can observe."""
    started = time.monotonic()
    action = f"ln -sfn {release_dir} {link} (atomic rename)"
    temporary = link.with_name(f".{link.name}.vigil-{os.getpid()}")
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(release_dir.resolve(), temporary)
        os.replace(temporary, link)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        return StepRun(action, False, error=exc.strerror or str(exc), seconds=_since(started))
    return StepRun(action, True, seconds=_since(started))


def _since(started: float) -> float:
    return time.monotonic() - started


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[-10:])
    return shown if len(names) <= 10 else f"…, {shown}"
