"""`vigil deploy-gate` lets a pipeline refuse to ship a release vigil rolled back: exit 1 for
it, 0 for the others, from vigil's records alone (no Prefect API needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy_helpers import LocalApp, verify, write_config
from tests.fixtures.receivers import HttpReceiver
from tests.ports import free_port


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    yield local
    local.stop()


def gate(config: Path, release: str) -> tuple[int, str, float]:
    """The CLI as a pipeline runs it, with Prefect pointed at a port nothing listens on."""
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    command = [sys.executable, "-m", "vigil", "-c", str(config), "deploy-gate", "web"]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--release", release], env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.mark.usefixtures("prefect_api")
def test_deploy_gate_refuses_a_rolled_back_release(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.add_release("20240501", "good")
    app.add_release("20240502", "bad")
    app.deploy("20240502")
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    config = write_config(
        tmp_path / "vigil.yaml", store_url, webhook_receiver.url, {"web": app.target()}
    )
    assert verify("20240502", str(config)).name == "RolledBack"

    code, output, seconds = gate(config, "20240502")
    assert code == 1, output
    assert output.startswith("web@20240502 was rolled back at ")
    assert "Ship a new release instead." in output
    assert seconds < 10

    code, output, _ = gate(config, "20240501")
    assert (code, output.strip()) == (0, "web@20240501: no rollback on record; ok to ship")


def test_deploy_gate_rejects_an_unknown_target(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vigil.cli import app

    config = write_config(
        tmp_path / "vigil.yaml",
        f"sqlite:///{tmp_path / 'vigil.db'}",
        "http://127.0.0.1:9/hook",
        {"web": {"pages": ["http://127.0.0.1:9/"]}},
    )
    result = CliRunner().invoke(app, ["-c", str(config), "deploy-gate", "wbe", "--release", "r1"])
    assert result.exit_code == 2
    assert "no deploy target named 'wbe' under `deploys:` (known: web)" in result.output
