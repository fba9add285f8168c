"""A verification stopped from outside (SIGTERM to `vigil verify-deploy`, as a pipeline's
timeout or a shutdown sends it) during the rollback or the re-verification of the restored
release: the records say `interrupted` (the release that failed: `rollback_interrupted`,
which the gate refuses), an alert says where it stopped and what to run next, and the
restored release stays known-good, so the next rollback still goes back to it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy_helpers import LocalApp, verify, write_config
from tests.fixtures.receivers import HttpReceiver
from tests.test_deploy_lock import verifications
from tests.test_deploy_verify import measurements
from vigil.deploy.history import history, known_good
from vigil.store import open_store

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    local.add_release("r1", "good")
    local.add_release("r2", "bad")
    local.add_release("r3", "bad")
    local.deploy("r1")
    yield local
    local.stop()
    group = tmp_path / "restart.pgid"
    if group.exists():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(group.read_text()), signal.SIGKILL)


def cli(config: Path, release: str) -> subprocess.Popen[str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    command = [sys.executable, "-m", "vigil", "-c", str(config), "verify-deploy", "web"]
    return subprocess.Popen(
        [*command, "--release", release],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def terminate(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return process.returncode, output


def setup(tmp_path: Path, receiver: HttpReceiver, app: LocalApp, restart: str) -> Path:
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    rollback = {
        "type": "symlink",
        "releases_dir": str(app.releases),
        "current": str(app.current),
        "restart": restart,
        "timeout": "60s",
    }
    target = app.target(rollback=rollback, window="20s", interval="200ms")
    config = write_config(tmp_path / "vigil.yaml", store_url, receiver.url, {"web": target})
    quick = app.target(rollback=rollback, window="400ms", interval="200ms")
    write_config(tmp_path / "quick.yaml", store_url, receiver.url, {"web": quick})
    assert verify("r1", str(tmp_path / "quick.yaml")).is_completed()
    return config


def good_releases(tmp_path: Path) -> list[str]:
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store:
        return known_good(history(store, "web"))


def test_sigterm_mid_rollback_is_interrupted_not_failed(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    started = tmp_path / "restart.started"
    slow_restart = (
        f"echo $$ > {tmp_path / 'restart.pgid'}; touch {started}; sleep 30; "
        + app.restart_command()
    )
    config = setup(tmp_path, webhook_receiver, app, slow_restart)
    app.deploy("r2")
    process = cli(config, "r2")
    wait_until(started.exists, "the rollback's restart to begin")

    code, output = terminate(process)

    assert code != 0, output
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    _, deploy, rollback = verifications(store_url)
    assert (deploy.release, deploy.verdict) == ("r2", "rollback_interrupted")
    assert (rollback.kind, rollback.release, rollback.verdict) == ("rollback", "r1", "interrupted")
    assert "interrupted (SIGTERM) during the rollback" in (rollback.detail or "")
    assert good_releases(tmp_path) == ["r1"]
    alert = webhook_receiver.json_bodies()[-1]
    assert alert["title"] == "web@r2: deploy verification interrupted during the rollback"
    assert alert["severity"] == "critical"
    assert "Now running: r2 or r1" in alert["summary"]
    assert "Next step: `vigil rollback web --to r1`" in alert["summary"]
    # The gate refuses r2; and the next failure still rolls back to r1, not further.
    from vigil.deploy.history import rolled_back

    with open_store(store_url) as store:
        assert rolled_back(store, "web", "r2") is not None


def test_sigterm_mid_reverification_keeps_the_restored_release_good(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    config = setup(tmp_path, webhook_receiver, app, app.restart_command())
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    app.deploy("r2")
    process = cli(config, "r2")

    def reverifying() -> bool:
        rows = verifications(store_url)
        return len(rows) == 3 and len(measurements(store_url, rows[2].id)) >= 2

    wait_until(reverifying, "the re-verification of r1")
    code, output = terminate(process)

    assert code != 0, output
    _, deploy, rollback = verifications(store_url)
    assert deploy.verdict == "rollback_interrupted"
    assert (rollback.release, rollback.verdict) == ("r1", "interrupted")
    assert good_releases(tmp_path) == ["r1"]
    assert app.linked() == "r1"
    alert = webhook_receiver.json_bodies()[-1]
    assert alert["title"] == "web@r2: deploy verification interrupted during the re-verification"
    assert "Recorded as interrupted" in alert["details"][-1]

    # The history held: a later bad release rolls back to r1 again, which passes.
    app.deploy("r3")
    state = verify("r3", str(tmp_path / "quick.yaml"))
    assert state.name == "RolledBack", state.message
    assert app.linked() == "r1"


def test_the_crash_hook_marks_rows_left_running_and_alerts_once(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    """A run killed where it could not record its own end (its rows still `running`): the
    crashed/cancelled hook marks them interrupted and alerts; run again, it finds nothing."""
    from types import SimpleNamespace

    from flows.deploy import after_interruption
    from vigil.deploy.history import start_record

    config = setup(tmp_path, webhook_receiver, app, app.restart_command())
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store:
        start_record(
            store,
            target="web",
            release="r2",
            kind="deploy",
            previous_release="r1",
            flow_run_id="run-1",
        )
    run = SimpleNamespace(id="run-1", parameters={"target": "web", "config_path": str(config)})
    before = len(webhook_receiver.json_bodies())

    after_interruption(run, SimpleNamespace(name="Crashed"))
    after_interruption(run, SimpleNamespace(name="Crashed"))

    rows = verifications(f"sqlite:///{tmp_path / 'vigil.db'}")
    assert (rows[-1].release, rows[-1].verdict) == ("r2", "interrupted")
    alerts = webhook_receiver.json_bodies()[before:]
    assert [a["title"] for a in alerts] == ["web@r2: deploy verification interrupted (Crashed)"]
    assert "vigil verify-deploy web --release r2" in alerts[0]["summary"]
    assert good_releases(tmp_path) == ["r1"]
