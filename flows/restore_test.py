"""The weekly restore test, as the runbook it replaces: for each database, fetch the newest
verified backup and prove its checksum, restore it into a scratch database and time that,
compare the copy with the manifest, run the configured SQL checks, then drop the scratch
database and the archive whatever happened; record the result, publish a markdown artifact
per database (`restore-test-<database>`), and alert.

The steps are the recovery engine's (`tasks.recovery`), the judgement and the telling the
core's (`vigil.recovery`, `vigil.restore_test`). One database's failure never stops the
others.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks import recovery
from tasks.notify import notify
from tasks.recovery import scratch
from tasks.storage import Storage, open_storage
from vigil import boundary
from vigil import restore_test as rt
from vigil.backup.catalog import CatalogEntry
from vigil.backup.identity import failure_text, parse_backup_id
from vigil.config import Config, Database, load_config
from vigil.durations import format_duration
from vigil.recovery import Comparison
from vigil.redact import redact
from vigil.runtime import flow_run_id, outcome
from vigil.store import Store, open_store


def _run_name() -> str:
    from prefect.runtime import flow_run

    database = flow_run.parameters.get("database")
    if database:
        return f"restore-test {database}"
    return "restore-test " + datetime.now(UTC).strftime("%Y-%m-%d")


# --- tasks ----------------------------------------------------------------------------------


@task(name="pick backup", task_run_name="pick backup of {database}", cache_policy=NO_CACHE)
def pick_backup(store: Store, database: str, backup_id: str | None) -> CatalogEntry:
    return rt.pick_backup(store, database, backup_id)


@task(name="fetch backup", task_run_name="fetch {entry.id}", cache_policy=NO_CACHE)
def fetch_backup(
    storage: Storage, entry: CatalogEntry, folder: Path, identity: str | None = None
) -> recovery.Fetched:
    """Download and prove the SHA-256 before anything else touches the archive (unsealed
    with `restore_test.identity` when it is sealed)."""
    return recovery.fetch(
        storage,
        entry.id,
        folder,
        expected_sha256=entry.sha256,
        identity=identity,
        setting="restore_test.identity",
    )


@task(name="restore into scratch", task_run_name="restore into {name}", cache_policy=NO_CACHE)
def restore_scratch(
    admin: Any, name: str, fetched: recovery.Fetched, server_url: str, jobs: int, timeout: float
) -> float:
    """Create the scratch database and pg_restore into it; returns pg_restore's seconds."""
    scratch.create_database(admin, name)
    return recovery.restore(
        fetched.archive,
        rt.database_url(server_url, name),
        jobs=jobs,
        timeout=timeout,
        limit="the hard time limit (restore_test.hard_timeout)",
        server="scratch server",
    )


@task(name="compare with manifest", task_run_name="compare {name}", cache_policy=NO_CACHE)
def compare_copy(
    name: str,
    server_url: str,
    manifest: dict[str, Any],
    config: Config,
    database: str,
    timeout: float,
) -> Comparison:
    """The manifest's promises, then the configured SQL checks, on the restored copy."""
    settings = config.restore_test
    return recovery.inspect(
        rt.database_url(server_url, name),
        manifest,
        timeout=timeout,
        jobs=settings.jobs,
        amcheck=settings.amcheck,
        checks=settings.checks,
        database=database,
    )


# --- the flow ---------------------------------------------------------------------------------


@flow(name=rt.DUTY, flow_run_name=_run_name, log_prints=False)
def weekly_restore_test(
    config_path: str | None = None, database: str | None = None, backup_id: str | None = None
) -> Any:
    """Restore the newest verified backup of every database (or one, or one backup) into a
    scratch database and prove it complete."""
    config = load_config(config_path)
    chosen = databases(config, database, backup_id)
    storage = open_storage(config.backup)
    results: list[rt.RestoreTestResult] = []
    try:
        with open_store(config.store.url) as store:
            for db in chosen:
                results.append(
                    rt.RestoreTestResult(
                        db.name, datetime.now(UTC), config.restore_test.max_duration
                    )
                )
                test_database(config, store, storage, db, backup_id, results[-1])
    finally:
        tell(config, results)
    problem, message = rt.run_state(results)
    summary = {
        "headline": message if problem is None else f"{problem}: {message}",
        "lines": [r.line() for r in results],
        "databases": [r.as_json() for r in results],
    }
    return outcome(problem, summary, message)


def databases(config: Config, name: str | None, backup_id: str | None) -> list[Database]:
    """The databases to test; a backup id names its own database."""
    if backup_id is not None:
        owner, _ = parse_backup_id(backup_id)
        if name is not None and name != owner:
            raise ValueError(f"backup {backup_id} belongs to database {owner!r}, not {name!r}")
        name = owner
    return config.databases_for(name, "test")


def test_database(
    config: Config,
    store: Store,
    storage: Storage,
    database: Database,
    backup_id: str | None,
    result: rt.RestoreTestResult,
) -> None:
    """One database, start to finish, into `result`; every failure ends there, never raised,
    except a stop from outside (SIGTERM, Ctrl-C): the scratch database and archive are
    removed on the way out, the reason recorded, and the stop goes on to end the run."""
    settings = config.restore_test
    try:
        if settings.scratch_url is None:
            raise rt.RestoreTestError(
                "restore_test.scratch_url is not set: name a server where scratch databases "
                "may be created (never production's)"
            )
        limit = rt.hard_limit(config)
        with scratch.scratch_session(settings.scratch_url, database.name, wait=limit) as admin:
            result.dropped_leftovers = scratch.drop_leftovers(admin, database.name)
            for leftover in result.dropped_leftovers:
                get_run_logger().warning("dropped %s, left behind by a crashed run", leftover)
            run_test(config, store, storage, admin, result, backup_id, rt.Deadline(limit))
    except Exception as exc:
        result.error = failure_text(exc)
        get_run_logger().error("restore test of %s failed: %s", database.name, result.error)
    except BaseException as exc:
        result.error = rt.interrupted(exc, result)
        get_run_logger().error("restore test of %s %s", database.name, result.error)
        raise
    finally:
        result.finished_at = datetime.now(UTC)
        rt.record(store, result, flow_run_id())


def run_test(
    config: Config,
    store: Store,
    storage: Storage,
    admin: Any,
    result: rt.RestoreTestResult,
    backup_id: str | None,
    deadline: rt.Deadline,
) -> None:
    """Fetch, restore, compare; the scratch database and the archive go, whatever happens."""
    settings = config.restore_test
    server = settings.scratch_url or ""
    entry = pick_backup(store, result.database, backup_id)
    result.backup_id, result.backup_created_at = entry.id, entry.created_at
    with scratch.workdir(rt.workdir_prefix(result.database)) as folder:
        fetched = fetch_backup(storage, entry, folder, settings.identity)
        result.fetch_s = fetched.seconds
        log = get_run_logger()
        log.info(
            "%s: fetched %s in %s", result.database, entry.id, format_duration(fetched.seconds)
        )
        result.scratch = rt.scratch_name(result.database, datetime.now(UTC))
        try:
            left = deadline.left("pg_restore")
            result.restore_s = restore_scratch(
                admin, result.scratch, fetched, server, settings.jobs, left
            )
            log.info(
                "%s: restored into %s in %s",
                result.database,
                result.scratch,
                format_duration(result.restore_s),
            )
            started = time.monotonic()
            left = deadline.left("the comparison")
            compared = compare_copy(
                result.scratch, server, fetched.manifest, config, result.database, left
            )
            result.findings, result.recovery_point = compared.findings, compared.recovery_point
            if fetched.globals is not None:
                result.findings.append(fetched.globals)
            result.check_s = time.monotonic() - started
            result.amcheck_s = compared.amcheck_s
            for finding in result.failures:
                log.error("%s: %s", result.database, finding.line())
            if not result.failures:
                log.info("%s: %d checks passed", result.database, len(result.findings))
        finally:
            drop_scratch(admin, result)


def drop_scratch(admin: Any, result: rt.RestoreTestResult) -> None:
    """Drop the scratch database; a failure to do so is reported, never hides the test's own
    outcome (the next run drops it as a leftover)."""
    assert result.scratch is not None
    try:
        scratch.drop_database(admin, result.scratch)
    except Exception as exc:
        problem = f"could not drop scratch database {result.scratch}: {redact(str(exc))}"
        get_run_logger().error(problem)
        result.error = result.error or problem


def tell(config: Config, results: list[rt.RestoreTestResult]) -> None:
    """An artifact per database and the alerts: also for a run being stopped, so a test cut
    short is seen, not silently missing from the week."""
    for result in results:
        boundary.publish_markdown(
            rt.artifact_key(result.database),
            rt.markdown(result),
            f"restore test of {result.database}: {result.status}",
        )
    for alert in rt.alerts_for(results):
        notify(config, alert)
