"""The git strategy on real repositories: a failed release is rolled back to the last commit
that passed verification (from vigil's records, not HEAD~1), rebuilt and restarted; the
deploy branch moves with it, so the next `git pull --ff-only` deploy works; on the first
day (no verified commit on record) the commit before the deploy comes from HEAD at verify
start, HEAD's reflog or ORIG_HEAD, and the plan says which; local changes that block the
checkout are the alert's reason and are never lost.

The pm2 tests deploy as the usual deploy scripts do: a developer pushes to an upstream
repository, the server's checkout runs `git pull --ff-only`, builds and `pm2 restart`s a
Node app started from the checkout's build directory (real pm2 from npm)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_helpers import (
    APP,
    BOOT_SECONDS,
    LocalApp,
    rollback,
    slack_text,
    verify,
    write_config,
)
from tests.fixtures.pm2 import SERVER, Pm2App
from tests.fixtures.receivers import HttpReceiver
from vigil.deploy import history
from vigil.runtime import summary_of
from vigil.store import open_store

pytestmark = pytest.mark.usefixtures("prefect_api")

BUILD = "mkdir -p build && cp app.py build/app.py"
# The Node app's build: its source and the commit it was built from, which it serves.
NODE_BUILD = "mkdir -p build && cp server.js build/server.js && git rev-parse HEAD > build/REVISION"
NAMED_BY_DIRECTORY = "const RELEASE = path.basename(__dirname);"
NAMED_BY_REVISION = (
    'const RELEASE = require("fs").readFileSync(path.join(__dirname, "REVISION"), "utf8").trim();'
)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def git_run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def identify(repo: Path) -> None:
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "CI")


def commit(repo: Path, mode: str, message: str) -> str:
    (repo / "app.py").write_text(APP.format(mode=mode, boot=BOOT_SECONDS) + f"# {message}\n")
    git(repo, "add", "app.py")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def ship(app: LocalApp, repo: Path) -> None:
    """What the pipeline does: build the checked-out commit and restart."""
    subprocess.run(BUILD, shell=True, cwd=repo, check=True)
    app.restart(repo / "build")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    yield local
    local.stop()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "checkout"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch", "main")
    identify(path)
    (path / ".gitignore").write_text("build/\n")
    git(path, "add", ".gitignore")
    return path


def config_for(tmp_path: Path, receiver: HttpReceiver, app: LocalApp, repo: Path) -> str:
    rollback = {
        "type": "git",
        "repo": str(repo),
        "build": [BUILD],
        "restart": app.restart_command(repo / "build"),
        "timeout": "30s",
    }
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    target = app.target(rollback=rollback)
    return str(write_config(tmp_path / "vigil.yaml", store_url, receiver.url, {"web": target}))


def test_git_rollback_returns_to_the_last_verified_commit(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp, repo: Path
) -> None:
    config = config_for(tmp_path, webhook_receiver, app, repo)
    good = commit(repo, "good", "a good release")
    ship(app, repo)
    assert verify(good, config).is_completed()
    commit(repo, "bad", "never verified: HEAD~1 of the next release, and broken")
    bad = commit(repo, "bad", "the release being verified")
    ship(app, repo)

    state = verify(bad, config)

    assert state.name == "RolledBack", state.message
    assert git(repo, "rev-parse", "HEAD") == good
    assert 'MODE = "good"' in (repo / "build" / "app.py").read_text()
    summary = summary_of(state)
    assert isinstance(summary, dict)
    assert summary["rolled_back_to"] == good and summary["rollback_healthy"] == "yes"
    alert = webhook_receiver.json_bodies()[-1]
    assert alert["title"] == f"web@{bad} failed verification; rolled back to {good}"


def test_git_without_any_earlier_commit_known_does_not_guess(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp, repo: Path
) -> None:
    """No verified commit, no reflog (expired), no ORIG_HEAD: HEAD~1 exists but is never
    taken on a guess."""
    config = config_for(tmp_path, webhook_receiver, app, repo)
    commit(repo, "good", "good, but never verified")
    bad = commit(repo, "bad", "the release being verified")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    ship(app, repo)

    state = verify(bad, config)

    assert state.name == "VerificationFailed"
    assert "it never guesses HEAD~1" in (state.message or "")
    assert "vigil rollback web --to COMMIT" in (state.message or "")
    assert git(repo, "rev-parse", "HEAD") == bad
    alert = webhook_receiver.json_bodies()[-1]
    assert alert["severity"] == "critical"
    assert alert["fields"]["Now running"] == f"{bad}, failing its verification (not rolled back)"
    assert alert["fields"]["Next step"] == "vigil rollback web --to RELEASE"


# --- the plan on its own: where the first day's commit comes from ------------------------------


def plan_for(repo: Path, release: str, **request: Any) -> Any:
    from tasks.rollback import git as strategy
    from vigil.config import GitRollback
    from vigil.deploy.rollback import RollbackRequest

    config = GitRollback(type="git", repo=str(repo), build=["true"])
    return strategy.plan(config, RollbackRequest("web", release, **request))


def test_the_first_days_commit_comes_from_head_at_verify_start_the_reflog_or_orig_head(
    repo: Path,
) -> None:
    g0 = commit(repo, "good", "g0")
    g1 = commit(repo, "good", "g1")
    git(repo, "reset", "--quiet", "--hard", g0)
    git(repo, "merge", "--quiet", "--ff-only", g1)  # as `git pull` does: ORIG_HEAD is g0
    bad = commit(repo, "bad", "bad")

    # The release is not checked out yet when verification starts: HEAD is what ran before.
    git(repo, "checkout", "--quiet", "--detach", g1)
    early = plan_for(repo, bad)
    assert early.to_release == g1, early
    assert early.why.startswith("the commit before the deploy: HEAD when the verification")

    # Deployed with `git checkout`: ORIG_HEAD (g0) is stale; the reflog knows g1.
    git(repo, "checkout", "--quiet", "--detach", bad)
    reflog = plan_for(repo, bad)
    assert reflog.to_release == g1, reflog
    assert "from HEAD's reflog (HEAD@{1}: checkout: moving from" in reflog.why
    assert reflog.why.endswith("no verified commit on record")
    assert "detached" in reflog.actions[0]

    # A commit vigil rolled back before is never chosen, from any source.
    skipped = plan_for(repo, bad, refused=(g1,))
    assert skipped.to_release not in (g1, bad), skipped

    # Without a reflog, ORIG_HEAD (left by the merge) is the commit before the deploy.
    git(repo, "reflog", "expire", "--expire=now", "--all")
    orig = plan_for(repo, bad)
    assert orig.to_release == g0, orig
    assert orig.why.startswith("the commit before the deploy, from ORIG_HEAD")

    # With neither, vigil says so rather than guess HEAD~1.
    (repo / ".git" / "ORIG_HEAD").unlink()
    none = plan_for(repo, bad)
    assert none.to_release is None and "it never guesses HEAD~1" in (none.problem or "")

    # A verified commit on record always wins.
    verified = plan_for(repo, bad, known_good=(g0,))
    assert (verified.to_release, verified.why) == (
        g0,
        "the newest release that passed verification",
    )


def test_a_detached_deploy_stays_detached_and_a_branch_is_what_lets_pull_work(
    tmp_path: Path, repo: Path
) -> None:
    """Deployed by `git checkout --detach`, the rollback keeps HEAD detached (no branch to
    move), and there `git pull --ff-only` fails: why a branch deploy must move the branch."""
    from tasks.rollback import execute_rollback
    from vigil.config import GitRollback

    upstream = tmp_path / "upstream.git"
    git(repo, "init", "--quiet", "--bare", str(upstream))
    good = commit(repo, "good", "good")
    git(repo, "remote", "add", "origin", str(upstream))
    git(repo, "push", "--quiet", "-u", "origin", "main")
    bad = commit(repo, "bad", "bad")
    git(repo, "checkout", "--quiet", "--detach", bad)

    plan = plan_for(repo, bad)
    config = GitRollback(type="git", repo=str(repo), build=["true"])
    done = execute_rollback(config, plan)

    assert done.ok, done.failure()
    assert git(repo, "rev-parse", "HEAD") == good
    assert git_run(repo, "symbolic-ref", "--quiet", "HEAD").returncode != 0
    assert "no branch moved" in done.steps[0].action
    pull = git_run(repo, "pull", "--ff-only")
    assert pull.returncode != 0 and "not currently on a branch" in pull.stderr


# --- pm2, a checkout deployed by `git pull --ff-only` ----------------------------------------


def node_server(mode: str) -> str:
    source = SERVER.format(mode=mode)
    assert NAMED_BY_DIRECTORY in source
    return source.replace(NAMED_BY_DIRECTORY, NAMED_BY_REVISION)


@dataclass
class GitDeploy:
    """An upstream repository, a developer's clone that pushes, the server's checkout."""

    upstream: Path
    dev: Path
    checkout: Path
    app: Pm2App

    @classmethod
    def create(cls, root: Path, app: Pm2App) -> GitDeploy:
        upstream, dev, checkout = root / "upstream.git", root / "dev", root / "srv"
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "-b", "main", str(upstream)], check=True
        )
        subprocess.run(["git", "clone", "--quiet", str(upstream), str(dev)], capture_output=True)
        identify(dev)
        git(dev, "symbolic-ref", "HEAD", "refs/heads/main")
        (dev / ".gitignore").write_text("build/\n")
        git(dev, "add", ".gitignore")
        return cls(upstream, dev, checkout, app)

    def push(self, mode: str, message: str) -> str:
        (self.dev / "server.js").write_text(node_server(mode) + f"// {message}\n")
        git(self.dev, "add", "server.js")
        git(self.dev, "commit", "--quiet", "-m", message)
        git(self.dev, "push", "--quiet", "origin", "main")
        return git(self.dev, "rev-parse", "HEAD")

    def first_deploy(self) -> str:
        """Clone, build, `pm2 start` from the checkout's build directory."""
        git(self.upstream.parent, "clone", "--quiet", str(self.upstream), str(self.checkout))
        identify(self.checkout)
        subprocess.run(NODE_BUILD, shell=True, cwd=self.checkout, check=True)
        done = self.app.pm2("start", str(self.checkout / "build" / "server.js"), "--name", "web")
        assert done.returncode == 0, done.stdout + done.stderr
        return self.head()

    def deploy_script(self) -> str:
        return f"git pull --quiet --ff-only && {NODE_BUILD} && {self.app.restart_command()}"

    def deploy(self) -> subprocess.CompletedProcess[str]:
        """The usual deploy script: pull (fast-forward only), build, restart."""
        return subprocess.run(
            self.deploy_script(), shell=True, cwd=self.checkout, capture_output=True, text=True
        )

    def head(self) -> str:
        return git(self.checkout, "rev-parse", "HEAD")

    def branch(self) -> str:
        return git(self.checkout, "symbolic-ref", "--short", "HEAD")

    def config(self, root: Path, *receivers: tuple[str, HttpReceiver]) -> str:
        rollback = {
            "type": "git",
            "repo": str(self.checkout),
            "build": [NODE_BUILD],
            "restart": self.app.restart_command(),
            "timeout": "30s",
        }
        channels = {
            name: {"type": "webhook", "url": r.url}
            if name == "hook"
            else {"type": "slack", "webhook_url": r.url_for("/slack")}
            for name, r in receivers
        }
        config = {
            "store": {"url": f"sqlite:///{root / 'vigil.db'}"},
            "channels": channels,
            "routes": {s: list(channels) for s in ("critical", "high", "medium", "low")},
            "deploys": {"web": self.app.target(rollback=rollback)},
        }
        path = root / "vigil.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return str(path)


@pytest.fixture
def layout(tmp_path: Path, pm2_app: Pm2App) -> GitDeploy:
    return GitDeploy.create(tmp_path / "git", pm2_app)


def test_a_bad_commit_is_rolled_back_by_moving_the_branch_and_the_next_pull_deploys(
    tmp_path: Path, webhook_receiver: HttpReceiver, slack_api: HttpReceiver, layout: GitDeploy
) -> None:
    config = layout.config(tmp_path, ("hook", webhook_receiver), ("slack", slack_api))
    g1 = layout.push("good", "first release")
    assert layout.first_deploy() == g1
    layout.app.wait_serving(g1)
    assert verify(g1, config).is_completed()
    bad = layout.push("bad", "needs a migration nobody ran")
    assert layout.deploy().returncode == 0 and layout.head() == bad
    layout.app.wait_serving(bad)

    state = verify(bad, config)

    assert state.name == "RolledBack", state.message
    assert layout.branch() == "main", "the rollback left HEAD detached"
    assert git(layout.checkout, "rev-parse", "main") == g1
    assert layout.app.wait_serving(g1) == g1
    alert = webhook_receiver.json_bodies()[-1]
    details = "\n".join(alert["details"])
    assert f"Rollback to {g1}: the newest release that passed verification" in details
    assert f"branch main moved from {bad[:12]} to {g1[:12]}, the working tree on main" in details
    assert "The app's health said: database migrations missing" in details
    assert alert["fields"]["Now running"] == f"{g1}, restored by the rollback and healthy"
    assert alert["fields"]["Next step"] == "vigil verify-deploy web --release NEW_RELEASE"
    slack = slack_text(slack_api.json_bodies()[-1])
    assert "The app's health said: database migrations missing" in slack
    assert f"{g1}, restored by the rollback and healthy" in slack

    fix = layout.push("good", "run the migration first")
    deployed = layout.deploy()
    assert deployed.returncode == 0, deployed.stderr
    assert (layout.head(), layout.branch()) == (fix, "main")
    layout.app.wait_serving(fix)
    assert verify(fix, config).is_completed()
    passed = webhook_receiver.json_bodies()[-1]
    assert passed["title"] == f"web@{fix} passed verification (replaced {g1})"
    assert passed["fields"]["Replaced"] == g1
    assert f"(replaced {g1})" in slack_text(slack_api.json_bodies()[-1])


def test_first_day_a_pull_deploy_is_rolled_back_to_the_commit_before_it_from_the_reflog(
    tmp_path: Path, webhook_receiver: HttpReceiver, layout: GitDeploy
) -> None:
    config = layout.config(tmp_path, ("hook", webhook_receiver))
    g1 = layout.push("good", "running before vigil was set up")
    layout.first_deploy()
    bad = layout.push("bad", "the first release vigil sees")
    assert layout.deploy().returncode == 0
    layout.app.wait_serving(bad)

    state = verify(bad, config)

    assert state.name == "RolledBack", state.message
    assert (layout.head(), layout.branch()) == (g1, "main")
    layout.app.wait_serving(g1)
    details = "\n".join(webhook_receiver.json_bodies()[-1]["details"])
    assert (
        f"Rollback to {g1}: the commit before the deploy, from HEAD's reflog (HEAD@{{1}}: "
        "clone: from "
    ) in details
    assert "; no verified commit on record" in details


def test_local_changes_that_block_the_checkout_are_the_reason_and_nothing_is_lost(
    tmp_path: Path, webhook_receiver: HttpReceiver, slack_api: HttpReceiver, layout: GitDeploy
) -> None:
    config = layout.config(tmp_path, ("hook", webhook_receiver), ("slack", slack_api))
    g1 = layout.push("good", "good")
    layout.first_deploy()
    layout.app.wait_serving(g1)
    assert verify(g1, config).is_completed()
    bad = layout.push("bad", "bad")
    assert layout.deploy().returncode == 0
    layout.app.wait_serving(bad)
    hotfix = (layout.checkout / "server.js").read_text() + "// a hotfix tried on the server\n"
    (layout.checkout / "server.js").write_text(hotfix)

    state = verify(bad, config)

    assert state.name == "RollbackFailed", state.message
    assert (layout.head(), layout.branch()) == (bad, "main")
    assert (layout.checkout / "server.js").read_text() == hotfix, "a local change was lost"
    alert = webhook_receiver.json_bodies()[-1]
    assert alert["title"] == (
        f"web@{bad} failed verification; rollback to {g1} FAILED: nothing was changed, "
        f"{bad} still runs"
    )
    reason = (
        f"local changes in {layout.checkout} block the checkout of {g1[:12]}: git would "
        "overwrite uncommitted changes to server.js, so it refused; nothing was changed and "
        "nothing was lost"
    )
    details = "\n".join(alert["details"])
    assert f"Rollback failed: git checkout --quiet -B main {g1}: {reason}" in details
    assert "Aborting" not in details
    assert (
        alert["fields"]["Now running"] == f"{bad}, unchanged: the rollback to {g1} changed nothing"
    )
    next_step = f"git -C {layout.checkout} stash push && vigil rollback web --to {g1}"
    assert alert["fields"]["Next step"] == next_step
    assert reason in slack_text(slack_api.json_bodies()[-1])
    # A rollback that never put g1 in place says nothing against it: still known good.
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store:
        found = history.history(store, "web")
    assert history.known_good(found, [bad]) == [g1]
    assert history.live_release(found) == bad

    # The next step, as the alert gives it: stash (kept, not lost), then roll back by hand.
    git_part, vigil_part = next_step.split(" && ")
    subprocess.run(git_part, shell=True, check=True, capture_output=True)
    assert vigil_part == f"vigil rollback web --to {g1}"
    assert rollback(config, to=g1).is_completed()
    assert (layout.head(), layout.branch()) == (g1, "main")
    layout.app.wait_serving(g1)
    assert "a hotfix tried on the server" in git(layout.checkout, "stash", "show", "-p")
