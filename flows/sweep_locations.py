"""Checks from several locations: each location probes in a run of its own, on its own
workers, and the sweep alone decides by quorum.

With `locations:` in the config, the sweep starts one run of the `uptime-sweep-shard` flow
per location, through that location's deployment `uptime-sweep-shard/<location>` (on the
location's work pool and queue, so only its workers pick it up), and probes the `local`
location's monitors itself meanwhile. Each run probes, evaluates and confirms the monitors
of its location and hands its checks over through the records store, exactly as a shard
does (`vigil.sweep.handoff`); the sweep waits for them, names every location that did not
report, and judges each monitor by its quorum (`vigil.sweep.quorum`) before the one
decision point. A location with `shards: N` gets N such runs on its pool and queue, each
probing its share of the location's monitors; their checks are merged into the location's
one view first, and a shard that does not report leaves its monitors "no report from" that
location. `vigil locations deploy` registers the deployments.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from prefect import get_run_logger

from flows.sweep_shards import SHARD_FLOW, collect_shards, start_run, wait_for_runs
from tasks.probes.checks import check_here
from vigil.config import LOCAL, Config, Monitor
from vigil.sweep.checks import MonitorCheck
from vigil.sweep.handoff import merge_handoffs
from vigil.sweep.quorum import LocationRun, LocationView, by_quorum, location_runs

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

ENTRYPOINT = "flows/sweep_shards.py:uptime_sweep_shard"
# Workers enter their own checkout when a run starts, as for prefect.yaml's deployments.
PULL_STEPS = [
    {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $VIGIL_CHECKOUT }}"}}
]


def deployment_name(location: str) -> str:
    return f"{SHARD_FLOW}/{location}"


def located_checks(
    config: Config, monitors: list[Monitor], sweep_id: str, deadline: float, at: datetime
) -> tuple[list[MonitorCheck], list[Monitor], dict[str, LocationView], list[str]]:
    """Every due monitor's check by quorum of its locations, the monitors nothing conclusive
    was seen of, what each location saw of each monitor, and the runs (locations, or shards
    of one) that did not report."""
    names = list(config.locations)
    wanted = {loc: [m for m in monitors if loc in config.locations_of(m)] for loc in names}
    planned = location_runs(config, wanted)
    started: dict[int, FlowRun] = {}
    missing_deployment: set[str] = set()
    for slot in planned:
        if slot.location in missing_deployment:
            continue
        run = _start_location(slot, len(planned), sweep_id, at)
        if run is None:
            missing_deployment.add(slot.location)
        else:
            started[slot.slot] = run
    found: dict[str, dict[str, MonitorCheck]] = {}
    if wanted.get(LOCAL):
        found[LOCAL] = {c.monitor.name: c for c in check_here(wanted[LOCAL], config, deadline)}
    finished = wait_for_runs(
        [r.id for r in started.values()], deadline + config.sweep.run_grace.total_seconds()
    )
    logger = get_run_logger()
    for slot in planned:
        run = started.get(slot.slot)
        if run is not None and finished.get(run.id) != "COMPLETED":
            logger.warning(
                "location %s: its run %s ended %s", slot.name, run.name, finished[run.id]
            )
    handed = collect_shards(config.store.url, sweep_id)
    for loc in names:
        payloads = [handed[s.slot] for s in planned if s.location == loc and s.slot in handed]
        if payloads:
            checks, _ = merge_handoffs(wanted[loc], payloads)
            found[loc] = {c.monitor.name: c for c in checks}
    silent = [slot.name for slot in planned if slot.slot not in handed]
    if silent:
        logger.warning(
            "no report from %s: what they would have seen is counted neither up nor down",
            ", ".join(silent),
        )
    checks, unchecked, views = by_quorum(config, monitors, found)
    return checks, unchecked, views, silent


def _start_location(slot: LocationRun, count: int, sweep_id: str, at: datetime) -> FlowRun | None:
    """A run of the location's deployment for one of its shards, shown as a subflow of this
    sweep; None (and a warning) when the deployment does not exist. The run reads the
    config its worker is given (VIGIL_CONFIG), not this machine's path."""
    from prefect.exceptions import ObjectNotFound

    parameters = {
        "shard": slot.slot,
        "shards": count,
        "location": slot.location,
        "location_shard": slot.shard,
        "location_shards": slot.shards,
    }
    key = f"location-{slot.location}-{slot.shard}-of-{slot.shards}"
    try:
        return start_run(deployment_name(slot.location), sweep_id, at, key, parameters)
    except ObjectNotFound:
        get_run_logger().warning(
            "location %s: there is no deployment %s (`vigil locations deploy` registers it)",
            slot.location,
            deployment_name(slot.location),
        )
        return None


def register_locations(config: Config) -> list[str]:
    """Create or update the deployment of every location but `local` on its work pool and
    queue; returns one line per location saying what was done. The pools must exist
    (`prefect work-pool create <pool> --type process`): their type is the operator's
    choice."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    lines = []
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(SHARD_FLOW)
        for name, location in config.locations.items():
            if name == LOCAL:
                lines.append(f"{name}: probed by the sweep itself")
                continue
            pool = cast(str, location.pool)
            try:
                client.read_work_pool(pool)
            except ObjectNotFound:
                lines.append(
                    f"{name}: no work pool {pool!r}; create it with "
                    f"`prefect work-pool create {pool} --type process`"
                )
                continue
            client.create_deployment(**_deployment(flow_id, name, pool, location.queue))
            queue = f", queue {location.queue}" if location.queue else ""
            lines.append(f"{name}: deployment {deployment_name(name)} on pool {pool}{queue}")
    return lines


def _deployment(flow_id: Any, name: str, pool: str, queue: str | None) -> dict[str, Any]:
    return {
        "flow_id": flow_id,
        "name": name,
        "entrypoint": ENTRYPOINT,
        "work_pool_name": pool,
        "work_queue_name": queue,
        "pull_steps": PULL_STEPS,
        "parameters": {},
        "tags": ["vigil", "uptime", f"location:{name}"],
        "description": f"The uptime sweep's probes from {name}; started by uptime-sweep.",
    }
