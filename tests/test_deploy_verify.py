"""deploy-verify against a real local app: a good release passes, a bad one is rolled back and
the rollback verified, a failing rollback escalates, flaky errors within the limit pass, and
a dry run changes nothing. Notifications are observed at a real webhook receiver."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.deploy_helpers import LocalApp, rollback, verify, write_config
from tests.fixtures.receivers import HttpReceiver
from tests.helpers import table_artifact
from vigil.store import DeployMeasurement, DeployVerification, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    yield local
    local.stop()


@pytest.fixture
def store_file(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vigil.db'}"


def configure(
    tmp_path: Path, store_file: str, receiver: HttpReceiver, app: LocalApp, **settings: Any
) -> str:
    target = app.target(**settings)
    return str(write_config(tmp_path / "vigil.yaml", store_file, receiver.url, {"web": target}))


def records(store_url: str) -> list[DeployVerification]:
    with open_store(store_url) as store, store.session() as session:
        query = select(DeployVerification).order_by(DeployVerification.id)
        return list(session.scalars(query))


def measurements(store_url: str, verification_id: int) -> list[str]:
    with open_store(store_url) as store, store.session() as session:
        query = (
            select(DeployMeasurement.verdict)
            .where(DeployMeasurement.verification_id == verification_id)
            .order_by(DeployMeasurement.measured_at)
        )
        return list(session.scalars(query))


def test_good_release_passes(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240501", "good")
    assert app.deploy("20240501").returncode == 0
    config = configure(tmp_path, store_file, webhook_receiver, app)

    state = verify("20240501", config)

    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["verdict"] == "passed"
    # window 600ms, interval 200ms: measurements at 0, .2, .4 and .6s
    assert summary["measurements"] == 4
    [record] = records(store_file)
    assert (record.kind, record.release, record.verdict) == ("deploy", "20240501", "passed")
    assert measurements(store_file, record.id) == ["Successful"] * 4
    [alert] = webhook_receiver.json_bodies()
    assert alert["kind"] == "info" and alert["severity"] == "low"
    assert alert["title"] == "web@20240501 passed verification"
    assert alert["fields"]["Verdict"] == "passed"


def test_bad_release_is_rolled_back_and_the_rollback_verified(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240501", "good")
    app.add_release("20240502", "bad")
    app.deploy("20240502")
    bad_pid = app.running_pid()
    config = configure(tmp_path, store_file, webhook_receiver, app)

    state = verify("20240502", config)

    assert state.is_failed() and state.name == "RolledBack", state.message
    assert app.linked() == "20240501"
    assert app.running_pid() not in (None, bad_pid), "the rollback's restart did not restart"
    deploy, restored = records(store_file)
    assert (deploy.release, deploy.verdict, deploy.previous_release) == (
        "20240502",
        "rolled_back",
        "20240501",
    )
    assert (restored.kind, restored.release, restored.verdict) == ("rollback", "20240501", "passed")
    assert restored.previous_release == "20240502"
    # failure_limit 0: the first Failed measurement decides, without waiting for the window
    assert measurements(store_file, deploy.id) == ["Failed"]
    assert set(measurements(store_file, restored.id)) == {"Successful"}
    [alert] = webhook_receiver.json_bodies()
    assert alert["severity"] == "high" and alert["kind"] == "problem"
    assert alert["title"] == "web@20240502 failed verification; rolled back to 20240501"
    assert alert["fields"]["Rollback restored health"] == "yes"
    assert any("[STATUS] 503, expected == 200" in line for line in alert["details"])
    assert "Duration" in alert["fields"]
    rows = table_artifact("deploy-verify-web")
    assert [(row["phase"], row["verdict"]) for row in rows] == [("release", "Failed")] + [
        ("rollback", "Successful")
    ] * 4
    assert rows[0]["health"].startswith("Failed: [STATUS] 503, expected == 200")


def test_failing_rollback_command_is_rollback_failed_and_critical(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240502", "bad")
    app.deploy("20240502")
    paas_api = {
        "type": "command",
        "command": 'echo "PaaS API says: 401 Unauthorized" >&2; exit 3',
        "timeout": "5s",
    }
    config = configure(tmp_path, store_file, webhook_receiver, app, rollback=paas_api)

    state = verify("20240502", config)

    assert state.is_failed() and state.name == "RollbackFailed"
    deploy, attempt = records(store_file)
    assert deploy.verdict == "rollback_failed"
    assert (attempt.kind, attempt.verdict) == ("rollback", "not_restored")
    assert "401 Unauthorized" in (deploy.detail or "")
    [alert] = webhook_receiver.json_bodies()
    assert alert["severity"] == "critical"
    assert alert["fields"]["Rollback restored health"] == "no"
    assert any("exited 3" in line and "401 Unauthorized" in line for line in alert["details"])


def test_flaky_errors_within_the_limit_pass(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240503", "flaky")
    app.deploy("20240503")
    config = configure(tmp_path, store_file, webhook_receiver, app, consecutive_error_limit=1)

    state = verify("20240503", config)

    assert state.is_completed(), state.message
    [record] = records(store_file)
    verdicts = measurements(store_file, record.id)
    assert "Error" in verdicts and "Failed" not in verdicts
    assert app.linked() == "20240503"


def test_flaky_errors_beyond_the_limit_fail(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240503", "flaky")
    app.deploy("20240503")
    config = configure(tmp_path, store_file, webhook_receiver, app, consecutive_error_limit=0)

    state = verify("20240503", config, dry_run=True)

    assert state.name == "WouldRollBack"
    assert "1 consecutive errors > consecutive_error_limit 0" in (state.message or "")


def test_dry_run_changes_nothing(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240501", "good")
    app.add_release("20240502", "bad")
    app.deploy("20240502")
    pid = app.running_pid()
    config = configure(tmp_path, store_file, webhook_receiver, app)

    state = verify("20240502", config, dry_run=True)

    assert state.is_failed() and state.name == "WouldRollBack"
    assert app.linked() == "20240502" and app.running_pid() == pid
    [record] = records(store_file)
    assert record.verdict == "dry_run"
    assert "Would do: symlink rollback: point" in (record.detail or "")
    [alert] = webhook_receiver.json_bodies()
    assert alert["fields"]["Would roll back to"] == "20240501"
    assert alert["fields"]["Rollback restored health"] == "not attempted"


def test_degraded_release_is_inconclusive_and_passes_by_default(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240504", "degraded")
    app.deploy("20240504")
    config = configure(tmp_path, store_file, webhook_receiver, app)

    state = verify("20240504", config)

    assert state.is_completed() and state.name == "Degraded", state.message
    assert (state.message or "").startswith("web@20240504 passed (degraded)")
    [record] = records(store_file)
    assert record.verdict == "degraded"
    assert set(measurements(store_file, record.id)) == {"Inconclusive"}
    [alert] = webhook_receiver.json_bodies()
    assert alert["severity"] == "medium" and alert["fields"]["Verdict"] == "degraded"


def test_a_later_failure_rolls_back_to_the_healthy_release_not_the_degraded_one(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    for name, mode in (("20240501", "good"), ("20240502", "degraded"), ("20240503", "bad")):
        app.add_release(name, mode)
    config = configure(tmp_path, store_file, webhook_receiver, app)
    app.deploy("20240501")
    assert verify("20240501", config).name == "Completed"
    app.deploy("20240502")
    assert verify("20240502", config).name == "Degraded"
    app.deploy("20240503")

    state = verify("20240503", config)

    assert state.name == "RolledBack", state.message
    assert app.linked() == "20240501"
    alert = webhook_receiver.json_bodies()[-1]
    assert alert["fields"]["Rolled back to"] == "20240501"


def test_release_that_never_starts_is_rolled_back(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240501", "good")
    app.add_release("20240505", "crash")
    assert app.deploy("20240505").returncode == 1

    config = configure(tmp_path, store_file, webhook_receiver, app)
    state = verify("20240505", config)

    assert state.name == "RolledBack", state.message
    assert app.linked() == "20240501"
    deploy, _ = records(store_file)
    # the process check answers "not running" (Failed) while health is refused (Error)
    assert measurements(store_file, deploy.id) == ["Failed"]


def test_rollback_is_never_automatic_twice_in_a_row(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    for name, mode in (("20240430", "good"), ("20240501", "good"), ("20240502", "bad")):
        app.add_release(name, mode)
    app.deploy("20240502")
    config = configure(tmp_path, store_file, webhook_receiver, app)
    assert verify("20240502", config).name == "RolledBack"
    # The restored release breaks; re-verifying it must not hop further back.
    (app.releases / "20240501" / "app.py").write_text(
        (app.releases / "20240502" / "app.py").read_text()
    )
    app.restart()

    state = verify("20240501", config)

    assert state.name == "VerificationFailed"
    assert "never rolls back twice in a row" in (state.message or "")
    assert app.linked() == "20240501"
    assert webhook_receiver.json_bodies()[-1]["severity"] == "critical"


def test_manual_rollback_to_a_named_release(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    for name in ("20240501", "20240502", "20240503"):
        app.add_release(name, "good")
    app.deploy("20240503")
    config = configure(tmp_path, store_file, webhook_receiver, app)

    state = rollback(config, "20240501")

    assert state.is_completed(), state.message
    assert app.linked() == "20240501"
    [record] = records(store_file)
    assert (record.kind, record.release, record.previous_release, record.verdict) == (
        "rollback",
        "20240501",
        "20240503",
        "passed",
    )
    missing = rollback(config, "1999")
    assert missing.name == "CannotRollBack"
    assert "no release directory '1999'" in (missing.message or "")


def test_a_run_that_stops_half_way_still_alerts(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240501", "good")
    app.deploy("20240501")
    database = store_file.removeprefix("sqlite:///")
    # Records pruned while the verification runs: its next write has nothing to attach to.
    prune = (
        f"{sys.executable} -c \"import sqlite3; c = sqlite3.connect('{database}'); "
        "c.execute('DELETE FROM deploy_verifications'); c.commit()\""
    )
    config = configure(tmp_path, store_file, webhook_receiver, app, process={"command": prune})

    state = verify("20240501", config)

    assert state.is_failed() and state.name == "Failed"
    [alert] = webhook_receiver.json_bodies()
    assert alert["severity"] == "critical"
    assert alert["title"] == "web@20240501: deploy verification stopped with an error"
    assert "it may be running either release" in alert["summary"]


def test_a_health_condition_on_the_address_is_judged(
    tmp_path: Path, store_file: str, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    """`[IP]` is filled on the deploy path too, as in the sweep."""
    app.add_release("20240501", "good")
    assert app.deploy("20240501").returncode == 0
    health = app.target()["health"] | {"conditions": ["[STATUS] == 200", "[IP] == 127.0.0.1"]}
    config = configure(tmp_path, store_file, webhook_receiver, app, health=health)

    state = verify("20240501", config)

    assert state.is_completed(), state.message
    assert state.result()["verdict"] == "passed"
