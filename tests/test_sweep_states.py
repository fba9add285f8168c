"""Degraded health, digests, maintenance, fallbacks, dependencies and the run's artifact."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.sweep import uptime_sweep
from tests.helpers import run, write_config
from vigil.store import CheckResult, open_store

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_degraded_health_is_its_own_state_at_medium(
    tmp_path: Path, http_target, webhook_receiver
) -> None:
    url = http_target.set("/health", body={"status": "degraded"})
    path = write_config(
        tmp_path,
        f"""
        monitors:
          - name: api
            url: {url}
            conditions: ["[STATUS] == 200", "[BODY].status == ok"]
            severity: critical
        """,
        hook=webhook_receiver.url,
    )
    state, summary = run(uptime_sweep, config_path=str(path))
    assert state.is_completed() and state.name == "Degraded"
    assert summary["degraded"] == 1
    webhook_receiver.wait_for(1, timeout=5)
    [alert] = webhook_receiver.json_bodies()
    assert alert["title"] == "api is DEGRADED"
    assert alert["severity"] == "medium"


def test_many_failures_make_one_digest(tmp_path: Path, http_target, webhook_receiver) -> None:
    lines = []
    for i in range(12):
        url = http_target.set(f"/svc{i}", status=500)
        lines.append(f'  - {{name: svc{i}, url: "{url}", failure_threshold: 1, severity: high}}')
    path = write_config(
        tmp_path, "monitors:\n" + "\n".join(lines) + "\n", hook=webhook_receiver.url
    )
    state, summary = run(uptime_sweep, config_path=str(path))
    assert state.name == "Outage" and summary["down"] == 12
    webhook_receiver.wait_for(1, timeout=5)
    time.sleep(0.3)
    [digest] = webhook_receiver.json_bodies()
    assert "12 monitors" in digest["title"]
    text = " ".join(digest["details"])
    assert all(f"svc{i}" in text for i in range(12))


def test_maintenance_suppresses_alerts_but_records_results(
    tmp_path: Path, http_target, webhook_receiver
) -> None:
    url = http_target.set("/db", status=503)
    now = datetime.now(UTC)
    path = write_config(
        tmp_path,
        f"""
        maintenance:
          - from: "{(now - timedelta(minutes=5)).isoformat()}"
            to: "{(now + timedelta(hours=1)).isoformat()}"
            reason: database upgrade
        monitors:
          - {{name: db, url: "{url}", failure_threshold: 1}}
        """,
        hook=webhook_receiver.url,
    )
    run(uptime_sweep, config_path=str(path))
    run(uptime_sweep, config_path=str(path))
    time.sleep(0.3)
    assert webhook_receiver.json_bodies() == []
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store, store.session() as session:
        results = session.scalars(select(CheckResult)).all()
        assert len(results) == 2 and all(r.in_maintenance for r in results)


def test_alert_says_whether_the_fallback_serves(
    tmp_path: Path, http_target, webhook_receiver
) -> None:
    primary = http_target.set("/primary", status=502)
    fallback = http_target.set("/fallback", status=200)
    path = write_config(
        tmp_path,
        f"""
        monitors:
          - {{name: web, url: "{primary}", fallback: "{fallback}", failure_threshold: 1}}
        """,
        hook=webhook_receiver.url,
    )
    run(uptime_sweep, config_path=str(path))
    webhook_receiver.wait_for(1, timeout=5)
    [alert] = webhook_receiver.json_bodies()
    assert alert["fields"]["fallback"] == "serving"


def test_only_the_root_cause_pages(tmp_path: Path, http_target, webhook_receiver) -> None:
    db = http_target.set("/db", status=503)
    api = http_target.set("/api", status=503)
    path = write_config(
        tmp_path,
        f"""
        monitors:
          - {{name: db, url: "{db}", failure_threshold: 1}}
          - {{name: api, url: "{api}", failure_threshold: 1, depends_on: [db]}}
        """,
        hook=webhook_receiver.url,
    )
    run(uptime_sweep, config_path=str(path))
    webhook_receiver.wait_for(1, timeout=5)
    time.sleep(0.3)
    [alert] = webhook_receiver.json_bodies()
    assert alert["title"] == "db is DOWN"
    assert "api" in " ".join(alert["details"]) + str(alert["fields"])


def test_sweep_publishes_its_table_and_pings_the_heartbeat(tmp_path: Path, http_target) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    url = http_target.set("/ok")
    beat = http_target.set("/beat")
    path = write_config(
        tmp_path,
        f"""
        sweep: {{heartbeat_url: "{beat}"}}
        monitors:
          - {{name: ok, url: "{url}"}}
        """,
    )
    state, _ = run(uptime_sweep, config_path=str(path))
    assert http_target.hits.get("/beat") == 1

    async def latest() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["uptime-sweep"])),
            )

    artifacts = asyncio.run(latest())
    mine = [a for a in artifacts if a.flow_run_id == state.state_details.flow_run_id]
    assert mine and mine[0].type == "table"
    assert "ok" in str(mine[0].data)


def test_a_sweep_is_bounded_by_the_largest_timeout(tmp_path: Path, http_target) -> None:
    lines = []
    for i in range(20):
        url = http_target.set(f"/slow{i}", delay=5)
        lines.append(f'  - {{name: slow{i}, url: "{url}", timeout: 1s}}')
    path = write_config(tmp_path, "monitors:\n" + "\n".join(lines) + "\n")
    started = time.monotonic()
    _, summary = run(uptime_sweep, config_path=str(path))
    elapsed = time.monotonic() - started
    assert summary["monitors"] == 20
    assert elapsed < 4.0, f"sweep took {elapsed:.1f}s with 1s timeouts"


def test_postgres_monitor_with_a_query(tmp_path: Path, pg_database: str) -> None:
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("create table auth_events (ok boolean)")
        conn.execute("insert into auth_events select false from generate_series(1, 12)")
    path = write_config(
        tmp_path,
        f"""
        monitors:
          - {{name: main-db, type: postgres, url: "{pg_database}"}}
          - name: failed-logins
            type: postgres
            url: "{pg_database}"
            query: "select count(*) from auth_events where not ok"
            conditions: ["[RESULT] <= 10"]
            failure_threshold: 1
        """,
    )
    _, summary = run(uptime_sweep, config_path=str(path))
    assert summary["up"] == 1 and summary["down_monitors"] == ["failed-logins"]


def test_a_failing_query_without_conditions_is_down(tmp_path: Path, pg_database: str) -> None:
    path = write_config(
        tmp_path,
        f"""
        monitors:
          - name: broken-query
            type: postgres
            url: "{pg_database}"
            query: "select * from no_such_table"
            failure_threshold: 1
        """,
    )
    state, summary = run(uptime_sweep, config_path=str(path))
    assert state.name == "Outage" and summary["down_monitors"] == ["broken-query"]
