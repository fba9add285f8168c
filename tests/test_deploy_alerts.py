"""What deploy alerts say, as the local Slack and webhook receivers get them, with a real pm2
(from npm): a release that passes names the one it replaced; a failed release's alert carries
the app's own health message; a rollback to a release that is now running but unhealthy says
so, with the tail of pm2's error log, what runs now and the next step, and that next step,
run as given, restores a healthy release."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_helpers import rollback, slack_text, verify
from tests.fixtures.pm2 import SERVER, Pm2App
from tests.fixtures.receivers import HttpReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")


def configure(tmp_path: Path, app: Pm2App, hook: HttpReceiver, slack: HttpReceiver) -> str:
    config = {
        "store": {"url": f"sqlite:///{tmp_path / 'vigil.db'}"},
        "channels": {
            "hook": {"type": "webhook", "url": hook.url},
            "slack": {"type": "slack", "webhook_url": slack.url_for("/slack")},
        },
        "routes": {s: ["hook", "slack"] for s in ("critical", "high", "medium", "low")},
        "deploys": {"web": app.target()},
    }
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def received(hook: HttpReceiver, slack: HttpReceiver) -> tuple[dict[str, Any], str]:
    """The newest alert as the webhook got it, and all the text Slack got for it."""
    return hook.json_bodies()[-1], slack_text(slack.json_bodies()[-1])


def test_alerts_say_what_runs_now_what_the_app_said_its_error_log_and_the_next_step(
    tmp_path: Path, webhook_receiver: HttpReceiver, slack_api: HttpReceiver, pm2_app: Pm2App
) -> None:
    for name, mode in (("r0", "good"), ("r1", "good"), ("r2", "bad")):
        pm2_app.add_release(name, mode)
    pm2_app.switch("r0")
    pm2_app.start()
    pm2_app.wait_serving("r0")
    config = configure(tmp_path, pm2_app, webhook_receiver, slack_api)
    assert verify("r0", config).is_completed()
    first, _ = received(webhook_receiver, slack_api)
    assert first["title"] == "web@r0 passed verification" and "Replaced" not in first["fields"]

    pm2_app.deploy("r1")
    pm2_app.wait_serving("r1")
    assert verify("r1", config).is_completed()
    alert, slack = received(webhook_receiver, slack_api)
    assert alert["title"] == "web@r1 passed verification (replaced r0)"
    assert alert["fields"]["Replaced"] == "r0" and alert["fields"]["Now running"] == "r1, healthy"
    assert "web@r1 passed verification (replaced r0)" in slack
    assert "Next step" not in alert["fields"]

    # While r2 goes out, r1 stops being able to start (what it loads is gone): the
    # rollback puts r1 back in place, and it crash-loops under pm2.
    (pm2_app.releases / "r1" / "server.js").write_text(SERVER.format(mode="crash"))
    pm2_app.deploy("r2")
    pm2_app.wait_serving("r2")

    state = verify("r2", config)

    assert state.name == "RollbackFailed", state.message
    alert, slack = received(webhook_receiver, slack_api)
    title = "web@r2 failed verification; rollback to r1 FAILED: r1 is now running and unhealthy"
    assert alert["title"] == title and title in slack
    now = "r1, restored by the rollback and unhealthy: it failed its own verification"
    assert alert["fields"]["Now running"] == now and now in slack
    assert alert["fields"]["Next step"] == "vigil rollback web --to r0"
    details = "\n".join(alert["details"])
    next_line = (
        "Next step: r1 is unhealthy too: roll back further, to r0, the next release that "
        "passed verification: `vigil rollback web --to r0`"
    )
    assert next_line in details
    said = "The app's health said: database migrations missing"
    assert said in details and said in slack
    assert "Error log of process pm2 web" in details
    assert "Cannot find module 'left-pad' (required by r1)" in details
    assert "Cannot find module 'left-pad' (required by r1)" in slack
    assert "\x1b" not in details + slack

    # The next step, as the alert gives it.
    assert rollback(config, to="r0").is_completed()
    assert pm2_app.wait_serving("r0") == "r0"
    done, _ = received(webhook_receiver, slack_api)
    assert done["title"] == "web rolled back to r0 by hand; it passed verification"
    assert done["fields"]["Now running"] == "r0, restored by the rollback and healthy"


def test_the_health_message_is_one_redacted_inert_bounded_line() -> None:
    """The app's words are outside data: its secrets masked, its escapes shown as text, on
    one line; a page's body and an HTML error page are not a health message."""
    from vigil.conditions import Observation, evaluate_all, parse_condition
    from vigil.deploy.verdict import SAID_CHARS, classify_http

    raw = "db down: postgresql://app:s3cretpw@db/app \x1b[2J\x1b]8;;https://evil\x07\nnext " + (
        "x" * 400
    )
    assert "s3cretpw" in raw and "\x1b" in raw and "\n" in raw  # what must not get through
    body = json.dumps({"status": "error", "error": {"message": raw}}).encode()
    conditions = [parse_condition("[STATUS] == 200")]

    def said(check: str, status: int, content: bytes) -> str:
        obs = Observation(status=status, body=content, response_time=0.01)
        return classify_http(check, "http://app/health", obs, evaluate_all(conditions, obs)).said

    message = said("health", 503, body)
    assert message.startswith("db down: postgresql://app:***@db/app \\x1b[2J")
    assert "s3cretpw" not in message and "\x1b" not in message and "\n" not in message
    assert len(message) == SAID_CHARS and message.endswith("…")
    assert said("health", 502, b"upstream timed out\n") == "upstream timed out"
    assert said("health", 500, b"<html><h1>500</h1></html>") == ""
    assert said("page", 500, body) == ""
    assert said("health", 200, body) == "", "a passing check has nothing to say"
