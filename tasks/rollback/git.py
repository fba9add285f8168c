"""`type: git`: a working copy deployed from a branch (`git pull --ff-only`, `git checkout`,
`git reset`), rebuilt and restarted. Rolling back returns to the last release that passed
verification (from vigil's records, never a blind `HEAD~1`, which may be another bad commit
or a merge's other parent), then runs each `build` command and `restart`, all in the
working copy.

The branch moves with it: on a branch, the rollback is `git checkout -B <branch> <good>`, so
the working tree stays on the branch, now at the good commit, and the next `git pull
--ff-only` deploy fast-forwards from there (a detached HEAD would make it fail, and a branch
left at the bad commit would bring it back). The bad commit stays in the branch's reflog and
upstream. A HEAD that was detached stays detached.

Without a verified commit on record (the first day), the commit before the deploy: HEAD when
the verification started, if the release under verification was not checked out then; else
the newest entry of HEAD's reflog at another commit (where `git pull`, `checkout` or `reset`
moved HEAD from); else ORIG_HEAD (left by `git pull`, `merge` and `reset`). The plan says
where its commit came from. A commit vigil rolled back is never chosen.

Never forced, never `reset --hard`: when git says a checkout would overwrite local changes it
refuses, and the rollback fails naming those files, with the command that gets past it
(nothing changed, nothing lost); other uncommitted changes are carried over, as by `git pull`.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
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

# Never wait for a credential prompt; git's messages in English, since vigil reads them.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
QUICK = 30.0
REFLOG_ENTRIES = 100
SUBJECT_CHARS = 80


def plan(config: GitRollback, request: RollbackRequest) -> RollbackPlan:
    repo = Path(config.repo)
    head = _commit(repo, "HEAD")
    if head is None:
        problem = f"repo {repo} is not a git working copy with a commit checked out"
        return RollbackPlan("git", request.target, request.release, None, (), problem)
    release = _commit(repo, request.release)
    from_release = request.release if release == head else head[:12]
    to, why, problem = _choose(repo, request, head, release)
    if to is None:
        return RollbackPlan("git", request.target, from_release, None, (), problem)
    branch = _branch(repo)
    if branch:
        checkout = (
            f"git checkout -B {branch} {_short(to)} in {repo} (moves branch {branch} from "
            f"{head[:12]}; the working tree stays on {branch})"
        )
    else:
        checkout = f"git checkout --detach {_short(to)} in {repo} (HEAD is detached at {head[:12]})"
    actions = [checkout, *(f"run `{command}`" for command in config.build)]
    if config.restart:
        actions.append(f"run `{config.restart}`")
    return RollbackPlan("git", request.target, from_release, to, tuple(actions), why=why)


def execute(config: GitRollback, plan: RollbackPlan) -> RollbackResult:
    deadline = Deadline(config.timeout.total_seconds())
    repo = Path(config.repo)
    commit = _commit(repo, plan.to_release)
    if commit is None:
        missing = StepRun(f"find {plan.to_release} in {repo}", False, error="not a commit there")
        return RollbackResult(plan, (missing,), unchanged=True)
    checkout = _checkout(repo, commit, deadline)
    if not checkout.ok:
        return _refused(plan, repo, checkout)
    steps = [checkout]
    for command in [*config.build, *([config.restart] if config.restart else [])]:
        steps.append(run_command(command, timeout=deadline.left(), cwd=repo))
        if not steps[-1].ok:
            break
    return RollbackResult(plan, tuple(steps))


def _checkout(repo: Path, commit: str, deadline: Deadline) -> StepRun:
    """Check `commit` out on the current branch (moved there), or detached if HEAD is."""
    head = _commit(repo, "HEAD") or "?"
    branch = _branch(repo)
    if branch:
        command = f"git checkout --quiet -B {shlex.quote(branch)} {commit}"
        done = (
            f"branch {branch} moved from {head[:12]} to {commit[:12]}, the working tree on "
            f"{branch}, so the next `git pull --ff-only` continues from there; {head[:12]} "
            f"stays in `git reflog {branch}`"
        )
    else:
        command = f"git checkout --quiet --detach {commit}"
        done = f"HEAD was detached at {head[:12]}: now detached at {commit[:12]}, no branch moved"
    step = run_command(command, timeout=deadline.left(), cwd=repo, env=GIT_ENV)
    return replace(step, action=f"{step.action} ({done})") if step.ok else step


def _refused(plan: RollbackPlan, repo: Path, step: StepRun) -> RollbackResult:
    """A checkout that failed; when local changes blocked it, they are the reason."""
    changed, untracked = _blocking(step.output)
    if not changed and not untracked:
        return RollbackResult(plan, (step,))
    kinds = [f"uncommitted changes to {_listing(changed)}"] if changed else []
    kinds += [f"untracked {_listing(untracked)}"] if untracked else []
    reason = (
        f"local changes in {repo} block the checkout of {_short(plan.to_release)}: git would "
        f"overwrite {' and '.join(kinds)}, so it refused; nothing was changed and nothing was "
        "lost (vigil never forces a checkout)"
    )
    output = "\n".join(line for line in step.output.splitlines() if line.strip() != "Aborting")
    stash = f"git -C {shlex.quote(str(repo))} stash push" + (
        " --include-untracked" if untracked else ""
    )
    to = shlex.quote(str(plan.to_release))
    next_step = f"{stash} && vigil rollback {shlex.quote(plan.target)} --to {to}"
    blocked = replace(step, error=reason, output=output)
    return RollbackResult(plan, (blocked,), unchanged=True, next_step=next_step)


def _blocking(output: str) -> tuple[list[str], list[str]]:
    """The files git named as blocking a checkout: changed tracked ones, untracked ones."""
    changed: list[str] = []
    untracked: list[str] = []
    into = changed
    for line in output.splitlines():
        if "would be overwritten" in line:
            into = untracked if "untracked working tree files" in line else changed
        elif line.startswith("\t"):
            into.append(line.strip())
    return changed, untracked


def _listing(files: list[str]) -> str:
    shown = ", ".join(files[:10])
    return shown + (f" and {len(files) - 10} more" if len(files) > 10 else "")


def _choose(
    repo: Path, request: RollbackRequest, head: str, release: str | None
) -> tuple[str | None, str, str]:
    """(the release to restore, where it came from, why there is none)."""
    if request.to:
        if _commit(repo, request.to) is None:
            return None, "", f"{request.to!r} is not a commit in {repo}"
        return request.to, "asked for with --to", ""

    def usable(good: str) -> bool:  # known-good releases are never refused ones
        commit = _commit(repo, good)
        return commit is not None and commit not in (head, release)

    good = newest_usable(request.known_good, usable, ())
    if good is not None:
        return good, "the newest release that passed verification", ""
    refused = {commit for r in request.refused if (commit := _commit(repo, r))}
    before = _before_deploy(repo, head, release, refused)
    if before is not None:
        return before[0], before[1], ""
    deployed = (release or head)[:12]
    return (
        None,
        "",
        f"no release of {request.target} that passed verification is a commit in {repo}, and "
        f"neither HEAD's reflog nor ORIG_HEAD names a commit before {deployed}, so vigil knows "
        "no good commit to return to (it never guesses HEAD~1); roll back by hand with "
        f"`vigil rollback {request.target} --to COMMIT`",
    )


def _before_deploy(
    repo: Path, head: str, release: str | None, refused: set[str]
) -> tuple[str, str] | None:
    """The commit checked out before the release was deployed, and how vigil knows."""
    first_day = "no verified commit on record"
    if release is not None and release != head and head not in refused:
        return head, (
            f"the commit before the deploy: HEAD when the verification started ({head[:12]}; "
            f"{release[:12]} was not checked out then); {first_day}"
        )
    avoid = {head, release} | refused
    for commit, selector, subject in _reflog(repo):
        if commit not in avoid:
            return commit, (
                f"the commit before the deploy, from HEAD's reflog ({selector}: {subject}); "
                f"{first_day}"
            )
    orig = _commit(repo, "ORIG_HEAD")
    if orig is not None and orig not in avoid:
        return orig, (
            f"the commit before the deploy, from ORIG_HEAD (left by git pull, merge or reset); "
            f"{first_day}"
        )
    return None


def _reflog(repo: Path) -> list[tuple[str, str, str]]:
    """HEAD's reflog, newest first: (commit, `HEAD@{n}`, what moved it)."""
    command = f"git log --walk-reflogs --format=%H%x09%gd%x09%gs -n {REFLOG_ENTRIES} HEAD --"
    step = run_command(command, timeout=QUICK, cwd=repo, env=GIT_ENV, tail=None)
    if not step.ok:
        return []
    entries = []
    for line in step.output.splitlines():
        commit, _, rest = line.partition("\t")
        selector, _, subject = rest.partition("\t")
        if len(commit) >= 40:
            entries.append((commit, selector, subject[:SUBJECT_CHARS]))
    return entries


def _branch(repo: Path) -> str | None:
    """The branch checked out, or None when HEAD is detached."""
    step = run_command(
        "git symbolic-ref --quiet --short HEAD", timeout=QUICK, cwd=repo, env=GIT_ENV
    )
    return step.output.strip() or None if step.ok else None


def _commit(repo: Path, ref: str | None) -> str | None:
    """The full commit id `ref` names in `repo`, or None."""
    if not ref:
        return None
    command = f"git rev-parse --verify --quiet --end-of-options {shlex.quote(ref + '^{commit}')}"
    step = run_command(command, timeout=QUICK, cwd=repo, env=GIT_ENV)
    return step.output.strip() if step.ok else None


def _short(ref: str | None) -> str:
    """A commit id shortened for people; any other release id as it is."""
    text = str(ref)
    full = len(text) == 40 and all(c in "0123456789abcdef" for c in text)
    return text[:12] if full else text
