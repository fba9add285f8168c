"""The daily backup, as the runbook it replaces: for each database, take a snapshot, dump it
into storage, write the manifest, read the backup back and verify it, and only then prune
old backups; record everything, publish a table, tell people.

The decisions and the telling live in `vigil.backup`; the snapshot in `tasks.snapshot`,
pg_dump and reading the archive back in `tasks.pgdump`, storage in `tasks.storage`. One
database's failure never stops the others.

Two backups of the same database never overlap: each takes the Prefect global concurrency
limit `backup-<database>` (created with limit 1 on first use, so it works on any server,
including the test harness), waiting up to `backup.lock_timeout` (30 minutes) for a
running backup to finish.
Holding the lock also makes leftovers safe to clean: a catalog row still `running`, a
`.partial` file or an unfinished multipart upload of that database belongs to a dead run.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger

from tasks.codec import layers, seal_bytes
from tasks.globals import roles_needed, save_globals
from tasks.notify import notify
from tasks.pgdump import Dumped, dump, read_stored
from tasks.snapshot import take_snapshot
from tasks.storage import Storage, StorageError, open_storage
from tasks.storage.configs import config_archive
from tasks.storage.tasks import apply_retention, store_object
from vigil import boundary, clock
from vigil.backup.catalog import (
    candidates,
    find_backup,
    finish_record,
    mark_interrupted,
    previous_size,
    record_verification,
    running_backup,
    start_record,
)
from vigil.backup.identity import (
    FAILED,
    LOCKED,
    SUCCEEDED,
    BackupError,
    Keys,
    backup_id,
    failure_text,
)
from vigil.backup.manifest import StoredFile, build_manifest
from vigil.backup.outcome import BackupOutcome, alerts_for, run_state
from vigil.backup.sealing import Identities, SealError, load_identities
from vigil.backup.verification import ReadBack, Verification, verify
from vigil.config import Config, Database, load_config
from vigil.durations import format_duration, format_size
from vigil.locks import Locked, held
from vigil.redact import redact
from vigil.runtime import flow_run_id, outcome
from vigil.store import Store, open_store

ARTIFACT_KEY = "daily-backup"


def _run_name() -> str:
    from prefect.runtime import flow_run

    database = flow_run.parameters.get("database")
    return f"backup {database}" if database else "daily-backup " + clock.now().strftime("%Y-%m-%d")


@flow(name="daily-backup", flow_run_name=_run_name, log_prints=False)
def daily_backup(config_path: str | None = None, database: str | None = None) -> Any:
    """Back up every configured database (or one), verified, with retention."""
    config = load_config(config_path)
    chosen = config.databases_for(database, "back up")
    storage = open_storage(config.backup)
    with open_store(config.store.url) as store:
        outcomes = [back_up(config, store, storage, db) for db in chosen]
    publish(outcomes)
    for alert in alerts_for(outcomes, config.backup.storage):
        notify(config, alert)
    problem, message = run_state(outcomes)
    summary = {
        "headline": message if problem is None else f"{problem}: {message}",
        "lines": [o.line() for o in outcomes],
        "databases": [o.as_json() for o in outcomes],
    }
    return outcome(problem, summary, message)


def back_up(config: Config, store: Store, storage: Storage, database: Database) -> BackupOutcome:
    """One database, start to finish; every failure ends in the outcome, never raised."""
    get_run_logger().info(
        "%s: taking the lock backup-%s (waiting up to %s while another backup of it runs)",
        database.name,
        database.name,
        format_duration(config.backup.lock_timeout),
    )
    try:
        with backup_lock(store, database.name, config.backup.lock_timeout):
            return make_backup(config, store, storage, database)
    except Locked as exc:
        return BackupOutcome(database.name, status=LOCKED, error=str(exc))


def make_backup(
    config: Config, store: Store, storage: Storage, database: Database
) -> BackupOutcome:
    log = get_run_logger()
    for stale in mark_interrupted(store, database.name):
        log.warning("backup %s was left running by a run that died; marked failed", stale)
    started = time.monotonic()
    created = unique_start(store, database.name)
    name = backup_id(database.name, created)
    result = BackupOutcome(database.name, backup_id=name)
    start_record(
        store, backup=name, database=database.name, created_at=created, flow_run_id=flow_run_id()
    )
    try:
        manifest, sealed_toc = write_backup(config, storage, database, name, created)
    except Exception as exc:
        result.error = failure_text(exc)
        result.seconds = time.monotonic() - started
        log.error("backup of %s failed: %s", database.name, result.error)
        finish_record(
            store,
            name,
            status=FAILED,
            error=result.error,
            completed_at=clock.now(),
            duration_s=result.seconds,
        )
        return result
    dumped = manifest["dump"]
    result.status = SUCCEEDED
    result.seconds = time.monotonic() - started
    result.size_bytes = dumped["size_bytes"]
    result.rows = manifest["total_rows"]
    result.location = dumped["location"]
    finish_record(
        store,
        name,
        status=SUCCEEDED,
        completed_at=clock.now(),
        size_bytes=dumped["size_bytes"],
        sha256=dumped["sha256"],
        location=dumped["location"],
        manifest_location=storage.location(Keys.of(name).manifest),
        manifest=manifest,
        duration_s=result.seconds,
    )
    log.info(
        "%s: dumped %s (%s, %s rows%s) to %s in %s",
        database.name,
        name,
        format_size(result.size_bytes or 0),
        result.rows,
        sealed_note(dumped),
        result.location,
        format_duration(result.seconds or 0),
    )
    result.verification = check_backup(config, store, storage, database, manifest, sealed_toc)
    if result.verified:
        prune_after(config, store, storage, database, result)
    return result


def write_backup(
    config: Config, storage: Storage, database: Database, name: str, created: datetime
) -> tuple[dict[str, Any], str | None]:
    """Snapshot, dump, config archive, then the manifest last; returns the manifest (and
    the table of contents listed while sealing, for verifying on a host without keys)."""
    keys = Keys.of(name)
    recipients = config.backup.encrypt.recipients if config.backup.encrypt else []
    compression = config.backup.compression
    with take_snapshot(database) as held:
        held.start_counting()
        needed = roles_needed(held.connection)
        dumped: Dumped = dump(database, held.facts, compression, storage, keys.dump, recipients)
        facts = held.counted()
    archive, unreadable = archive_configs(config, storage, keys)
    server = save_globals(storage, database, keys.globals, needed, recipients)
    manifest = build_manifest(
        backup=name,
        database=database.name,
        facts=facts,
        dump=dumped.file,
        compression=compression,
        pg_dump_version=dumped.pg_dump_version,
        config_archive=archive,
        config_files=config.backup.config_files,
        unreadable=unreadable,
        started_at=created,
        dump_seconds=dumped.seconds,
        encoding=layers(compression, recipients),
        archive_bytes=dumped.archive_bytes,
        sealed_for=recipients,
    )
    manifest["globals"] = server
    store_object(storage, keys.manifest, json.dumps(manifest, indent=1).encode())
    return manifest, dumped.sealed_toc


def archive_configs(
    config: Config, storage: Storage, keys: Keys
) -> tuple[StoredFile | None, list[str]]:
    """The config files as one tarball, sealed like the dump when backups are sealed."""
    if not config.backup.config_files:
        return None, []
    data, unreadable = config_archive(config.backup.config_files)
    if config.backup.encrypt:
        data = seal_bytes(data, config.backup.encrypt.recipients)
    return store_object(storage, keys.config_archive, data), unreadable


def check_backup(
    config: Config,
    store: Store,
    storage: Storage,
    database: Database,
    manifest: dict[str, Any],
    sealed_toc: str | None = None,
) -> Verification:
    """Read the backup back from storage and judge it; the verdict is recorded either way.
    A sealed backup is unsealed in passing when the restore test's identity is readable
    here; else its checksum is proven and its contents are those listed while sealing."""
    try:
        observed = read_stored(
            storage,
            Keys.of(manifest["backup_id"]),
            manifest["dump"],
            verifying_identities(config),
            sealed_toc,
        )
    except (BackupError, StorageError) as exc:
        observed = ReadBack(exists=False, error=f"unreadable: {exc}")
    created = datetime.fromisoformat(manifest["created_at"])
    verification = verify(
        manifest,
        observed,
        database,
        previous_size=previous_size(store, database.name, created),
        max_age=config.backup.max_age,
        now=clock.now(),
    )
    record_verification(store, verification)
    finish_record(store, verification.backup_id, verified=verification.passed)
    if not verification.passed:
        get_run_logger().error(
            "backup %s failed verification: %s", verification.backup_id, verification.summary()
        )
    else:
        get_run_logger().info(
            "backup %s verified: %s", verification.backup_id, verification.summary()
        )
    return verification


def sealed_note(dumped: dict[str, Any]) -> str:
    """How the dump is stored, for the run's log: `, zstd:1, sealed for age1...`."""
    codec = f", {dumped['codec']}" if dumped.get("codec") else ""
    sealed = dumped.get("recipients") or []
    return codec + (f", sealed for {', '.join(sealed)}" if sealed else "")


def verifying_identities(config: Config) -> Identities | None:
    """The restore test's identity, when this host can read it (a backup host that holds
    only the public keys cannot, and needs not)."""
    if not config.backup.encrypt or not config.restore_test.identity:
        return None
    try:
        return load_identities(config.restore_test.identity, "restore_test.identity")
    except SealError as exc:
        get_run_logger().info("sealed backups are verified without unsealing here: %s", exc)
        return None


def prune_after(
    config: Config, store: Store, storage: Storage, database: Database, result: BackupOutcome
) -> None:
    """Retention, now that a verified backup of this database exists."""
    try:
        decisions = apply_retention(
            store, storage, database.name, candidates(store, database.name), config.backup.retention
        )
    except Exception as exc:
        result.retention_error = redact(str(exc))
        get_run_logger().error("retention of %s failed: %s", database.name, result.retention_error)
        return
    result.deleted = [d.backup_id for d in decisions if not d.keep]
    kept = sum(d.keep for d in decisions)
    deleted = ", ".join(result.deleted) or "nothing"
    get_run_logger().info("retention of %s: kept %d, deleted %s", database.name, kept, deleted)


def publish(outcomes: list[BackupOutcome]) -> None:
    good = sum(o.ok for o in outcomes)
    boundary.publish_table(
        ARTIFACT_KEY,
        [o.row() for o in outcomes],
        f"{good} of {len(outcomes)} database backup(s) verified",
    )


def unique_start(store: Store, database: str) -> datetime:
    """Now, to the second, or the first later second no other backup of the database has
    taken (ids are per second; the lock makes this check race-free). It steps forward
    instead of waiting for the clock, which on a slow or frozen VIGIL_CLOCK never comes."""
    start = clock.now().replace(microsecond=0)
    while find_backup(store, backup_id(database, start)) is not None:
        start += timedelta(seconds=1)
    return start


def backup_lock(store: Store, database: str, timeout: timedelta) -> AbstractContextManager[None]:
    """Hold `backup-<database>`; raise Locked, naming the holder, after `timeout`."""
    name = f"backup-{database}"

    def refusal() -> str:
        holder = running_backup(store, database)
        who = (
            f"backup {holder.id} has held it since {holder.created_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(flow run {holder.flow_run_id or 'unknown'})"
            if holder
            else "no backup is recorded as running, so a run may have died holding it; its "
            "lease expires within 5 minutes"
        )
        return (
            f"{database}: waited {format_duration(timeout)} for the lock {name!r} and gave up; "
            f"{who}. No backup was taken; run again once it is done, or raise "
            "backup.lock_timeout."
        )

    return held(name, timeout, refusal)
