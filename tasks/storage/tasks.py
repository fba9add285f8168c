"""The Prefect tasks of the storage steps: names in the UI, retries of what may heal."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from tasks.storage.base import Storage, put_bytes
from tasks.storage.retention import prune
from vigil.backup.identity import retry_if_transient
from vigil.backup.manifest import StoredFile
from vigil.backup.retention import Candidate, RetentionDecision
from vigil.config import Retention
from vigil.store import Store

RETRIES = 3
RETRY_DELAYS = exponential_backoff(backoff_factor=10)


@task(
    name="store object",
    task_run_name="store {key}",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def store_object(storage: Storage, key: str, data: bytes) -> StoredFile:
    """Small objects (manifest, config archive) written whole."""
    return put_bytes(storage, key, data)


@task(
    name="apply retention",
    task_run_name="apply retention to {database}",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def apply_retention(
    store: Store, storage: Storage, database: str, backups: list[Candidate], retention: Retention
) -> list[RetentionDecision]:
    return prune(store, storage, database, backups, retention)
