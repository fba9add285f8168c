"""The uptime sweep: probe every monitor once, confirm failures, decide states, record them,
tell people about changes, publish the table and the status page, ping the heartbeat.

It reads like the runbook it replaces. The probing is `tasks.probes` (here, or spread over
shard runs by `flows.sweep_shards`), the decisions `vigil.sweep` and `vigil.monitoring`,
the delivery of alerts `tasks.notify`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.sweep_locations import located_checks
from flows.sweep_shards import fans_out, sharded_checks
from tasks.notify import send_alert
from tasks.probes.checks import check_here, fallbacks_serving
from vigil import boundary, clock
from vigil.alert import Alert
from vigil.config import Config, Monitor, load_config
from vigil.findings import Finding
from vigil.logs import story
from vigil.monitoring import MonitorState, mark_alerted, plan_alerts
from vigil.runtime import as_is, flow_run_id, flow_run_link, outcome
from vigil.store import open_store
from vigil.sweep import presentation
from vigil.sweep.checks import MonitorCheck, budget, gc_paused
from vigil.sweep.decision import SweepDecision, decide, fallback_targets
from vigil.sweep.due import due, has_intervals
from vigil.sweep.quorum import LocationView
from vigil.sweep.records import record_sweep, states_from_store


def _run_name() -> str:
    return "sweep " + clock.now().strftime("%Y-%m-%d %H:%M")


@task(name="read monitor states", cache_policy=NO_CACHE)
def read_states(store_url: str) -> dict[str, MonitorState]:
    """What the previous sweeps left; read while the probes run, which mostly wait."""
    with open_store(store_url) as store:
        return states_from_store(store.monitor_state_rows())


@task(name="send alerts", cache_policy=NO_CACHE)
def send_alerts(config: Config, store_url: str, alerts: list[Alert]) -> int:
    """Deliver each planned alert; returns how many were delivered to at least one channel."""
    with open_store(store_url) as store:
        delivered = 0
        for alert in alerts:
            deliveries = send_alert(config, store, alert)
            delivered += any(d.status == "sent" for d in deliveries)
        return delivered


@task(name="record sweep", cache_policy=NO_CACHE)
def record(
    store_url: str,
    decision: SweepDecision,
    states: dict[str, MonitorState],
    run_id: str | None,
) -> None:
    """Check results, hourly rollups, monitor states and incidents, through one store."""
    with open_store(store_url) as store:
        record_sweep(store, decision, states, run_id)


@task(name="update status page", cache_policy=NO_CACHE)
def update_status_page(config: Config, at: datetime) -> list[str]:
    """Rebuild (and upload) the public status page when the config asks for one."""
    from tasks.statuspage import publish

    with open_store(config.store.url) as store:
        return publish(config, store, at)


class HeartbeatFailed(Finding):
    """The dead-man's switch did not take the ping: a finding about the outside service (its
    URL is a secret, so the message names only what went wrong)."""


@task(name="ping heartbeat", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ping_heartbeat(url: str) -> None:
    """Tell the outside dead-man's switch that vigil is alive and sweeping."""
    import httpx

    try:
        httpx.get(url, timeout=10).raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise HeartbeatFailed(
            f"heartbeat ping refused: HTTP {exc.response.status_code}, expected 2xx"
        ) from None
    except httpx.HTTPError as exc:
        raise HeartbeatFailed(f"heartbeat ping failed: {type(exc).__name__}: {exc}") from None


@flow(name="uptime-sweep", flow_run_name=_run_name, log_prints=False)
def uptime_sweep(config_path: str | None = None) -> Any:
    """Check every monitor once, decide each one's state, record it and tell people."""
    with gc_paused():
        return _sweep(config_path)


def _sweep(config_path: str | None) -> Any:
    started = time.monotonic()
    config = load_config(config_path)
    at = clock.now()
    run_id = flow_run_id()

    before, monitors = _due(config, at)
    deadline = started + budget(monitors).total_seconds()
    checks, unchecked, views, silent = _checks(config, monitors, config_path, run_id, deadline, at)
    decision = decide(config, checks, before.result(), at, views)
    _tell(decision)

    fallbacks = fallbacks_serving(fallback_targets(decision), config, deadline)
    alerts = plan_alerts(
        decision.transitions,
        config.monitors_by_name,
        decision.after,
        fallbacks,
        digest_after=config.sweep.digest_after,
        flow_run_url=flow_run_link(),
    )
    sent = send_alerts(as_is(config), config.store.url, as_is(alerts)) if alerts else 0
    states = (
        mark_alerted(decision.after, decision.transitions, config.monitors_by_name, at)
        if alerts
        else decision.after
    )
    record(config.store.url, as_is(decision), as_is(states), run_id)

    _publish_table(decision)
    if config.status_page.out or config.status_page.upload:
        update_status_page(as_is(config), at)
    if config.sweep.heartbeat_url:
        _heartbeat(config.sweep.heartbeat_url)
    state = presentation.run_state(
        decision, sent, unchecked, not_due=len(config.monitors) - len(monitors), silent=silent
    )
    return outcome(state.problem, state.summary, state.message, degraded=state.degraded)


def _due(config: Config, at: datetime) -> tuple[Any, list[Monitor]]:
    """The stored states (a future) and the monitors due in this sweep. Without per-monitor
    intervals every monitor is due, and the states are read while the probes run."""
    if not has_intervals(config):
        return read_states.submit(config.store.url), config.monitors
    before = read_states.submit(config.store.url)
    return before, due(config, config.monitors, before.result(), at)


def _checks(
    config: Config,
    monitors: list[Monitor],
    config_path: str | None,
    run_id: str | None,
    deadline: float,
    at: datetime,
) -> tuple[list[MonitorCheck], list[Monitor], dict[str, LocationView], list[str]]:
    """The due monitors' checks, probed here, by the shards or from the locations; the
    monitors nothing conclusive was seen of; what each location saw; and the runs (shards,
    locations) that did not report."""
    if config.locations:
        return located_checks(config, monitors, run_id or "", deadline, at)
    if fans_out(config):
        checks, unchecked, silent = sharded_checks(
            config, config_path, run_id or "", deadline, monitors, at
        )
        return checks, unchecked, {}, silent
    return check_here(monitors, config, deadline), [], {}, []


def _tell(decision: SweepDecision) -> None:
    log = story()
    for level, line in presentation.story(decision):
        log.log(level, "%s", line)


def _publish_table(decision: SweepDecision) -> None:
    rows, hidden = presentation.table(decision)
    boundary.publish_table(
        presentation.ARTIFACT_KEY, rows, presentation.table_description(decision, hidden)
    )


def _heartbeat(url: str) -> None:
    try:
        ping_heartbeat(url)
    except Exception as exc:  # the sweep's own result matters more than its heartbeat
        get_run_logger().warning("%s (sweep.heartbeat_url); the sweep itself is unaffected", exc)
