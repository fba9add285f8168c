"""The deploy target as seen from outside: one measurement of every check, the rollback's
commands, and the notification, as thin Prefect tasks without retries (a retried measurement
would hide the very errors the verdict counts; a retried rollback could run twice).

HTTP checks go through the sweep's own `tasks.http.probe_http`, so a deploy check and an
uptime monitor fail the same way and say so in the same words: each request is bounded as
a whole by its timeout, and no answer becomes the observation's error. The health body is
always read (a release saying "degraded" is Inconclusive, whatever its conditions); pages
only need their status. All checks of a measurement run at once, so a measurement takes as
long as its slowest check rather than their sum.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from ssl import SSLContext
from urllib.parse import urlsplit

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import ValidationError

from tasks.probes import certificate_left, probe_http, resolve_address
from vigil.conditions import Condition, Observation, evaluate_all, parse_condition
from vigil.config import DeployTarget, Monitor, ProcessCheck, Rollback
from vigil.deploy import CheckOutcome, Measurement, classify_http, classify_process
from vigil.rollback import Plan, Result, execute_rollback, run_command
from vigil.store.models import utcnow

PAGE_CONDITIONS = ["[STATUS] == 200"]
# Pages have no timeout of their own: they share the health check's, or this one.
PAGE_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class HttpCheck:
    """One URL to GET in every measurement, as the monitor `probe_http` understands."""

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


@task(
    name="roll back",
    task_run_name="roll back {plan.target} to {plan.to_release}",
    cache_policy=NO_CACHE,
)
def roll_back(rollback: Rollback, plan: Plan) -> Result:
    return execute_rollback(rollback, plan)


def take_measurement(target: str, deploy: DeployTarget) -> Measurement:
    """Run every configured check at once and classify each."""
    at = utcnow()
    outcomes = asyncio.run(_measure(http_checks(target, deploy), deploy.process))
    return Measurement(at, tuple(outcomes))


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


def check_process(process: ProcessCheck) -> CheckOutcome:
    run = run_command(process.command, timeout=process.timeout.total_seconds())
    return classify_process(process.command, run.exit_code, run.output, run.error)


@cache
def tls_context() -> SSLContext:
    """One verifying TLS context per process: building one (loading the CA bundle) takes
    ~30 ms, more than a local measurement's requests themselves."""
    return httpx.create_ssl_context()


async def _measure(checks: list[HttpCheck], process: ProcessCheck | None) -> list[CheckOutcome]:
    # identity: probe_http keeps the raw body, which must not arrive compressed.
    async with httpx.AsyncClient(
        verify=tls_context(),
        follow_redirects=True,
        timeout=None,
        headers={"User-Agent": "vigil-deploy", "Accept-Encoding": "identity"},
    ) as client:
        jobs = [_http(client, check) for check in checks]
        if process is not None:
            jobs.insert(0, asyncio.to_thread(check_process, process))
        return list(await asyncio.gather(*jobs))


async def _http(client: httpx.AsyncClient, check: HttpCheck) -> CheckOutcome:
    obs = await probe_http(check.monitor, client, read_body=check.read_body)
    await _certificate(check, obs)
    await _address(check, obs)
    url = check.monitor.url or ""
    return classify_http(check.check, url, obs, evaluate_all(check.conditions, obs))


async def _certificate(check: HttpCheck, obs: Observation) -> None:
    """Only for a health condition on [CERTIFICATE_EXPIRATION], as the sweep does."""
    wanted = any(c.subject.placeholder == "CERTIFICATE_EXPIRATION" for c in check.conditions)
    parts = urlsplit(check.monitor.url or "")
    if not wanted or parts.scheme != "https" or obs.error is not None:
        return
    left = await certificate_left(parts.hostname or "", parts.port or 443, check.monitor.timeout)
    if isinstance(left, timedelta):
        obs.certificate_expiration = left
    else:
        obs.error = left


async def _address(check: HttpCheck, obs: Observation) -> None:
    """Only for a health condition on [IP], as the sweep does."""
    if any(c.subject.placeholder == "IP" for c in check.conditions) and obs.error is None:
        host = urlsplit(check.monitor.url or "").hostname or ""
        obs.ip = await resolve_address(host, check.monitor.timeout)


def _monitor(target: str, key: str, url: str, timeout: timedelta, conditions: list[str]) -> Monitor:
    try:
        return Monitor(
            name=f"deploy {target} {key}", url=url, timeout=timeout, conditions=conditions
        )
    except ValidationError:
        raise ValueError(
            f"deploys.{target}.{key}: {url!r} is not an http(s) URL vigil can probe"
        ) from None
