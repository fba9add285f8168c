"""Deploy verification of a Node app under a real pm2 (from the npm registry, under the
test's own PM2_HOME): the built-in pm2 check sees an errored app, a missing one and a wrong
PM2_HOME (where it must not start a daemon), restarts climbing during the window, and puts
the app's error log into the alert; a crashing release is caught at its first measurements
and rolled back; and `[BODY].release == [RELEASE]` catches the pinned-release pitfall (pm2
started from inside `current/` keeps serving the old release after a deploy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy_helpers import verify, write_config
from tests.fixtures.pm2 import Pm2App
from tests.fixtures.receivers import HttpReceiver
from tests.test_deploy_verify import measurements, records
from vigil.config import ProcessCheck
from vigil.deploy.verdict import CheckReading

pytestmark = pytest.mark.usefixtures("prefect_api")


def configure(tmp_path: Path, receiver: HttpReceiver, app: Pm2App, **settings: object) -> str:
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    target = {"web": app.target(**settings)}
    return str(write_config(tmp_path / "vigil.yaml", store_url, receiver.url, target))


def pm2_reading(pm2: Pm2App, baseline: int | None = None, **settings: object) -> CheckReading:
    from tasks.deploy import check_process

    check = ProcessCheck.model_validate(pm2.process_check(**settings))
    return check_process(check, "r1", baseline)


def test_the_pm2_check_sees_what_pm2_pid_does_not(pm2_app: Pm2App, tmp_path: Path) -> None:
    pm2_app.add_release("r1", "good")
    pm2_app.add_release("r2", "crash")
    pm2_app.switch("r1")
    pm2_app.start()
    pm2_app.wait_serving("r1")

    online = pm2_reading(pm2_app)
    assert online.verdict == "Successful", online
    assert online.observed.startswith("pm2: web online, 0 restarts, running ")
    assert online.restarts == 0

    climbing = pm2_reading(pm2_app, baseline=0)
    assert climbing.verdict == "Successful"
    pm2_app.pm2("restart", "web")
    pm2_app.pm2("restart", "web")
    climbed = pm2_reading(pm2_app, baseline=0)
    assert climbed.verdict == "Failed"
    assert "web restarted 2 times during the window (max_restarts 0)" in climbed.observed
    assert pm2_reading(pm2_app, baseline=0, max_restarts=2).verdict == "Successful"

    pm2_app.deploy("r2")
    pm2_app.wait_for("errored")
    errored = pm2_reading(pm2_app)
    assert errored.verdict == "Failed"
    assert errored.observed.startswith("pm2: web errored, "), errored.observed
    assert errored.observed.endswith(" restarts")
    assert "Cannot find module 'left-pad'" in errored.log_tail
    assert "\x1b" not in errored.log_tail + errored.observed

    missing = pm2_reading(pm2_app, app="api")
    assert missing.verdict == "Failed"
    assert "no app named api under PM2_HOME=" in missing.observed and "(apps there: web)" in (
        missing.observed
    )

    elsewhere = tmp_path / "other-pm2-home"
    elsewhere.mkdir()
    wrong_home = pm2_reading(pm2_app, home=str(elsewhere))
    assert wrong_home.verdict == "Failed"
    assert f"no pm2 daemon runs under PM2_HOME={elsewhere}" in wrong_home.observed
    assert list(elsewhere.iterdir()) == [], "the check started a pm2 daemon"

    broken = pm2_reading(pm2_app, bin=str(tmp_path / "no-such-pm2"))
    assert broken.verdict == "Error"
    assert broken.observed.startswith("pm2: could not read its process list")


def test_a_crashing_release_is_caught_by_pm2_and_rolled_back(
    tmp_path: Path, webhook_receiver: HttpReceiver, pm2_app: Pm2App
) -> None:
    pm2_app.add_release("r1", "good")
    pm2_app.add_release("r2", "crash")
    pm2_app.switch("r1")
    pm2_app.start()
    pm2_app.wait_serving("r1")
    config = configure(tmp_path, webhook_receiver, pm2_app)
    assert verify("r1", config).is_completed()
    pm2_app.deploy("r2")

    state = verify("r2", config)

    assert state.name == "RolledBack", state.message
    pm2_app.wait_serving("r1")
    deploy = records(f"sqlite:///{tmp_path / 'vigil.db'}")[1]
    assert deploy.release == "r2" and deploy.verdict == "rolled_back"
    # Caught at once by pm2's process list, not 20 s later by refused connections.
    assert measurements(f"sqlite:///{tmp_path / 'vigil.db'}", deploy.id)[-1] == "Failed"
    assert len(measurements(f"sqlite:///{tmp_path / 'vigil.db'}", deploy.id)) <= 3
    alert = webhook_receiver.json_bodies()[-1]
    details = "\n".join(alert["details"])
    assert "pm2: web" in details
    assert "Error log of process pm2 web" in details
    assert "Cannot find module 'left-pad'" in details
    assert "\x1b" not in details


def test_a_release_that_is_not_the_one_running_fails_and_rollback_is_verified_as_itself(
    tmp_path: Path, webhook_receiver: HttpReceiver, pm2_app: Pm2App
) -> None:
    """pm2 started from inside current/ pins r1: after `current` -> r2 and `pm2 restart`,
    r1 still serves. r2 must fail for that reason; the rollback to r1 is then verified
    against r1 (`[RELEASE]` follows the release under verification) and passes."""
    pm2_app.add_release("r1", "good")
    pm2_app.add_release("r2", "good")
    pm2_app.switch("r1")
    pm2_app.start(pinned=True)
    pm2_app.wait_serving("r1")
    config = configure(tmp_path, webhook_receiver, pm2_app)
    assert verify("r1", config).is_completed()
    pm2_app.deploy("r2")
    assert pm2_app.wait_serving() == "r1", "the pitfall did not reproduce"

    state = verify("r2", config)

    assert state.name == "RolledBack", state.message
    assert "the running version is not r2 (the release under verification)" in (state.message or "")
    assert "[BODY].release 'r1', expected == 'r2'" in (state.message or "")
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    restored = records(store_url)[-1]
    assert (restored.kind, restored.release, restored.verdict) == ("rollback", "r1", "passed")
    alert = webhook_receiver.json_bodies()[-1]
    assert alert["fields"]["Rollback restored health"] == "yes"


def test_pm2_started_through_current_serves_each_new_release(
    tmp_path: Path, webhook_receiver: HttpReceiver, pm2_app: Pm2App
) -> None:
    """The README's way (`pm2 start /srv/web/current/server.js`): a deploy really runs the
    new release, and it passes as itself."""
    pm2_app.add_release("r1", "good")
    pm2_app.add_release("r2", "good")
    pm2_app.switch("r1")
    pm2_app.start()
    pm2_app.deploy("r2")
    pm2_app.wait_serving("r2")
    config = configure(tmp_path, webhook_receiver, pm2_app)

    state = verify("r2", config)

    assert state.is_completed(), state.message
    assert state.result()["verdict"] == "passed"
