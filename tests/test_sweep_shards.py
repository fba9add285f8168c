"""Sharded sweeps: shards probe in runs of their own, the parent alone decides and alerts.

The end-to-end tests serve `uptime-sweep` and `uptime-sweep-shard` from a real Prefect
runner process (each flow run in a process of its own, as on a worker) against the test
API, and trigger the sweep through its deployment, as its schedule would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select

from flows.sweep import uptime_sweep
from flows.sweep_shards import SHARD_DEPLOYMENT
from tests.helpers import run, write_config
from vigil.conditions import ConditionResult, Observation
from vigil.config import Monitor
from vigil.store import CheckResult, MonitorState, ShardHandoff, Store, open_store
from vigil.sweep.checks import MonitorCheck
from vigil.sweep.handoff import hand_over, handoff, merge_handoffs, take_handoffs

ROOT = Path(__file__).resolve().parents[1]
SWEEP_DEPLOYMENT = "uptime-sweep/uptime-sweep-sharded"
SERVE = """
import sys
from prefect import serve
from flows.sweep import uptime_sweep
from flows.sweep_shards import shard_deployment

serve(
    uptime_sweep.to_deployment(name="uptime-sweep-sharded"),
    shard_deployment(None),
    limit=8,
    pause_on_shutdown=False,
    print_starting_message=False,
)
"""


# handing checks over ------------------------------------------------------------------------


def monitor(name: str) -> Monitor:
    return Monitor(name=name, url=f"http://127.0.0.1:9/{name}")


def test_a_handed_over_check_is_the_check_the_shard_made() -> None:
    checks = [
        MonitorCheck(
            monitor("api"),
            Observation(
                status=503,
                body=b"{}",
                response_time=0.25,
                certificate_expiration=timedelta(days=3, seconds=7),
                connected=True,
                ip="127.0.0.1",
            ),
            [
                ConditionResult("[STATUS] == 200", False, "[STATUS] 503, expected == 200"),
                ConditionResult("[RESPONSE_TIME] < 1s", True, "[RESPONSE_TIME] 250ms"),
            ],
            "failed",
            retried=True,
        ),
        MonitorCheck(monitor("db"), Observation(error="connection refused"), [], "failed"),
    ]
    monitors = [monitor("web"), monitor("db"), monitor("api")]
    merged, missing = merge_handoffs(monitors, [handoff(checks)])
    assert [c.monitor.name for c in merged] == ["db", "api"], "config order"
    assert [m.name for m in missing] == ["web"]
    db, api = merged
    assert api.failed == ["[STATUS] 503, expected == 200"] and api.retried
    assert api.verdict == "failed" and api.obs.status == 503 and api.obs.ip == "127.0.0.1"
    assert api.obs.response_time == 0.25
    assert api.obs.certificate_expiration == timedelta(days=3, seconds=7)
    assert db.obs.error == "connection refused" and db.obs.status is None


def test_the_parent_takes_its_shards_checks_once(store: Store) -> None:
    now = datetime.now(UTC)
    check = MonitorCheck(monitor("api"), Observation(status=200, connected=True), [], "ok")
    hand_over(store, "sweep-1", 0, 2, [check], now)
    hand_over(store, "sweep-2", 1, 2, [check], now)
    hand_over(store, "abandoned", 0, 2, [check], now - timedelta(days=2))
    taken = take_handoffs(store, "sweep-1", now)
    assert list(taken) == [0] and taken[0]["api"]["status"] == 200
    assert take_handoffs(store, "sweep-1", now) == {}
    with store.session() as session:
        left = session.scalars(select(ShardHandoff.sweep_id)).all()
    assert left == ["sweep-2"], "taken and stale handoffs are removed"


def test_a_sweep_run_by_hand_probes_every_monitor_itself(
    tmp_path: Path, http_target, prefect_api: None
) -> None:
    lines = [f'  - {{name: m{i}, url: "{http_target.set(f"/m{i}")}"}}' for i in range(4)]
    path = write_config(tmp_path, "sweep: {shards: 3}\nmonitors:\n" + "\n".join(lines) + "\n")
    state, summary = run(uptime_sweep, config_path=str(path))
    assert state.is_completed() and summary["up"] == 4
    assert "unchecked" not in summary


def test_vigil_serve_serves_the_shards_only_for_a_sharded_sweep() -> None:
    from deployments.serve import build_deployments
    from vigil.config import parse_config

    monitors = "monitors: [{name: a, url: 'http://127.0.0.1/'}]"
    plain = build_deployments(parse_config(monitors), "/x.yaml")
    sharded = build_deployments(parse_config("sweep: {shards: 4}\n" + monitors), "/x.yaml")
    assert "uptime-sweep-shard" not in {d.name for d in plain}
    [shards] = [d for d in sharded if d.name == "uptime-sweep-shard"]
    assert shards.schedules in (None, []) and shards.concurrency_limit is None
    assert shards.parameters["config_path"] == "/x.yaml"


# through deployments, as scheduled ----------------------------------------------------------


@pytest.fixture(scope="module")
def served(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A runner process serving the sweep and its shards, like `vigil serve`."""
    from prefect.settings import PREFECT_API_URL

    log = tmp_path_factory.mktemp("runner") / "runner.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PYTHONPATH": str(ROOT),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        _wait_for_deployments(process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_for_deployments(process: subprocess.Popen[bytes], log: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + 90
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                for name in (SWEEP_DEPLOYMENT, SHARD_DEPLOYMENT):
                    client.read_deployment_by_name(name)
                time.sleep(2)  # the runner polls for runs once its deployments are applied
                return
            except ObjectNotFound:
                time.sleep(0.5)
    raise AssertionError("the runner did not register its deployments:\n" + log.read_text())


def sweep_through_deployment(config: Path) -> tuple[Any, list[Any]]:
    """Trigger the sweep as its schedule would; return its run and its shards' runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    parent = run_deployment(
        SWEEP_DEPLOYMENT,
        parameters={"config_path": str(config)},
        timeout=240,
        poll_interval=1,
        as_subflow=False,
    )
    parent = cast(FlowRun, parent)  # called from sync code: the run itself, not a coroutine
    assert parent.state is not None and parent.state.is_final(), parent.state
    with get_client(sync_client=True) as client:
        shard_runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=["uptime-sweep-shard"])
            )
        )
    mine = [r for r in shard_runs if r.parameters.get("sweep_id") == str(parent.id)]
    return parent, mine


def states_in(store_url: str) -> dict[str, str]:
    with open_store(store_url) as store, store.session() as session:
        return {s.monitor: s.state for s in session.scalars(select(MonitorState))}


def test_three_shards_probe_and_the_parent_alerts_once_per_transition(
    tmp_path: Path, http_target, webhook_receiver, served: None
) -> None:
    urls = {
        "ok1": http_target.set("/ok1"),
        "f1": http_target.set("/f1", status=503),
        "deg": http_target.set("/deg", body={"status": "degraded"}),
        "f2": http_target.set("/f2", status=500),
        "ok2": http_target.set("/ok2"),
        "ok3": http_target.set("/ok3"),
    }
    lines = [
        f'  - {{name: {name}, url: "{url}", failure_threshold: 1,'
        ' conditions: ["[STATUS] == 200", "[BODY].status == ok"]}'
        for name, url in urls.items()
    ]
    path = write_config(
        tmp_path,
        "sweep: {shards: 3}\nmonitors:\n" + "\n".join(lines) + "\n",
        hook=webhook_receiver.url,
    )
    store_url = f"sqlite:///{tmp_path / 'vigil.db'}"

    parent, shards = sweep_through_deployment(path)
    assert parent.state.type.value == "FAILED" and parent.state.name == "Outage"
    assert sorted(r.parameters["shard"] for r in shards) == [0, 1, 2]
    assert all(r.state.is_completed() for r in shards), [r.state for r in shards]
    webhook_receiver.wait_for(3, timeout=10)
    time.sleep(0.5)
    titles = sorted(a["title"] for a in webhook_receiver.json_bodies())
    assert titles == ["deg is DEGRADED", "f1 is DOWN", "f2 is DOWN"]
    assert states_in(store_url) == {
        "ok1": "UP",
        "f1": "DOWN",
        "deg": "DEGRADED",
        "f2": "DOWN",
        "ok2": "UP",
        "ok3": "UP",
    }
    with open_store(store_url) as store, store.session() as session:
        rows = session.scalars(select(CheckResult)).all()
        assert sorted(r.monitor for r in rows) == sorted(urls)
        assert {r.flow_run_id for r in rows} == {str(parent.id)}, "recorded by the parent"
        assert session.scalars(select(ShardHandoff)).all() == []

    http_target.set("/f1")
    parent, shards = sweep_through_deployment(path)
    assert parent.state.name == "Outage" and len(shards) == 3
    webhook_receiver.wait_for(4, timeout=10)
    time.sleep(0.5)
    alerts = webhook_receiver.json_bodies()
    assert len(alerts) == 4, [a["title"] for a in alerts]
    assert alerts[3]["title"].startswith("f1 RECOVERED after")
    assert states_in(store_url)["f1"] == "UP"
    with open_store(store_url) as store, store.session() as session:
        assert len(session.scalars(select(CheckResult)).all()) == 12
