"""The git strategy on a real repository: a failed release is rolled back to the last commit
that passed verification (from vigil's records, not HEAD~1), rebuilt and restarted."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy_helpers import APP, LocalApp, verify, write_config
from tests.fixtures.receivers import HttpReceiver
from vigil.runtime import summary_of

pytestmark = pytest.mark.usefixtures("prefect_api")

BUILD = "mkdir -p build && cp app.py build/app.py"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(repo: Path, mode: str, message: str) -> str:
    (repo / "app.py").write_text(APP.format(mode=mode) + f"# {message}\n")
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
    git(path, "config", "user.email", "ci@example.com")
    git(path, "config", "user.name", "CI")
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


def test_git_without_a_verified_commit_does_not_guess(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp, repo: Path
) -> None:
    config = config_for(tmp_path, webhook_receiver, app, repo)
    commit(repo, "good", "good, but never verified")
    bad = commit(repo, "bad", "the release being verified")
    ship(app, repo)

    state = verify(bad, config)

    assert state.name == "VerificationFailed"
    assert "it never guesses HEAD~1" in (state.message or "")
    assert "vigil rollback web --to COMMIT" in (state.message or "")
    assert git(repo, "rev-parse", "HEAD") == bad
    assert webhook_receiver.json_bodies()[-1]["severity"] == "critical"
