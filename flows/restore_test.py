"""The weekly restore test, as the runbook it replaces: for each database, fetch the newest
verified backup and prove its checksum, restore it into a scratch database and time that,
compare the copy with the manifest, run the configured SQL checks, then drop the scratch
database and the archive whatever happened; record the result, publish a markdown artifact
per database (`restore-test-<database>`), and alert.

Decisions and PostgreSQL work live in `vigil.restore_test`; storage and pg_restore helpers
in `tasks.storage` and `tasks.pgtools`. One database's failure never stops the others.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.notify import notify
from tasks.storage import Storage, open_storage
from vigil import restore_test as rt
from vigil.alert import Alert
from vigil.backup import BackupError, CatalogEntry, parse_backup_id
from vigil.config import Config, Database, Severity, load_config
from vigil.durations import format_duration
from vigil.redact import redact
from vigil.runtime import flow_run_id, outcome
from vigil.store import Store, open_store

DUTY = "weekly-restore-test"
# Without restore_test.hard_timeout, a run is stopped at this many times the RTO.
HARD_TIMEOUT_FACTOR = 3


def _run_name() -> str:
    from prefect.runtime import flow_run

    database = flow_run.parameters.get("database")
    if database:
        return f"restore-test {database}"
    return "restore-test " + datetime.now(UTC).strftime("%Y-%m-%d")


def artifact_key(database: str) -> str:
    """`restore-test-<database>`: stable, so the Artifacts page keeps each one's history."""
    return "restore-test-" + (re.sub(r"[^a-z0-9]+", "-", database.lower()).strip("-") or "db")


class Deadline:
    """The hard time limit of one database's test, handed out as time left per step."""

    def __init__(self, limit: timedelta) -> None:
        self.limit = limit
        self.ends = time.monotonic() + limit.total_seconds()

    def left(self, step: str) -> float:
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise rt.RestoreTestError(
                f"the hard time limit of {format_duration(self.limit)} ran out before {step}"
            )
        return remaining


# --- tasks ----------------------------------------------------------------------------------


@task(name="pick backup", task_run_name="pick backup of {database}", cache_policy=NO_CACHE)
def pick_backup(store: Store, database: str, backup_id: str | None) -> CatalogEntry:
    return rt.pick_backup(store, database, backup_id)


@task(name="fetch backup", task_run_name="fetch {entry.id}", cache_policy=NO_CACHE)
def fetch_backup(storage: Storage, entry: CatalogEntry, folder: Any) -> rt.Fetched:
    """Download and prove the SHA-256 before anything else touches the archive."""
    return rt.fetch(storage, entry, folder)


@task(name="restore into scratch", task_run_name="restore into {name}", cache_policy=NO_CACHE)
def restore_scratch(
    admin: Any, name: str, fetched: rt.Fetched, server_url: str, jobs: int, timeout: float
) -> float:
    """Create the scratch database and pg_restore into it; returns pg_restore's seconds."""
    rt.create_database(admin, name)
    return rt.restore(
        fetched.archive, rt.database_url(server_url, name), jobs=jobs, timeout=timeout
    )


@task(name="compare with manifest", task_run_name="compare {name}", cache_policy=NO_CACHE)
def compare_copy(
    name: str,
    server_url: str,
    manifest: dict[str, Any],
    config: Config,
    database: str,
    timeout: float,
) -> rt.Comparison:
    """The manifest's promises, then the configured SQL checks, on the restored copy."""
    settings = config.restore_test
    url = rt.database_url(server_url, name)
    with rt.connect_all(url, timeout, settings.jobs) as (connection, *helpers):
        compared = rt.compare(manifest, connection, amcheck=settings.amcheck, helpers=helpers)
        checks = rt.sql_checks(settings.checks, database, connection)
    findings = [*compared.findings, *checks]
    return rt.Comparison(findings, compared.recovery_point, compared.amcheck_s)


# --- the flow ---------------------------------------------------------------------------------


@flow(name=DUTY, flow_run_name=_run_name, log_prints=False)
def weekly_restore_test(
    config_path: str | None = None, database: str | None = None, backup_id: str | None = None
) -> Any:
    """Restore the newest verified backup of every database (or one, or one backup) into a
    scratch database and prove it complete."""
    config = load_config(config_path)
    chosen = databases(config, database, backup_id)
    storage = open_storage(config.backup)
    results: list[rt.Result] = []
    try:
        with open_store(config.store.url) as store:
            for db in chosen:
                results.append(
                    rt.Result(db.name, datetime.now(UTC), config.restore_test.max_duration)
                )
                test_database(config, store, storage, db, backup_id, results[-1])
    finally:
        tell(config, results)
    problem, message = run_state(results)
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


def hard_limit(config: Config) -> timedelta:
    settings = config.restore_test
    return settings.hard_timeout or settings.max_duration * HARD_TIMEOUT_FACTOR


def test_database(
    config: Config,
    store: Store,
    storage: Storage,
    database: Database,
    backup_id: str | None,
    result: rt.Result,
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
        limit = hard_limit(config)
        with rt.scratch_session(settings.scratch_url, database.name, wait=limit) as admin:
            result.dropped_leftovers = rt.drop_leftovers(admin, database.name)
            for leftover in result.dropped_leftovers:
                get_run_logger().warning("dropped %s, left behind by a crashed run", leftover)
            run_test(config, store, storage, admin, result, backup_id, Deadline(limit))
    except Exception as exc:
        result.error = redact(str(exc) if isinstance(exc, BackupError) else repr(exc))
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
    result: rt.Result,
    backup_id: str | None,
    deadline: Deadline,
) -> None:
    """Fetch, restore, compare; the scratch database and the archive go, whatever happens."""
    settings = config.restore_test
    server = settings.scratch_url or ""
    entry = pick_backup(store, result.database, backup_id)
    result.backup_id, result.backup_created_at = entry.id, entry.created_at
    with rt.workdir(result.database) as folder:
        fetched = fetch_backup(storage, entry, folder)
        result.fetch_s = fetched.seconds
        result.scratch = rt.scratch_name(result.database, datetime.now(UTC))
        try:
            left = deadline.left("pg_restore")
            result.restore_s = restore_scratch(
                admin, result.scratch, fetched, server, settings.jobs, left
            )
            started = time.monotonic()
            left = deadline.left("the comparison")
            compared = compare_copy(
                result.scratch, server, fetched.manifest, config, result.database, left
            )
            result.findings, result.recovery_point = compared.findings, compared.recovery_point
            result.check_s = time.monotonic() - started
            result.amcheck_s = compared.amcheck_s
        finally:
            drop_scratch(admin, result)


def drop_scratch(admin: Any, result: rt.Result) -> None:
    """Drop the scratch database; a failure to do so is reported, never hides the test's own
    outcome (the next run drops it as a leftover)."""
    assert result.scratch is not None
    try:
        rt.drop_database(admin, result.scratch)
    except Exception as exc:
        problem = f"could not drop scratch database {result.scratch}: {redact(str(exc))}"
        get_run_logger().error(problem)
        result.error = result.error or problem


# --- telling people ---------------------------------------------------------------------------


def tell(config: Config, results: list[rt.Result]) -> None:
    """An artifact per database and the alerts: also for a run being stopped, so a test cut
    short is seen, not silently missing from the week."""
    for result in results:
        publish(result)
    for alert in alerts_for(results):
        notify(config, alert)


def publish(result: rt.Result) -> None:
    create_markdown_artifact(
        key=artifact_key(result.database),
        markdown=markdown(result),
        description=f"restore test of {result.database}: {result.status}",
    )


def markdown(result: rt.Result) -> str:
    """The run's report: verdict, timings against the RTO, then every check."""
    verdict = "passed" if result.ok else "**FAILED**"
    lines = [
        f"# Restore test of `{result.database}`: {verdict}",
        "",
        f"- backup: `{result.backup_id or 'none'}`",
        f"- started: {result.started_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if result.duration_s is not None:
        lines.append(f"- {result.timing()}")
        fetch, restore = (
            format_duration(result.fetch_s or 0),
            format_duration(result.restore_s or 0),
        )
        checks = format_duration(result.check_s or 0)
        if result.amcheck_s is not None:
            checks += f" (amcheck {format_duration(result.amcheck_s)})"
        lines.append(f"- fetch + checksum {fetch}, pg_restore {restore}, checks {checks}")
    if result.recovery_point:
        lines.append(
            f"- recovery point (newest row): {result.recovery_point:%Y-%m-%d %H:%M:%S} UTC"
        )
    lines += [f"- dropped leftover: `{name}`" for name in result.dropped_leftovers]
    if result.error:
        lines += ["", f"**Error:** {result.error}"]
    if result.findings:
        lines += ["", "| check | ok | expected | observed |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(f.name)} | {'yes' if f.ok else '**NO**'} | {_cell(f.expected)} | "
            f"{_cell(f.observed)} |"
            for f in result.findings
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def alerts_for(results: list[rt.Result]) -> list[Alert]:
    """`critical` for each failed test, `high` for a passing one slower than the RTO."""
    alerts = []
    for result in results:
        if not result.ok:
            alerts.append(_alert(result, "critical", f"Restore test of {result.database} failed"))
        elif result.rto_met is False:
            title = f"Restore of {result.database} took longer than the RTO"
            alerts.append(_alert(result, "high", title))
    return alerts


def _alert(result: rt.Result, severity: Severity, title: str) -> Alert:
    problems = result.problems()
    slow = [result.timing()] if result.rto_met is False else []
    fields = {"backup": result.backup_id} if result.backup_id else {}
    if result.duration_s is not None:
        fields["restore time"] = format_duration(result.duration_s)
    return Alert(
        title=title,
        severity=severity,
        duty=DUTY,
        subject=result.database,
        summary=problems[0] if problems else result.timing(),
        details=[*problems[1:], *slow],
        fields=fields,
    )


def run_state(results: list[rt.Result]) -> tuple[str | None, str]:
    """(problem name or None, message): a failed test outranks a slow one."""
    message = "; ".join(r.line() for r in results)
    if any(not r.ok for r in results):
        return "RestoreTestFailed", message
    if any(r.rto_met is False for r in results):
        return "RestoreTooSlow", message
    return None, message
