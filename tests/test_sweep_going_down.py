"""A monitor goes DOWN only after its failure threshold, pages once, and RECOVERS once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from flows.sweep import uptime_sweep
from tests.helpers import run, write_config
from vigil.store import CheckResult, Incident, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_down_after_threshold_no_repeat_then_recovered(
    tmp_path: Path, http_target, webhook_receiver
) -> None:
    url = http_target.set("/health", status=503)
    path = write_config(
        tmp_path,
        f"""
        monitors:
          - name: api
            url: {url}
            conditions: ["[STATUS] == 200"]
            failure_threshold: 2
            severity: critical
        """,
        hook=webhook_receiver.url,
    )

    state, summary = run(uptime_sweep, config_path=str(path))
    assert state.is_completed(), "one failed sweep is below the threshold: no outage yet"
    assert summary["pending"] == 1 and summary["unknown"] == 0
    assert webhook_receiver.json_bodies() == []

    state, summary = run(uptime_sweep, config_path=str(path))
    assert state.type.value == "FAILED" and state.name == "Outage"
    assert summary["down_monitors"] == ["api"]
    webhook_receiver.wait_for(1, timeout=5)
    [down] = webhook_receiver.json_bodies()
    assert down["title"] == "api is DOWN"
    assert down["severity"] == "critical"
    assert any("[STATUS] 503" in line for line in down["details"])

    run(uptime_sweep, config_path=str(path))
    assert len(webhook_receiver.json_bodies()) == 1, "no repeat alert while DOWN"

    http_target.set("/health", status=200)
    state, summary = run(uptime_sweep, config_path=str(path))
    assert state.is_completed() and state.name == "Completed"
    webhook_receiver.wait_for(2, timeout=5)
    recovered = webhook_receiver.json_bodies()[1]
    assert recovered["title"].startswith("api RECOVERED after")
    assert recovered["kind"] == "recovered"

    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store, store.session() as session:
        results = session.scalars(select(CheckResult).order_by(CheckResult.id)).all()
        assert [r.ok for r in results] == [False, False, False, True]
        assert results[0].status_code == 503
        incidents = session.scalars(select(Incident)).all()
        assert len(incidents) == 1
        assert incidents[0].state == "DOWN" and incidents[0].ended_at is not None


def test_a_blip_is_confirmed_away_by_the_quick_retry(
    tmp_path: Path, http_target, webhook_receiver
) -> None:
    url = http_target.set("/flaky", fail_first=1)
    path = write_config(
        tmp_path,
        f"""
        monitors:
          - {{name: flaky, url: "{url}", failure_threshold: 1}}
        """,
        hook=webhook_receiver.url,
    )
    state, summary = run(uptime_sweep, config_path=str(path))
    assert state.is_completed()
    assert summary["up"] == 1
    assert http_target.hits["/flaky"] == 2, "the failed check was retried once"
    assert webhook_receiver.json_bodies() == []
