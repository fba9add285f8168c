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
import shlex
from dataclasses import dataclass, replace
from datetime import timedelta
from urllib.parse import quote

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import ValidationError

from tasks.pm2 import error_log_tail, read_pm2
from tasks.probes import probe_all
from tasks.shell import run_command
from vigil import __version__
from vigil.conditions import (
    RELEASE_PLACEHOLDER,
    Condition,
    ConditionError,
    ConditionResult,
    bind_release,
    evaluate_all,
    parse_condition,
)
from vigil.config import DeployTarget, Monitor, ProcessCheck
from vigil.deploy.verdict import (
    CheckReading,
    Measurement,
    classify_http,
    classify_pm2,
    classify_process,
)
from vigil.store.models import utcnow

# `{release}` in a URL, a header or a command is the release under verification.
RELEASE_FIELD = "{release}"
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
    # Which conditions name `[RELEASE]`: their failure means another version runs.
    about_release: tuple[bool, ...] = ()


@task(
    name="measure",
    task_run_name="measure {target}@{release} #{number}",
    cache_policy=NO_CACHE,
)
def measure(
    target: str,
    release: str | None,
    number: int,
    deploy: DeployTarget,
    restarts_baseline: int | None = None,
) -> Measurement:
    """One measurement; a task each, so the run's timeline shows the window unfolding."""
    return take_measurement(target, deploy, release, restarts_baseline)


def take_measurement(
    target: str,
    deploy: DeployTarget,
    release: str | None = None,
    restarts_baseline: int | None = None,
) -> Measurement:
    """Run every configured check at once, bound to `release`, and classify each."""
    at = utcnow()
    checks = http_checks(target, deploy, release)
    readings = asyncio.run(_measure(checks, deploy.process, release, restarts_baseline))
    return Measurement(at, tuple(readings))


def http_checks(target: str, deploy: DeployTarget, release: str | None = None) -> list[HttpCheck]:
    """The health check and the pages as monitors, `[RELEASE]`/`{release}` bound to
    `release`; a URL that cannot be probed is a ValueError naming its config key (the flow
    calls this before taking the lock)."""
    checks: list[HttpCheck] = []
    if deploy.health is not None:
        health = deploy.health
        headers = {k: _bind(v, release) for k, v in health.headers.items()}
        url = _bind(health.url, release, url=True)
        try:
            texts = [bind_release(text, release) for text in health.conditions]
            conditions = tuple(parse_condition(text) for text in texts)
        except ConditionError as exc:
            raise ValueError(f"deploys.{target}.health.conditions: {exc}") from None
        monitor = _monitor(target, "health", url, health.timeout, texts, headers)
        about = tuple(RELEASE_PLACEHOLDER in text for text in health.conditions)
        checks.append(HttpCheck("health", monitor, conditions, True, about))
    timeout = deploy.health.timeout if deploy.health else PAGE_TIMEOUT
    for i, page in enumerate(deploy.pages):
        url = _bind(page, release, url=True)
        monitor = _monitor(target, f"pages[{i}]", url, timeout, PAGE_CONDITIONS)
        conditions = tuple(parse_condition(text) for text in PAGE_CONDITIONS)
        checks.append(HttpCheck("page", monitor, conditions, read_body=False))
    return checks


def check_process(
    process: ProcessCheck, release: str | None = None, restarts_baseline: int | None = None
) -> CheckReading:
    """The process check: pm2's own process list, or a command (`{release}` bound, shell
    quoted; VIGIL_RELEASE in its environment) whose exit code says whether it runs."""
    timeout = process.timeout.total_seconds()
    if process.pm2 is not None:
        seen, error, log_path = read_pm2(process.pm2, timeout)
        reading = classify_pm2(seen, error, restarts_baseline, process.pm2.max_restarts)
        if reading.verdict != "Successful" and log_path:
            tail = error_log_tail(log_path)
            reading = replace(reading, log_tail=tail, log_path=log_path) if tail else reading
        return reading
    assert process.command is not None  # the config allows exactly one kind
    command = process.command.replace(RELEASE_FIELD, shlex.quote(release or ""))
    run = run_command(command, timeout=timeout, env={"VIGIL_RELEASE": release or ""})
    return classify_process(process.command, run.exit_code, run.output, run.error)


async def _measure(
    checks: list[HttpCheck],
    process: ProcessCheck | None,
    release: str | None,
    restarts_baseline: int | None,
) -> list[CheckReading]:
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
            probes, asyncio.to_thread(check_process, process, release, restarts_baseline)
        )
        readings = [reading]
    for check, obs in zip(checks, observations, strict=True):
        url = check.monitor.url or ""
        results = _about_release(evaluate_all(check.conditions, obs), check, release)
        readings.append(classify_http(check.check, url, obs, results))
    return readings


def _about_release(
    results: list[ConditionResult], check: HttpCheck, release: str | None
) -> list[ConditionResult]:
    """A failed `[RELEASE]` condition says what it means: another version is running."""
    if not any(check.about_release):
        return results
    return [
        ConditionResult(
            r.condition,
            r.ok,
            r.detail
            if r.ok or not about
            else f"the running version is not {release} (the release under verification): "
            + r.detail,
        )
        for r, about in zip(results, check.about_release, strict=True)
    ]


def _bind(text: str, release: str | None, url: bool = False) -> str:
    if RELEASE_FIELD not in text:
        return text
    value = release or ""
    return text.replace(RELEASE_FIELD, quote(value, safe="") if url else value)


def _monitor(
    target: str,
    key: str,
    url: str,
    timeout: timedelta,
    conditions: list[str],
    headers: dict[str, str] | None = None,
) -> Monitor:
    try:
        return Monitor(
            name=f"deploy {target} {key}",
            url=url,
            timeout=timeout,
            conditions=conditions,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
        )
    except ValidationError:
        raise ValueError(
            f"deploys.{target}.{key}: {url!r} is not an http(s) URL vigil can probe"
        ) from None
