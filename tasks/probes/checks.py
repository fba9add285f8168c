"""The sweep's probing as Prefect tasks: one task per monitor type probing its whole batch
in one event loop, one quick confirmation of the failures, and the fallbacks of monitors
gone DOWN. Used by the sweep and by each of its shards, so both check alike.

A task per monitor would cost 5-9 ms of orchestration each (PREFECT-NOTES.md); a few
tasks with asyncio inside keep a 10,000-monitor sweep in seconds.
"""

from __future__ import annotations

import time
from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from tasks.probes.engine import probe_batch
from vigil.conditions import Observation
from vigil.config import Config, Monitor
from vigil.runtime import as_is
from vigil.sweep.checks import MonitorCheck, evaluate, merge_retries, to_confirm
from vigil.sweep.decision import fallback_status

# Fallbacks get at least this long, even when the sweep's budget is spent.
FALLBACK_MIN = timedelta(seconds=2)


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


def check_here(monitors: list[Monitor], config: Config, deadline: float) -> list[MonitorCheck]:
    """Probe, evaluate and confirm `monitors` in this run, by `deadline` (monotonic)."""
    checks = evaluate(monitors, _probe(monitors, config))
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


def _confirm(checks: list[MonitorCheck], config: Config, deadline: float) -> list[MonitorCheck]:
    """Retry fast failures within what is left of the sweep's budget."""
    retry = to_confirm(checks, timedelta(seconds=deadline - time.monotonic()))
    if not retry:
        return checks
    again = confirm_failures(as_is(retry), config.sweep.concurrency, config.sweep.per_host)
    originals = {c.monitor.name: c.monitor for c in checks}
    retried = evaluate([originals[m.name] for m in retry], again)
    return merge_retries(checks, retried)


def fallbacks_serving(targets: list[Monitor], config: Config, deadline: float) -> dict[str, str]:
    """`{monitor: "serving" | "down: <reason>"}` for the fallbacks of monitors gone DOWN."""
    if not targets:
        return {}
    left = max(timedelta(seconds=deadline - time.monotonic()), FALLBACK_MIN)
    targets = [m.model_copy(update={"timeout": min(m.timeout, left)}) for m in targets]
    observations = check_fallbacks(as_is(targets), config.sweep.concurrency)
    return fallback_status(evaluate(targets, observations))
