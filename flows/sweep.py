"""The uptime sweep: probe every monitor once, confirm failures, decide states, record them,
tell people about changes, ping the heartbeat.

It reads like the runbook it replaces; the decisions live in `vigil.sweep` and
`vigil.monitoring`, the probing in `tasks.http` and `tasks.postgres`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from tasks.http import probe_batch
from vigil import sweep as logic
from vigil.alerts import send_alert
from vigil.conditions import Observation
from vigil.config import Config, Monitor, load_config
from vigil.monitoring import DEGRADED, DOWN, MonitorState, mark_alerted, plan_alerts
from vigil.runtime import as_is, flow_run_id, flow_run_link, outcome
from vigil.store import Incident, Store, open_store

MARGIN = timedelta(seconds=1)
MIN_RETRY = timedelta(milliseconds=300)


def _run_name() -> str:
    return "sweep " + datetime.now(UTC).strftime("%Y-%m-%d %H:%M")


@task(name="probe monitors", cache_policy=NO_CACHE)
def probe_monitors(monitors: list[Monitor], concurrency: int, per_host: int) -> list[Observation]:
    """All probes of one kind (HTTP, TCP or PostgreSQL) concurrently in one event loop."""
    return probe_batch(monitors, concurrency=concurrency, per_host=per_host)


@task(name="confirm failures", cache_policy=NO_CACHE)
def confirm_failures(monitors: list[Monitor], concurrency: int, per_host: int) -> list[Observation]:
    """One quick retry of each failed check, so a single dropped packet pages no one."""
    return probe_batch(monitors, concurrency=concurrency, per_host=per_host)


@task(name="check fallbacks", cache_policy=NO_CACHE)
def check_fallbacks(monitors: list[Monitor], concurrency: int) -> list[Observation]:
    """Is the fallback deployment serving while the primary is DOWN?"""
    return probe_batch(monitors, concurrency=concurrency, per_host=0)


@task(name="record results", cache_policy=NO_CACHE)
def record_results(store_url: str, decision: logic.Decision, run_id: str | None) -> None:
    store = open_store(store_url)
    try:
        store.add_check_results(logic.check_rows(decision, run_id))
        store.add_rollups(logic.rollup_rows(decision))
    finally:
        store.close()


@task(name="send alerts", cache_policy=NO_CACHE)
def send_alerts(config: Config, store_url: str, alerts: list[Any]) -> int:
    """Deliver each planned alert; returns how many were delivered to at least one channel."""
    store = open_store(store_url)
    try:
        delivered = 0
        for alert in alerts:
            deliveries = send_alert(config, store, alert)
            delivered += any(d.status == "sent" for d in deliveries)
        return delivered
    finally:
        store.close()


@task(name="save monitor states", cache_policy=NO_CACHE)
def save_states(store_url: str, decision: logic.Decision, states: dict[str, MonitorState]) -> None:
    """Persist states and open or close incidents for the transitions of this sweep."""
    store = open_store(store_url)
    try:
        store.save_monitor_states(states)
        _record_incidents(store, decision)
    finally:
        store.close()


@task(name="update status page", cache_policy=NO_CACHE)
def update_status_page(config: Config, at: datetime) -> list[str]:
    """Rebuild (and upload) the public status page when the config asks for one."""
    from vigil.statuspage import publish

    with open_store(config.store.url) as store:
        return publish(config, store, at)


@task(name="ping heartbeat", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ping_heartbeat(url: str) -> None:
    """Tell the outside dead-man's switch that vigil is alive and sweeping."""
    import httpx

    httpx.get(url, timeout=10).raise_for_status()


@flow(name="uptime-sweep", flow_run_name=_run_name, log_prints=False)
def uptime_sweep(config_path: str | None = None, shard: int = 0, shards: int = 1) -> Any:
    """Check every monitor once, decide each one's state, record it and tell people."""
    started = time.monotonic()
    config = load_config(config_path)
    monitors = logic.shard_of(config.monitors, shard, shards)
    deadline = started + _budget(monitors).total_seconds()
    at = datetime.now(UTC)

    checks = logic.evaluate(monitors, _probe(monitors, config))
    checks = _confirm(checks, config, deadline)

    store = open_store(config.store.url)
    try:
        before = logic.states_from_store(store.get_monitor_states())
    finally:
        store.close()
    decision = logic.decide(config, checks, before, at)
    run_id = flow_run_id()
    record_results(config.store.url, as_is(decision), run_id)

    fallbacks = _fallbacks(config, decision, deadline)
    by_name = {m.name: m for m in config.monitors}
    alerts = plan_alerts(
        decision.transitions,
        by_name,
        decision.after,
        fallbacks,
        digest_after=config.sweep.digest_after,
        flow_run_url=flow_run_link(),
    )
    sent = send_alerts(as_is(config), config.store.url, as_is(alerts)) if alerts else 0
    states = (
        mark_alerted(decision.after, decision.transitions, by_name, at)
        if alerts
        else decision.after
    )
    save_states(config.store.url, as_is(decision), as_is(states))

    _publish(decision)
    if config.status_page.out or config.status_page.upload:
        update_status_page(as_is(config), at)
    if config.sweep.heartbeat_url:
        _heartbeat(config.sweep.heartbeat_url)
    problem, degraded = logic.problem_of(decision)
    return outcome(
        problem, logic.summary(decision, sent), logic.headline(decision), degraded=degraded
    )


def _budget(monitors: list[Monitor]) -> timedelta:
    """A sweep lasts at most its largest timeout plus a small margin."""
    return max((m.timeout for m in monitors), default=timedelta(0)) + MARGIN


def _probe(monitors: list[Monitor], config: Config) -> list[Observation]:
    """Submit one probing task per monitor type, then put answers back in config order."""
    groups: dict[str, list[int]] = {}
    for i, monitor in enumerate(monitors):
        groups.setdefault(monitor.type, []).append(i)
    futures = {
        kind: probe_monitors.with_options(name=f"probe {kind} monitors").submit(
            as_is([monitors[i] for i in idx]), config.sweep.concurrency, config.sweep.per_host
        )
        for kind, idx in groups.items()
    }
    wait(list(futures.values()))
    observations: list[Observation | None] = [None] * len(monitors)
    for kind, idx in groups.items():
        for i, obs in zip(idx, futures[kind].result(), strict=True):
            observations[i] = obs
    return [o for o in observations if o is not None]


def _confirm(checks: list[logic.Check], config: Config, deadline: float) -> list[logic.Check]:
    """Retry fast failures within what is left of the sweep's budget; a probe that already
    waited its whole timeout is its own confirmation."""
    left = timedelta(seconds=deadline - time.monotonic())
    if left < MIN_RETRY:
        return checks
    retry = [
        m.model_copy(update={"timeout": min(m.timeout, left)})
        for m, c in ((c.monitor, c) for c in checks if c.verdict == "failed")
        if not _timed_out(c.obs)
    ]
    if not retry:
        return checks
    again = confirm_failures(as_is(retry), config.sweep.concurrency, config.sweep.per_host)
    originals = {m.name: m for m in (c.monitor for c in checks)}
    retried = logic.evaluate([originals[m.name] for m in retry], again)
    return logic.merge_retries(checks, retried)


def _fallbacks(config: Config, decision: logic.Decision, deadline: float) -> dict[str, str]:
    targets = logic.fallback_targets(config, decision)
    if not targets:
        return {}
    left = max(timedelta(seconds=deadline - time.monotonic()), timedelta(seconds=2))
    targets = [m.model_copy(update={"timeout": min(m.timeout, left)}) for m in targets]
    observations = check_fallbacks(as_is(targets), config.sweep.concurrency)
    return logic.fallback_status(logic.evaluate(targets, observations))


def _timed_out(obs: Observation) -> bool:
    return bool(obs.error and "timed out" in obs.error)


def _publish(decision: logic.Decision) -> None:
    rows, hidden = logic.table(decision)
    note = f" ({hidden} more UP monitors not shown)" if hidden else ""
    create_table_artifact(
        key="uptime-sweep",
        table=rows,
        description=f"Uptime sweep at {decision.at:%Y-%m-%d %H:%M UTC}: "
        f"{logic.headline(decision)}{note}",
    )


def _heartbeat(url: str) -> None:
    try:
        ping_heartbeat(url)
    except Exception as exc:  # the sweep's own result matters more than its heartbeat
        get_run_logger().warning("heartbeat ping failed: %s", exc)


def _record_incidents(store: Store, decision: logic.Decision) -> None:
    """Open an incident when a monitor enters DOWN or DEGRADED; close it when it leaves,
    including the quiet DEGRADED -> UP that sends no alert."""
    from sqlalchemy import select

    changes = logic.state_changes(decision)
    if not changes:
        return
    with store.session() as session:
        for check, before, after in changes:
            name = check.monitor.name
            if before in (DOWN, DEGRADED):
                still_open = session.scalars(
                    select(Incident).where(Incident.monitor == name, Incident.ended_at.is_(None))
                ).all()
                for incident in still_open:
                    incident.ended_at = decision.at
            if after in (DOWN, DEGRADED):
                session.add(
                    Incident(
                        monitor=name,
                        state=after,
                        started_at=decision.after[name].since or decision.at,
                        severity=check.monitor.severity if after == DOWN else "medium",
                        cause="; ".join(check.failed)[:2000] or check.obs.error,
                        notified=name not in decision.maintenance,
                    )
                )
