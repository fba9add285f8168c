"""One verification or rollback per target at a time: while a pipeline's `vigil
verify-deploy` runs, another verification of the same target waits for it (the Prefect
global concurrency limit `deploy-<target>`), and one that would wait longer than its
lock_timeout gives up with a message naming the run that holds the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.deploy_helpers import LocalApp, verify, write_config
from tests.fixtures.receivers import HttpReceiver
from vigil.store import DeployMeasurement, DeployVerification, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    local.add_release("20240501", "good")
    local.deploy("20240501")
    yield local
    local.stop()


def cli(config: Path, release: str) -> subprocess.Popen[str]:
    """`vigil verify-deploy` as a pipeline runs it, against the test harness's Prefect API."""
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


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return process.returncode, output


def verifications(store_url: str) -> list[DeployVerification]:
    with open_store(store_url) as store, store.session() as session:
        return list(session.scalars(select(DeployVerification).order_by(DeployVerification.id)))


def measured(store_url: str, verification_id: int) -> list[DeployMeasurement]:
    with open_store(store_url) as store, store.session() as session:
        query = select(DeployMeasurement).where(
            DeployMeasurement.verification_id == verification_id
        )
        return list(session.scalars(query))


def test_concurrent_verifications_take_turns_and_an_impatient_one_gives_up(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"

    def config(name: str, **settings: Any) -> str:
        target = {"web": app.target(**settings)}
        return str(write_config(tmp_path / name, store_url, webhook_receiver.url, target))

    holder = cli(Path(config("pipeline.yaml", window="8s")), "20240501")
    try:
        deadline = time.monotonic() + 60
        while not (rows := verifications(store_url)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows, "the pipeline's verification never started"

        impatient = verify("20240502", config("impatient.yaml", lock_timeout="300ms"))
        second_began = datetime.now(UTC)
        patient = verify("20240503", config("patient.yaml", lock_timeout="30s"))
    finally:
        code, output = finish(holder)

    assert code == 0, output
    assert impatient.is_failed() and impatient.name == "LockTimeout"
    message = impatient.message or ""
    assert "waited lock_timeout (300ms) for the lock 'deploy-web' and gave up" in message
    assert "the deploy verification of 20240501 has held it since" in message
    assert str(rows[0].flow_run_id) in message
    assert "raise deploys.web.lock_timeout" in message

    assert patient.is_completed(), patient.message
    first, second = verifications(store_url)
    assert (first.release, second.release) == ("20240501", "20240503")
    assert first.finished_at is not None and second_began < first.finished_at, "not concurrent"
    assert first.finished_at <= second.started_at, "the second began before the first ended"
    last_of_first = max(m.measured_at for m in measured(store_url, first.id))
    first_of_second = min(m.measured_at for m in measured(store_url, second.id))
    assert last_of_first < first_of_second
