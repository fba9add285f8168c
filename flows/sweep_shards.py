"""Sharded sweeps: the probing of one sweep spread over workers, with one decision point.

With `sweep.shards: N` and the sweep running as a deployment, the sweep starts N runs of
the `uptime-sweep-shard` deployment (so N workers probe in parallel). Each probes,
evaluates and confirms its share of the monitors and hands its checks over through the
records store (workers on other machines share nothing else); the parent waits for them,
takes the checks and alone decides states, records, alerts and saves, exactly as it does
for an unsharded sweep. A sweep run by hand (`vigil sweep`) or without that deployment
probes every monitor itself.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.probes.checks import check_here
from vigil import clock
from vigil.config import Config, Monitor, load_config
from vigil.runtime import as_is
from vigil.store import open_store
from vigil.sweep.checks import MonitorCheck, budget, gc_paused
from vigil.sweep.due import due, has_intervals
from vigil.sweep.handoff import hand_over, merge_handoffs, shard_of, take_handoffs
from vigil.sweep.records import states_from_store

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

SHARD_FLOW = "uptime-sweep-shard"
SHARD_DEPLOYMENT = f"{SHARD_FLOW}/{SHARD_FLOW}"
SHARD_POLL_SECONDS = 0.5


def _shard_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    at = clock.now().strftime("%Y-%m-%d %H:%M")
    if params.get("location"):
        parts = params.get("location_shards", 1)
        part = f" shard {params.get('location_shard', 0) + 1}/{parts}" if parts > 1 else ""
        return f"sweep {at} from {params['location']}{part}"
    return f"sweep {at} shard {params.get('shard', 0) + 1}/{params.get('shards', 1)}"


@task(name="hand over checks", cache_policy=NO_CACHE)
def hand_over_checks(
    store_url: str, sweep_id: str, shard: int, shards: int, checks: list[MonitorCheck]
) -> None:
    """Leave this shard's checks in the records store for the sweep that decides."""
    with open_store(store_url) as store:
        hand_over(store, sweep_id, shard, shards, checks, clock.now())


@task(name="collect shard checks", cache_policy=NO_CACHE)
def collect_shards(store_url: str, sweep_id: str) -> dict[int, dict[str, Any]]:
    with open_store(store_url) as store:
        return take_handoffs(store, sweep_id, clock.now())


@flow(name=SHARD_FLOW, flow_run_name=_shard_run_name, log_prints=False)
def uptime_sweep_shard(
    sweep_id: str,
    shard: int,
    shards: int,
    config_path: str | None = None,
    location: str | None = None,
    at: str | None = None,
    location_shard: int = 0,
    location_shards: int = 1,
) -> Any:
    """One shard of a sharded sweep, or the probes of one location (or of one of its
    shards): probe, evaluate and confirm its share of the monitors due at `at` (the sweep's
    time) and hand the checks to the sweep `sweep_id` under `shard`, its slot there."""
    from prefect.states import Completed

    with gc_paused():
        started = time.monotonic()
        config = load_config(config_path)
        monitors = _share(config, shard, shards, location, at, location_shard, location_shards)
        checks = check_here(monitors, config, started + budget(monitors).total_seconds())
        hand_over_checks(config.store.url, sweep_id, shard, shards, as_is(checks))
    failed = sum(c.verdict == "failed" for c in checks)
    who = f"shard {shard + 1}/{shards}"
    if location:
        part = f" shard {location_shard + 1}/{location_shards}" if location_shards > 1 else ""
        who = f"from {location}{part}"
    return Completed(message=f"{who}: {len(checks)} monitors checked, {failed} failed")


def _share(
    config: Config,
    shard: int,
    shards: int,
    location: str | None,
    at: str | None,
    location_shard: int = 0,
    location_shards: int = 1,
) -> list[Monitor]:
    """This run's monitors: those of its location's shard (or its shard) due at `at`."""
    if location is not None:
        mine = [m for m in config.monitors if location in config.locations_of(m)]
        monitors = shard_of(mine, location_shard, location_shards)
    else:
        monitors = shard_of(config.monitors, shard, shards)
    if at is None or not has_intervals(config):
        return monitors
    return due(config, monitors, read_states(config.store.url), datetime.fromisoformat(at))


@task(name="read monitor states", cache_policy=NO_CACHE)
def read_states(store_url: str) -> dict[str, Any]:
    """What the previous sweeps left: when each monitor was last checked."""
    with open_store(store_url) as store:
        return states_from_store(store.get_monitor_states())


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


def fans_out(config: Config) -> bool:
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


def sharded_checks(
    config: Config,
    config_path: str | None,
    sweep_id: str,
    deadline: float,
    due_monitors: list[Monitor],
    at: datetime,
) -> tuple[list[MonitorCheck], list[Monitor], list[str]]:
    """Run the shards as flow runs of their own, wait for them, and merge their checks of
    the `due_monitors`; also returns the due monitors no shard reported on, and the shards
    that did not report (`shard 2/4`)."""
    shards = min(config.sweep.shards, len(config.monitors))
    runs = [_start_shard(config_path, sweep_id, shard, shards, at) for shard in range(shards)]
    grace = config.sweep.run_grace.total_seconds()
    finished = wait_for_runs([r.id for r in runs], deadline + grace)
    logger = get_run_logger()
    for i, run in enumerate(runs):
        state = finished.get(run.id)
        if state != "COMPLETED":
            logger.warning("shard %s/%s (%s) ended %s", i + 1, shards, run.name, state)
    handed = collect_shards(config.store.url, sweep_id)
    silent = [f"shard {i + 1}/{shards}" for i in range(shards) if i not in handed]
    checks, missing = merge_handoffs(due_monitors, list(handed.values()))
    return checks, missing, silent


def _start_shard(
    config_path: str | None, sweep_id: str, shard: int, shards: int, at: datetime
) -> FlowRun:
    """A run of the shard deployment, shown as a subflow of this sweep; returns at once."""
    parameters = {"shard": shard, "shards": shards, "config_path": config_path}
    return start_run(SHARD_DEPLOYMENT, sweep_id, at, f"shard-{shard}-of-{shards}", parameters)


def start_run(
    deployment: str, sweep_id: str, at: datetime, key: str, parameters: dict[str, Any]
) -> FlowRun:
    """A run of a shard deployment (`deployment`: the sweep's shards, or a location's) for
    the sweep `sweep_id` at `at`, shown as its subflow; returns at once. The idempotency key
    makes a retried sweep reuse its runs instead of doubling them."""
    from prefect.deployments import run_deployment

    run = run_deployment(
        deployment,
        parameters={"sweep_id": sweep_id, "at": at.isoformat(), **parameters},
        timeout=0,
        idempotency_key=f"{sweep_id}-{key}",
    )
    return cast("FlowRun", run)  # called from sync code: the run itself, not a coroutine


def wait_for_runs(ids: list[Any], until: float) -> dict[Any, str]:
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
