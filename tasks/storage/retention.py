"""Carrying out the retention plan (`vigil.backup.retention`): a dropped backup's objects
are deleted from storage together, then the deletion is recorded in the catalog. The
storage delete and the store write are separate steps, in that order: a deletion is never
recorded for objects still there."""

from __future__ import annotations

from collections.abc import Sequence

from tasks.storage.base import Storage
from vigil import clock
from vigil.backup.catalog import record_deletion
from vigil.backup.identity import Keys
from vigil.backup.retention import Candidate, RetentionDecision, plan_retention
from vigil.config import Retention
from vigil.store import Store


def delete_backup(storage: Storage, backup: str) -> str:
    """Delete every object of `backup` (dump, manifest, config archive, anything under its
    prefix); returns where its dump was."""
    keys = Keys.of(backup)
    storage.delete([o.key for o in storage.list_objects(keys.prefix)])
    return storage.location(keys.dump)


def prune(
    store: Store,
    storage: Storage,
    database: str,
    backups: Sequence[Candidate],
    retention: Retention,
    *,
    dry_run: bool = False,
) -> list[RetentionDecision]:
    """Apply the retention plan; returns every decision (kept and deleted)."""
    decisions = plan_retention(backups, retention, clock.now())
    if dry_run:
        return decisions
    for decision in decisions:
        if decision.keep:
            continue
        location = delete_backup(storage, decision.backup_id)
        record_deletion(
            store,
            backup=decision.backup_id,
            database=database,
            reason=decision.reasons[0],
            location=location,
        )
    return decisions
