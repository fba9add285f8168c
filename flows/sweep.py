"""The uptime sweep: probe every monitor once, confirm failures, decide states, record them,
tell people about changes, ping the heartbeat.

It reads like the runbook it replaces; the decisions live in `vigil.sweep` and
`vigil.monitoring`, the probing in `tasks.http` and `tasks.postgres`.

With `sweep.shards: N` and the sweep running as a deployment, the probing fans out: the
sweep starts N runs of the `uptime-sweep-shard` deployment (so N workers probe in
parallel), each probes, evaluates and confirms its share of the monitors and hands its
checks over through the records store (workers on other machines share nothing else),
and the parent alone decides states, records, alerts and saves, exactly as it does for an
unsharded sweep. A sweep run by hand (`vigil sweep`) or without that deployment probes
every monitor itself.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

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

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

MARGIN = timedelta(seconds=1)
MIN_RETRY = timedelta(milliseconds=300)
SHARD_FLOW = "uptime-sweep-shard"
SHARD_DEPLOYMENT = f"{SHARD_FLOW}/{SHARD_FLOW}"
# How long, beyond the sweep's own budget, a parent waits for its shards to be picked up
# by a worker and finish (workers poll every 10-15 s by default, then start a process).
SHARD_GRACE = timedelta(seconds=60)
SHARD_POLL_SECONDS = 0.5


def _run_name() -> str:
    return "sweep " + datetime.now(UTC).strftime("%Y-%m-%d %H:%M")


def _shard_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    return f"sweep {at} shard {params.get('shard', 0) + 1}/{params.get('shards', 1)}"


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


@task(name="read monitor states", cache_policy=NO_CACHE)
def read_states(store_url: str) -> dict[str, MonitorState]:
    """What the previous sweeps left; read while the probes run, which mostly wait."""
    with open_store(store_url) as store:
        return logic.states_from_store(store.get_monitor_states())


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


@task(name="record sweep", cache_policy=NO_CACHE)
def record_sweep(
    store_url: str, decision: logic.Decision, states: dict[str, MonitorState], run_id: str | None
) -> None:
    """Check results, hourly rollups, monitor states and the incidents this sweep opened or
    closed, through one store."""
    with open_store(store_url) as store:
        store.add_check_results(logic.check_rows(decision, run_id))
        store.add_rollups(logic.rollup_rows(decision))
        store.save_monitor_states(states)
        _record_incidents(store, decision)


@task(name="hand over checks", cache_policy=NO_CACHE)
def hand_over(
    store_url: str, sweep_id: str, shard: int, shards: int, checks: list[logic.Check]
) -> None:
    """Leave this shard's checks in the records store for the sweep that decides."""
    with open_store(store_url) as store:
        logic.hand_over(store, sweep_id, shard, shards, checks, datetime.now(UTC))


@task(name="collect shard checks", cache_policy=NO_CACHE)
def collect_shards(store_url: str, sweep_id: str) -> dict[int, dict[str, Any]]:
    with open_store(store_url) as store:
        return logic.take_handoffs(store, sweep_id, datetime.now(UTC))


@task(name="update status page", cache_policy=NO_CACHE)
def update_status_page(config: Config, at: datetime) -> list[str]:
    """Rebuild (and upload) the public status page when the config asks for one."""
    from tasks.statuspage import publish

    with open_store(config.store.url) as store:
        return publish(config, store, at)


@task(name="ping heartbeat", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ping_heartbeat(url: str) -> None:
    """Tell the outside dead-man's switch that vigil is alive and sweeping."""
    import httpx

    httpx.get(url, timeout=10).raise_for_status()


@flow(name="uptime-sweep", flow_run_name=_run_name, log_prints=False)
def uptime_sweep(config_path: str | None = None) -> Any:
    """Check every monitor once, decide each one's state, record it and tell people."""
    with logic.gc_paused():
        return _sweep(config_path)


@flow(name=SHARD_FLOW, flow_run_name=_shard_run_name, log_prints=False)
def uptime_sweep_shard(
    sweep_id: str, shard: int, shards: int, config_path: str | None = None
) -> Any:
    """One shard of a sharded sweep: probe, evaluate and confirm its share of the monitors
    and hand the checks to the sweep `sweep_id`, which decides everything else."""
    from prefect.states import Completed

    with logic.gc_paused():
        started = time.monotonic()
        config = load_config(config_path)
        monitors = logic.shard_of(config.monitors, shard, shards)
        checks = _checks(monitors, config, started + _budget(monitors).total_seconds())
        hand_over(config.store.url, sweep_id, shard, shards, as_is(checks))
    failed = sum(c.verdict == "failed" for c in checks)
    return Completed(
        message=f"shard {shard + 1}/{shards}: {len(checks)} monitors checked, {failed} failed"
    )


def shard_deployment(config_path: str | None, **options: Any) -> Any:
    """The `uptime-sweep-shard` deployment a sharded sweep fans out to: no schedule (only a
    parent sweep starts it) and no concurrency limit (a sweep runs all its shards at once)."""
    return uptime_sweep_shard.to_deployment(
        name=SHARD_FLOW,
        parameters={"config_path": config_path},
        tags=["vigil", "uptime"],
        description="One shard of a sharded uptime sweep; started by uptime-sweep.",
        **options,
    )


def _sweep(config_path: str | None) -> Any:
    started = time.monotonic()
    config = load_config(config_path)
    deadline = started + _budget(config.monitors).total_seconds()
    at = datetime.now(UTC)
    run_id = flow_run_id()

    before = read_states.submit(config.store.url)
    missing: list[Monitor] = []
    if _fans_out(config):
        checks, missing = _sharded_checks(config, config_path, run_id or "", deadline)
    else:
        checks = _checks(config.monitors, config, deadline)
    decision = logic.decide(config, checks, before.result(), at)

    fallbacks = _fallbacks(config, decision, deadline)
    by_name = config.monitors_by_name
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
    record_sweep(config.store.url, as_is(decision), as_is(states), run_id)

    _publish(decision)
    if config.status_page.out or config.status_page.upload:
        update_status_page(as_is(config), at)
    if config.sweep.heartbeat_url:
        _heartbeat(config.sweep.heartbeat_url)
    summary = logic.summary(decision, sent)
    problem, degraded = logic.problem_of(decision)
    headline = logic.headline(decision)
    if missing:
        summary["unchecked"] = sorted(m.name for m in missing)
        headline += f"; {len(missing)} not checked (a shard did not report)"
        problem = problem or "Incomplete"
    return outcome(problem, summary, headline, degraded=degraded)


def _budget(monitors: list[Monitor]) -> timedelta:
    """A sweep lasts at most its largest timeout plus a small margin."""
    return max((m.timeout for m in monitors), default=timedelta(0)) + MARGIN


def _checks(monitors: list[Monitor], config: Config, deadline: float) -> list[logic.Check]:
    """Probe, evaluate and confirm `monitors` in this run."""
    checks = logic.evaluate(monitors, _probe(monitors, config))
    return _confirm(checks, config, deadline)


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


def _fans_out(config: Config) -> bool:
    """Whether to run the shards as flow runs of their own, or probe everything here.

    Sharding needs workers: this run must itself come from a deployment (a scheduled or
    triggered `uptime-sweep`, not `vigil sweep`), and `uptime-sweep-shard` must exist
    (`vigil serve` registers it; on a work pool prefect.yaml must declare it)."""
    from prefect.runtime import deployment

    if config.sweep.shards <= 1 or len(config.monitors) < 2:
        return False
    if not deployment.id:
        get_run_logger().info(
            "sweep.shards is %s, but shards run only for a sweep started from its "
            "deployment: probing every monitor in this run",
            config.sweep.shards,
        )
        return False
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(SHARD_DEPLOYMENT)
        except ObjectNotFound:
            get_run_logger().warning(
                "sweep.shards is %s but there is no deployment %s: probing every monitor "
                "in this run",
                config.sweep.shards,
                SHARD_DEPLOYMENT,
            )
            return False
    return True


def _sharded_checks(
    config: Config, config_path: str | None, sweep_id: str, deadline: float
) -> tuple[list[logic.Check], list[Monitor]]:
    """Run the shards as flow runs of their own, wait for them, and merge their checks."""
    shards = min(config.sweep.shards, len(config.monitors))
    runs = [_start_shard(config_path, sweep_id, shard, shards) for shard in range(shards)]
    finished = _wait_for_runs([r.id for r in runs], deadline + SHARD_GRACE.total_seconds())
    logger = get_run_logger()
    for i, run in enumerate(runs):
        state = finished.get(run.id)
        if state != "COMPLETED":
            logger.warning("shard %s/%s (%s) ended %s", i + 1, shards, run.name, state)
    handed = collect_shards(config.store.url, sweep_id)
    return logic.merge_handoffs(config.monitors, list(handed.values()))


def _start_shard(config_path: str | None, sweep_id: str, shard: int, shards: int) -> FlowRun:
    """A run of the shard deployment, shown as a subflow of this sweep; returns at once. The
    idempotency key makes a retried sweep reuse its shards' runs instead of doubling them."""
    from prefect.deployments import run_deployment

    run = run_deployment(
        SHARD_DEPLOYMENT,
        parameters={
            "sweep_id": sweep_id,
            "shard": shard,
            "shards": shards,
            "config_path": config_path,
        },
        timeout=0,
        idempotency_key=f"{sweep_id}-shard-{shard}-of-{shards}",
    )
    return cast("FlowRun", run)  # called from sync code: the run itself, not a coroutine


def _wait_for_runs(ids: list[Any], until: float) -> dict[Any, str]:
    """Poll until every run is final or `until` (monotonic) passes; cancel those still going.
    Returns each run's final state type, or "UNFINISHED"."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.states import Cancelling

    states: dict[Any, str] = {}
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
            )
            states = {r.id: r.state.type.value for r in runs if r.state and r.state.is_final()}
            if len(states) == len(ids) or time.monotonic() >= until:
                break
            time.sleep(SHARD_POLL_SECONDS)
        for run_id in ids:
            if run_id not in states:
                client.set_flow_run_state(run_id, Cancelling(), force=True)
                states[run_id] = "UNFINISHED"
    return states


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
