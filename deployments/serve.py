"""How vigil's duties are scheduled and served: one Prefect deployment per duty, built from
the config, served by one process (`vigil serve`, `vigil up`).

Schedules come from the config every time the process starts, so editing the config and
restarting updates them; `pause_on_shutdown=False` keeps them on after a restart (Prefect
pauses served schedules on shutdown by default, PrefectHQ/prefect#16363). Each deployment
allows one active run; a run that would start while the previous one is still going is
cancelled (CANCEL_NEW), because a newer sweep or backup supersedes a queued one.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from vigil.config import Config
from vigil.duties import TAGS, run_name


def one_at_a_time() -> Any:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def cron(expression: str, timezone: str) -> Any:
    """A cron schedule in the config's timezone. Day-of-month and day-of-week are AND-ed
    (`day_or=False`), so `0 3 1-7 * 0` means the first Sunday of the month, not cron's
    "days 1-7 or any Sunday"."""
    from prefect.schedules import Cron

    return Cron(expression, timezone=timezone, day_or=False)


def build_deployments(config: Config, config_path: str) -> list[Any]:
    """The deployments this config asks for, ready for `prefect.serve`."""
    from flows.backup import daily_backup
    from flows.deploy import deploy_verify
    from flows.drill import dr_drill
    from flows.housekeeping import daily_housekeeping
    from flows.report import weekly_report
    from flows.restore_test import weekly_restore_test
    from flows.sweep import uptime_sweep
    from flows.sweep_shards import shard_deployment

    def scheduled(flow: Any, name: str, description: str, **when: Any) -> Any:
        """A duty run on its schedule, one run at a time, reading the config at `config_path`;
        a cron schedule is also described in words."""
        if "schedule" in when:
            description += " " + describe_schedule(when["schedule"].cron, config.timezone)
        return flow.to_deployment(
            name=name,
            parameters={"config_path": config_path},
            tags=TAGS[name],
            concurrency_limit=one_at_a_time(),
            description=description,
            **when,
        )

    deployments = []
    if config.monitors:
        every = max(config.sweep.every, timedelta(seconds=10))
        deployments.append(
            scheduled(uptime_sweep, "uptime-sweep", "Check every monitor once.", interval=every)
        )
        if config.sweep.shards > 1:  # the sweep fans out to runs of this one
            deployments.append(shard_deployment(config_path))
    if config.databases:
        backup = cron(config.backup.schedule, config.timezone)
        restore = cron(config.restore_test.schedule, config.timezone)
        deployments += [
            scheduled(daily_backup, "daily-backup", "Back up, verify, prune.", schedule=backup),
            scheduled(
                weekly_restore_test,
                "weekly-restore-test",
                "Restore the newest verified backup and prove it is complete.",
                schedule=restore,
            ),
            scheduled(
                dr_drill,
                "dr-drill",
                "Recover from the offsite copy against the clock; report RTO and RPO.",
                schedule=cron(config.drill.schedule, config.timezone),
            ),
        ]
    if config.deploys:
        deployments.append(
            deploy_verify.to_deployment(
                name="deploy-verify",
                parameters={"config_path": config_path, "dry_run": False},
                tags=TAGS["deploy-verify"],
                description="Watch a new release; roll back and re-verify if it fails. "
                "Start it from the UI form, `prefect deployment run` or a CI step.",
            )
        )
    report = cron(config.report.schedule, config.timezone)
    deployments.append(
        scheduled(weekly_report, "weekly-report", "The week's uptime and duties.", schedule=report)
    )
    deployments.append(
        scheduled(
            daily_housekeeping,
            "daily-housekeeping",
            "Prune vigil's records to the retention and give the space back.",
            schedule=cron(config.retention.schedule, config.timezone),
        )
    )
    return deployments


def retire_removed(kept: list[str]) -> list[str]:
    """Pause the served vigil deployments this config no longer asks for.

    A served deployment outlives its process on the server, schedule and all (we keep
    schedules on across restarts), so a duty removed from the config would go on getting
    scheduled runs that nobody picks up. Deployments on a work pool (`prefect deploy`) are
    not this process's to manage and are left alone. Returns the names paused."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    retired = []
    with get_client(sync_client=True) as client:
        names = DeploymentFilter(name=DeploymentFilterName(any_=list(TAGS)))
        for deployment in client.read_deployments(deployment_filter=names):
            if deployment.name in kept or deployment.work_pool_name or deployment.paused:
                continue
            client.pause_deployment(deployment.id)
            retired.append(deployment.name)
    return sorted(retired)


def describe_schedule(expression: str, timezone: str) -> str:
    """A cron schedule in words for the deployment's description: the Prefect UI cannot
    describe an AND-ed cron (it shows "+1"), and `0 3 1-7 * 0` must read as the first Sunday,
    not cron's usual "days 1-7 or any Sunday"."""
    from cron_descriptor import get_description

    fields = expression.split()
    text = get_description(expression)
    both = len(fields) == 5 and fields[2] != "*" and fields[4] != "*"
    if both:
        text = text.replace(", or on ", ", only on ")  # vigil ANDs the day fields
    note = ", day-of-month and day-of-week both apply" if both else ""
    return f"Runs {text[0].lower()}{text[1:]} ({timezone}; cron `{expression}`{note})."


def name_scheduled_runs(names: list[str]) -> int:
    """Give the upcoming scheduled runs of these deployments the names they will run under.

    Prefect's scheduler creates runs ahead of time with generated names (`gentle-otter`); a
    run takes its `flow_run_name` only when it starts, after its first log line. Renaming
    them ahead makes the runs list and the first log line read `sweep 2026-12-05 19:54:00`.
    A served deployment's name is its flow's name. Returns how many were renamed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    scheduled = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
    )
    renamed = 0
    with get_client(sync_client=True) as client:
        deployments = {
            d.id: d.name
            for d in client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names))
            )
        }
        runs = client.read_flow_runs(
            flow_run_filter=scheduled,
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names)),
            limit=200,
        )
        for run in runs:
            flow = deployments.get(run.deployment_id) if run.deployment_id else None
            due = run.expected_start_time or run.next_scheduled_start_time
            if flow is None or due is None:
                continue
            wanted = run_name(flow, dict(run.parameters), due)
            if run.name != wanted:
                client.update_flow_run(run.id, name=wanted)
                renamed += 1
    return renamed


def _keep_naming(
    names: list[str], every: float = 30.0, stop: threading.Event | None = None
) -> threading.Thread:
    """`name_scheduled_runs` every `every` seconds for the life of the serving process
    (or until `stop` is set).

    The thread runs in a copy of this thread's context: Prefect keeps the API it talks to
    in a context variable (`vigil.runtime.use_api`), and a bare thread starts with none, so
    it fell back to a temporary server of its own (a new user's `./dev up` printed "Starting
    temporary server" and a sqlite "database is locked" traceback every 30 s)."""
    import contextvars
    import logging

    stopped = stop or threading.Event()

    def loop() -> None:
        while not stopped.is_set():
            try:
                name_scheduled_runs(names)
            except Exception as exc:  # the API being briefly away must not stop serving
                logging.getLogger("vigil.serve").warning("naming scheduled runs: %s", exc)
            stopped.wait(every)

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(loop,), name="vigil-run-names", daemon=True)
    thread.start()
    return thread


def serve(config: Config, config_path: str) -> None:
    """Register the deployments and run their scheduled runs in this process until Ctrl-C."""
    from prefect import serve as prefect_serve

    deployments = build_deployments(config, config_path)
    if not deployments:
        raise ValueError("nothing to serve: the config declares no monitors or databases")
    for name in retire_removed([d.name for d in deployments]):
        print(f"{name} is no longer in the config: its schedule is paused")
    # A sharded sweep runs beside its shards: room for all of them and the other duties.
    limit = max(4, config.sweep.shards + 3)
    _keep_naming([d.name for d in deployments])
    prefect_serve(*deployments, pause_on_shutdown=False, print_starting_message=True, limit=limit)
