"""The deploy target as seen from outside: one measurement of every check, as a thin Prefect
task without retries (a retried measurement would hide the very errors the verdict counts).

HTTP checks are probes of the sweep's own engine (`tasks.probes`), so a deploy check and an
uptime monitor fail the same way and say so in the same words: aiohttp, each request bounded
as a whole by its timeout, the body capped, `[CERTIFICATE_EXPIRATION]` and `[IP]` filled
only when a condition reads them, and no answer becomes the observation's error. The health
body is always read (a release saying "degraded" is Inconclusive, whatever its conditions);
pages only need their status. All checks of a measurement run at once, so a measurement
takes as long as its slowest check rather than their sum. The classes are decided in core
(`vigil.deploy.verdict`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import ValidationError

from tasks.probes import probe_all
from tasks.shell import run_command
from vigil import __version__
from vigil.conditions import Condition, evaluate_all, parse_condition
from vigil.config import DeployTarget, Monitor, ProcessCheck
from vigil.deploy.verdict import CheckReading, Measurement, classify_http, classify_process
from vigil.store.models import utcnow

PAGE_CONDITIONS = ["[STATUS] == 200"]
# Pages have no timeout of their own: they share the health check's, or this one.
PAGE_TIMEOUT = timedelta(seconds=10)
USER_AGENT = f"vigil-deploy/{__version__}"


@dataclass(frozen=True)
class HttpCheck:
    """One URL to GET in every measurement, as a monitor of the probe engine."""

    check: str
    monitor: Monitor
    conditions: tuple[Condition, ...]
    read_body: bool


@task(
    name="measure",
    task_run_name="measure {target}@{release} #{number}",
    cache_policy=NO_CACHE,
)
def measure(target: str, release: str | None, number: int, deploy: DeployTarget) -> Measurement:
    """One measurement; a task each, so the run's timeline shows the window unfolding."""
    return take_measurement(target, deploy)


def take_measurement(target: str, deploy: DeployTarget) -> Measurement:
    """Run every configured check at once and classify each."""
    at = utcnow()
    readings = asyncio.run(_measure(http_checks(target, deploy), deploy.process))
    return Measurement(at, tuple(readings))


def http_checks(target: str, deploy: DeployTarget) -> list[HttpCheck]:
    """The health check and the pages as monitors; a URL that cannot be probed is a
    ValueError naming its config key (the flow calls this before taking the lock)."""
    checks: list[HttpCheck] = []
    if deploy.health is not None:
        health = deploy.health
        monitor = _monitor(target, "health", health.url, health.timeout, health.conditions)
        conditions = tuple(parse_condition(text) for text in health.conditions)
        checks.append(HttpCheck("health", monitor, conditions, read_body=True))
    timeout = deploy.health.timeout if deploy.health else PAGE_TIMEOUT
    for i, url in enumerate(deploy.pages):
        monitor = _monitor(target, f"pages[{i}]", url, timeout, PAGE_CONDITIONS)
        conditions = tuple(parse_condition(text) for text in PAGE_CONDITIONS)
        checks.append(HttpCheck("page", monitor, conditions, read_body=False))
    return checks


def check_process(process: ProcessCheck) -> CheckReading:
    run = run_command(process.command, timeout=process.timeout.total_seconds())
    return classify_process(process.command, run.exit_code, run.output, run.error)


async def _measure(checks: list[HttpCheck], process: ProcessCheck | None) -> list[CheckReading]:
    probes = probe_all(
        [c.monitor for c in checks],
        concurrency=max(len(checks), 1),
        read_bodies={c.monitor.name for c in checks if c.read_body},
    )
    if process is None:
        observations = await probes
        readings = []
    else:
        observations, reading = await asyncio.gather(
            probes, asyncio.to_thread(check_process, process)
        )
        readings = [reading]
    for check, obs in zip(checks, observations, strict=True):
        url = check.monitor.url or ""
        results = evaluate_all(check.conditions, obs)
        readings.append(classify_http(check.check, url, obs, results))
    return readings


def _monitor(target: str, key: str, url: str, timeout: timedelta, conditions: list[str]) -> Monitor:
    try:
        return Monitor(
            name=f"deploy {target} {key}",
            url=url,
            timeout=timeout,
            conditions=conditions,
            headers={"User-Agent": USER_AGENT},
        )
    except ValidationError:
        raise ValueError(
            f"deploys.{target}.{key}: {url!r} is not an http(s) URL vigil can probe"
        ) from None
