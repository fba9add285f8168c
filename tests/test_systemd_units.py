"""The service units in deployments/systemd: valid for systemd (`systemd-analyze verify`,
with the executables pointed at this checkout's venv), restarted on failure, run as a
dedicated user with secrets from an environment file and hardened; the Prefect server's unit
turns on flow-run vacuum with the setting names the installed Prefect reads."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.config import RecordsRetention
from vigil.prefect_db import (
    EVENTS_RETENTION,
    VACUUM_ENABLED,
    VACUUM_RETENTION,
    WANTED_VACUUM,
    server_settings,
)

UNITS = Path(__file__).parents[1] / "deployments" / "systemd"
NAMES = ["prefect-server.service", "vigil.service"]


def directives(name: str) -> dict[str, list[str]]:
    """Every `Key=value` of the unit (keys may repeat), section-less."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("name", NAMES)
def test_the_unit_restarts_runs_as_vigil_and_is_hardened(name: str) -> None:
    unit = directives(name)
    assert unit["Restart"] == ["on-failure"]
    assert unit["User"] == ["vigil"] and unit["Group"] == ["vigil"]
    assert unit["EnvironmentFile"] == ["/etc/vigil/vigil.env"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/vigil"]
    assert unit["PrivateTmp"] == ["yes"]
    assert unit["ExecStart"][0].startswith("/opt/vigil/.venv/bin/")


def test_the_prefect_server_vacuums_flow_runs() -> None:
    environment = directives("prefect-server.service")["Environment"]
    assert f"{VACUUM_ENABLED}={WANTED_VACUUM}" in environment
    example = (UNITS / "vigil.env.example").read_text()
    seconds = int(RecordsRetention().prefect_runs_horizon.total_seconds())
    assert f"\n{VACUUM_RETENTION}={seconds}\n" in example
    events = server_settings(RecordsRetention().prefect_runs_horizon)[EVENTS_RETENTION]
    assert f"\n{EVENTS_RETENTION}={events}\n" in example


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    venv = Path(sys.executable).parent.parent
    for name in NAMES:
        text = (UNITS / name).read_text().replace("/opt/vigil/.venv", str(venv))
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / n) for n in NAMES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "Failed to connect" not in line  # no systemd running: fine
    ]
    assert done.returncode == 0 and not problems, "\n".join(problems)


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    """The check above can fail: an unknown key and a missing executable are reported."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    text = (UNITS / "vigil.service").read_text().replace("Restart=", "Restrat=")
    (tmp_path / "vigil.service").write_text(text)
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "vigil.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Unknown key 'Restrat'" in done.stderr
    assert done.returncode != 0  # /opt/vigil/.venv/bin/vigil does not exist here


def test_units_parse_as_ini() -> None:
    for name in NAMES:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string((UNITS / name).read_text())
        assert parser.sections() == ["Unit", "Service", "Install"]
