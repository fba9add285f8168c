"""Per-duty routes: `routes: {deploy: {low: [deployments]}}` sends deploy notices to their
own channel without every other `low` alert going there, a duty's severities it does not
name keep the shared route, and a config naming an unknown duty, severity or channel is
refused with every problem at its key. Deliveries land at a real local HTTP receiver."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.notify import RetryPolicy, dispatch
from tests.deploy_helpers import LocalApp, verify
from tests.fixtures.receivers import HttpReceiver
from vigil.alert import Alert
from vigil.config import ConfigError, parse_config

FAST = RetryPolicy(base=0.01, max_wait=0.05, jitter=0)


def channels(receiver: HttpReceiver) -> dict[str, Any]:
    return {
        name: {"type": "webhook", "url": receiver.url_for(f"/{name}"), "timeout": "2s"}
        for name in ("ops", "oncall", "deployments")
    }


ROUTES = {
    "critical": ["ops", "oncall"],
    "high": ["ops"],
    "low": ["ops"],
    "deploy": {"low": ["deployments"], "medium": ["deployments"]},
    "backup": {"low": []},
}


def alert(duty: str, severity: str) -> Alert:
    return Alert(
        title=f"{duty} {severity}",
        severity=severity,  # type: ignore[arg-type]
        duty=duty,
        subject="web",
        summary="something happened",
    )


def landed(receiver: HttpReceiver) -> list[tuple[str, str]]:
    """(channel, alert title) of every delivery, in arrival order."""
    return [(r.path.strip("/"), r.json()["title"]) for r in receiver.requests]


def test_a_duty_route_replaces_the_shared_one_for_its_severities_only(
    webhook_receiver: HttpReceiver,
) -> None:
    document = {"channels": channels(webhook_receiver), "routes": ROUTES}
    config = parse_config(yaml.safe_dump(document))
    expected = {
        ("deploy-verify", "low"): ["deployments"],
        ("deploy-rollback", "medium"): ["deployments"],
        ("deploy-verify", "critical"): ["ops", "oncall"],  # not named under deploy: shared
        ("uptime-sweep", "low"): ["ops"],  # other low alerts do not go to #deployments
        ("daily-backup", "low"): [],  # silenced for backups alone
        ("weekly-restore-test", "low"): ["ops"],
        ("notify-test", "low"): ["ops"],  # no duty: the shared route
    }
    for (duty, severity), wanted in expected.items():
        webhook_receiver.reset()
        deliveries = dispatch(alert(duty, severity), config, policy=FAST)
        assert [d.channel for d in deliveries] == wanted, (duty, severity)
        webhook_receiver.wait_for(len(wanted))
        assert sorted(landed(webhook_receiver)) == sorted(
            (name, f"{duty} {severity}") for name in wanted
        )


def test_unknown_duties_severities_and_channels_are_refused_at_their_keys() -> None:
    routes = {
        "hgih": ["ops"],
        "deploys": {"low": ["ops"]},
        "deploy": {"lo": ["ops"], "low": ["deployment", "ops"], "high": "ops"},
        "uptime": ["ops"],
        "medium": {"deploy": ["ops"]},
    }
    channel = {"ops": {"type": "webhook", "url": "http://x/"}}
    text = yaml.safe_dump({"channels": channel, "routes": routes}, sort_keys=False)

    with pytest.raises(ConfigError) as raised:
        parse_config(text)

    assert raised.value.errors == [
        "routes.hgih: 'hgih' is neither a severity (critical, high, medium, low) nor a duty "
        "(backup, deploy, drill, housekeeping, report, restore-test, uptime)",
        "routes.deploys: 'deploys' is neither a severity (critical, high, medium, low) nor a "
        "duty (backup, deploy, drill, housekeeping, report, restore-test, uptime)",
        "routes.deploy.lo: unknown severity 'lo' (one of critical, high, medium, low)",
        "routes.deploy.low[0]: no channel named 'deployment'",
        "routes.deploy.high: a list of channel names, e.g. [ops-slack]",
        "routes.uptime: a duty's route maps severities to channels, e.g. {low: [deployments]}",
        "routes.medium: a list of channel names, e.g. [ops-slack]",
    ]


def test_check_config_lists_the_route_problems_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    channel = {"ops": {"type": "webhook", "url": "http://x/"}}
    path.write_text(yaml.safe_dump({"channels": channel, "routes": {"deploy": {"lo": ["ops"]}}}))

    done = subprocess.run(
        [sys.executable, "-m", "vigil", "-c", str(path), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "routes.deploy.lo: unknown severity 'lo'" in done.stdout + done.stderr


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LocalApp]:
    local = LocalApp.create(tmp_path / "web")
    local.add_release("r1", "good")
    yield local
    local.stop()


@pytest.mark.usefixtures("prefect_api")
def test_a_passed_deploy_is_told_in_its_own_channel_only(
    tmp_path: Path, webhook_receiver: HttpReceiver, app: LocalApp
) -> None:
    app.deploy("r1")
    config = {
        "store": {"url": f"sqlite:///{tmp_path / 'vigil.db'}"},
        "channels": channels(webhook_receiver),
        "routes": ROUTES,
        "deploys": {"web": app.target()},
    }
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(config))

    state = verify("r1", str(path))

    assert state.is_completed(), state.message
    assert landed(webhook_receiver) == [("deployments", "web@r1 passed verification")]
