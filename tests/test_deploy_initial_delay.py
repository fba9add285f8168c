"""`initial_delay` (Argo's initialDelay) matters: a release that answers 503 "starting" while
it boots (BOOT_SECONDS after its restart, then healthy) fails its verification without the
delay and passes with one longer than its boot, against a real local app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.deploy_helpers import BOOT_SECONDS, LocalApp, verify, write_config
from tests.fixtures.receivers import HttpReceiver
from vigil.store import DeployMeasurement, DeployVerification, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    local.add_release("r1", "boot")
    yield local
    local.stop()


def configure(tmp_path: Path, receiver: HttpReceiver, app: LocalApp, delay: str) -> str:
    target = app.target(initial_delay=delay)
    del target["rollback"]  # what is judged is the verdict, not a rollback
    store = f"sqlite:///{tmp_path / 'vigil.db'}"
    return str(write_config(tmp_path / f"delay-{delay}.yaml", store, receiver.url, {"web": target}))


def measured(tmp_path: Path) -> list[list[str]]:
    """Each verification's measurement classes, oldest first."""
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store, store.session() as session:
        rows = session.scalars(select(DeployVerification).order_by(DeployVerification.id))
        return [
            list(
                session.scalars(
                    select(DeployMeasurement.verdict)
                    .where(DeployMeasurement.verification_id == row.id)
                    .order_by(DeployMeasurement.measured_at)
                )
            )
            for row in rows
        ]


def test_a_release_judged_while_it_boots_fails_without_initial_delay(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    assert app.deploy("r1").returncode == 0

    state = verify("r1", configure(tmp_path, webhook_receiver, app, "0s"))

    assert state.name == "VerificationFailed", state.message
    assert "[STATUS] 503, expected == 200" in (state.message or "")
    assert measured(tmp_path) == [["Failed"]]


def test_initial_delay_longer_than_the_boot_lets_the_same_release_pass(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    assert app.deploy("r1").returncode == 0
    delay = f"{BOOT_SECONDS + 1:.0f}s"

    state = verify("r1", configure(tmp_path, webhook_receiver, app, delay))

    assert state.is_completed() and state.name == "Completed", state.message
    [after_boot] = measured(tmp_path)
    assert after_boot and set(after_boot) == {"Successful"}
