"""Flows for tests/test_findings_not_crashes.py: a finding raised by a task and a real bug.

They are served by a runner process, so Prefect's engine loads them by entrypoint the way it
loads vigil's duties."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from vigil.findings import Finding
from vigil.runtime import outcome


class VaultMissing(Finding):
    """Stands in for a duty's error type (BackupError, StorageError, ...)."""


@task(name="open the vault", retries=1, retry_delay_seconds=0, cache_policy=NO_CACHE)
def open_vault() -> None:
    raise VaultMissing("the vault at s3://bucket/vault is missing (expected 1 object, found 0)")


@flow(name="finding-flow")
def finding_flow() -> Any:
    """A duty that found a problem: its task raises a Finding, the flow returns the verdict."""
    try:
        open_vault()
    except VaultMissing as exc:
        return outcome("VaultMissing", {"found": 0}, str(exc))
    return outcome(None, {"found": 1}, "the vault is there")


@task(name="divide", cache_policy=NO_CACHE)
def divide() -> float:
    return 1 / 0


@flow(name="bug-flow")
def bug_flow() -> Any:
    """A bug: an exception vigil did not expect must keep its traceback."""
    return divide()
