"""The scheduled `weekly-report` flow for real: it publishes the `weekly-report` artifact,
sends the summary to the routed channel, and ends `SLOMissed` when a target was missed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flows.report import weekly_report
from tests.helpers import run
from tests.history import recent, seeded_store

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Artifact

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_weekly_report_publishes_an_artifact_and_sends_the_summary(
    tmp_path: Path, webhook_receiver
) -> None:
    scenario = recent(history_days=8)
    hook = (
        f"channels:\n  hook: {{type: webhook, url: '{webhook_receiver.url}'}}\n"
        "routes: {low: [hook]}\n"
    )
    with seeded_store(scenario, "sqlite", tmp_path, None) as seeded:
        config = scenario.write_config(tmp_path, seeded.url, extra=hook)
        state, summary = run(weekly_report, config_path=str(config))

    # Over 7 days api lost 50 minutes: far beyond a 99.9% budget of about 10.
    assert state.is_failed() and state.name == "SLOMissed"
    assert summary["slo_missed"] == ["api"] and summary["sent"] == 1

    [alert] = webhook_receiver.json_bodies()
    assert alert["title"].startswith("vigil report: ") and alert["kind"] == "info"
    assert alert["duty"] == "weekly-report" and alert["severity"] == "low"
    assert any(line.startswith("api: ") and "50m down" in line for line in alert["details"])
    assert any(line.startswith("deploy web: ") for line in alert["details"])

    artifact = _latest_artifact("weekly-report")
    assert artifact.flow_run_id == state.state_details.flow_run_id
    markdown = str(artifact.data)
    assert "## Monitors" in markdown and "| api |" in markdown and "## Backups" in markdown


def _latest_artifact(key: str) -> Artifact:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert found, f"no artifact with key {key!r}"
    return found[0]


def test_weekly_report_email_carries_the_html_report(tmp_path: Path, smtp_server) -> None:
    scenario = recent(history_days=8)
    mail = (
        "channels:\n  mail: {type: email, host: 127.0.0.1, "
        f"port: {smtp_server.port}, security: none, from: vigil@example.com, "
        "to: [ops@example.com]}\n"
        "routes: {low: [mail]}\n"
    )
    with seeded_store(scenario, "sqlite", tmp_path, None) as seeded:
        config = scenario.write_config(tmp_path, seeded.url, extra=mail)
        run(weekly_report, config_path=str(config))

    [received] = smtp_server.wait_for(1)
    html = received.part("text/html")
    assert "<table" in html and "api" in html
    assert received.message["Subject"].startswith("[vigil]")
