"""The monthly disaster-recovery drill, as the runbook it replaces: declare the disaster
(the clock starts), locate the offsite backups, restore and prove each database, probe the
fallbacks, start the app on the restored data, run the runbook's steps, tear everything
down, then judge RTO and RPO and write the after-action report (artifact `dr-drill`, the
records store, `vigil drill --report FILE`) and tell people the verdict.

Each phase is a task: a phase that found a problem ends Failed in the UI and the drill goes
on with the phases that can still run. Teardown runs whatever happened; a drill cancelled
or crashed mid-way is cleaned up by its state hooks, and by the next drill at the latest.
The phases, verdict and report are core (`vigil.drill`, `vigil.drill_report`); the
restore is the recovery engine's (`tasks.recovery`), the runbook's commands `tasks.runbook`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks import recovery as engine
from tasks import runbook
from tasks.globals import roles_on
from tasks.notify import notify
from tasks.recovery import scratch
from tasks.storage import Storage, StorageError, open_storage
from vigil import boundary, drill, findings
from vigil import restore_test as rt
from vigil.backup.globals import missing_roles
from vigil.backup.identity import describe_url
from vigil.config import Config, RunbookStep, load_config, resolve_path
from vigil.drill_report import ARTIFACT_KEY, DUTY, alert_for, markdown
from vigil.durations import format_duration
from vigil.logs import story
from vigil.recovery import Finding
from vigil.runtime import as_is, flow_run_id, outcome
from vigil.store import Store, open_store


def _run_name() -> str:
    return "drill " + datetime.now(UTC).strftime("%Y-%m-%d %H:%M")


class PhaseFailed(findings.Finding):
    """Raised by a phase task that found problems, so the task run shows Failed; it carries
    the phase so the drill keeps its findings and goes on."""

    def __init__(self, phase: drill.Phase) -> None:
        super().__init__("; ".join(phase.problems()) or phase.name)
        self.phase = phase


def _finish(phase: drill.Phase) -> drill.Phase:
    if not phase.ok:
        raise PhaseFailed(phase)
    return phase


def _run(task_: Any, phase: drill.Phase, *args: Any) -> drill.Phase:
    """Run a phase task on the drill's own objects (`as_is`: Prefect must not copy what the
    phase fills in); a task that broke outside its phase keeps that as the phase's error."""
    state = task_(as_is(phase), *(as_is(a) for a in args), return_state=True)
    value = state.result(raise_on_failure=False)
    if isinstance(value, BaseException) and not isinstance(value, PhaseFailed):
        phase.error = phase.error or repr(value)
        phase.finished_at = phase.finished_at or datetime.now(UTC)
    _tell(phase)
    return phase


def _tell(phase: drill.Phase) -> None:
    """One line per phase in the run's logs: what it was, its verdict, how long, and why."""
    took = f" in {format_duration(phase.duration_s)}" if phase.duration_s is not None else ""
    why = f": {'; '.join(phase.problems())}" if not phase.ok else ""
    if phase.skipped:
        why = f": {phase.skipped}"
    level = logging.INFO if phase.ok else logging.ERROR
    story().log(level, "phase %s: %s%s%s", phase.name, phase.verdict, took, why)


# --- phase tasks --------------------------------------------------------------------------------


@task(name="locate offsite backups", cache_policy=NO_CACHE)
def locate_backups(
    phase: drill.Phase, config: Config, store: Store, result: drill.DrillResult
) -> drill.Phase:
    with drill.timed(phase):
        problem = drill.offsite_problem(config)
        if problem:
            phase.fail(problem, "offsite storage")
        else:
            storage = open_storage(config.backup)
            for each in result.recoveries:
                each.entry, findings = locate(store, storage, each.database, result)
                phase.findings += findings
    return _finish(phase)


def locate(
    store: Store, storage: Storage, database: str, result: drill.DrillResult
) -> tuple[Any, list[Finding]]:
    """List the offsite storage itself, then let the records store say what was verified."""
    prefix = f"{database}/"
    try:
        keys = [o.key for o in storage.list_objects(prefix)]
    except StorageError as exc:
        return None, [drill.unreachable(database, str(exc))]
    offsite = drill.offsite_backups(keys, database)
    where = storage.location(prefix)
    return drill.locate(store, database, offsite, where, result.declared_at, result.rpo)


@task(name="restore and verify", task_run_name="restore {recovery.database}", cache_policy=NO_CACHE)
def restore_database(
    phase: drill.Phase,
    admin: Any,
    storage: Storage,
    config: Config,
    target: str,
    recovery: drill.DatabaseRecovery,
    timeout: float,
) -> drill.Phase:
    """Checksum, pg_restore into a fresh database, then the restore test's checks."""
    with drill.timed(phase), scratch.workdir("vigil-drill-") as folder:
        recover(admin, storage, config, target, recovery, folder, timeout, phase.findings)
    return _finish(phase)


def recover(
    admin: Any,
    storage: Storage,
    config: Config,
    target_url: str,
    recovery: drill.DatabaseRecovery,
    folder: Path,
    timeout: float,
    found: list[Finding],
) -> None:
    """The recovery engine's steps, as `vigil restore` and the restore test run them, into a
    fresh drill database, each finding into `found` as it is made; a broken step raises
    (the phase's error). The roles the backup needs that the rehearsal server lacks are
    created first from the backup's saved globals, as a real recovery onto a new server
    must, and the log and report say which."""
    assert recovery.entry is not None
    started = time.monotonic()
    fetched = engine.fetch(
        storage,
        recovery.entry.id,
        folder,
        expected_sha256=recovery.entry.sha256,
        identity=config.drill.identity,
        setting="drill.identity",
    )
    recovery.snapshot_at = datetime.fromisoformat(fetched.manifest["snapshot"]["taken_at"])
    found.append(restore_globals(admin, fetched, recovery.database))
    name = drill.drill_name(recovery.database, datetime.now(UTC))
    scratch.create_database(admin, name)
    recovery.restored_as = name
    url = rt.database_url(target_url, name)
    settings = config.restore_test
    engine.restore(
        fetched.archive,
        url,
        jobs=settings.jobs,
        timeout=timeout - (time.monotonic() - started),
        limit=f"the drill's hard limit ({drill.HARD_LIMIT_FACTOR} x the RTO)",
        server="rehearsal server",
    )
    compared = engine.inspect(
        url,
        fetched.manifest,
        timeout=max(timeout - (time.monotonic() - started), 1.0),
        jobs=settings.jobs,
        amcheck=settings.amcheck,
        checks=settings.checks,
        database=recovery.database,
    )
    recovery.recovery_point = compared.recovery_point
    found += compared.findings
    recovery.restored = all(f.ok for f in found)


def restore_globals(admin: Any, fetched: engine.Fetched, database: str) -> Finding:
    """The backup's roles on the rehearsal server; failed when the saved globals did not
    read back (a real recovery could not recreate its roles either) or when roles the
    database needs are still missing (a user without CREATEROLE), naming them."""
    applied = engine.apply_saved_globals(fetched, admin)
    for line in applied.lines():
        story().info("restore %s: %s", database, line)
    if fetched.globals is not None and not fetched.globals.ok:
        return fetched.globals
    manifest = fetched.manifest
    missing = missing_roles(manifest, roles_on(admin))
    return applied.finding(manifest, missing, "the rehearsal server")


@task(name="check fallbacks", cache_policy=NO_CACHE)
def check_fallbacks(phase: drill.Phase, config: Config) -> drill.Phase:
    with drill.timed(phase):
        phase.findings += runbook.probe(drill.fallback_monitors(config))
    return _finish(phase)


@task(name="start the app on the restored data", cache_policy=NO_CACHE)
def check_app(
    phase: drill.Phase, config: Config, env: dict[str, str], cwd: Path, logs: Path
) -> drill.Phase:
    assert config.drill.app_check is not None
    with drill.timed(phase):
        phase.findings.append(runbook.app_check(config.drill.app_check, env, cwd, logs))
    return _finish(phase)


@task(name="runbook step", task_run_name="step: {step.name}", cache_policy=NO_CACHE)
def run_step(
    phase: drill.Phase, step: RunbookStep, env: dict[str, str], cwd: Path, logs: Path
) -> drill.Phase:
    with drill.timed(phase):
        phase.findings.append(runbook.run_step(step, env, cwd, logs))
    return _finish(phase)


@task(name="tear down", cache_policy=NO_CACHE)
def tear_down(phase: drill.Phase, admin: Any, created: list[str]) -> drill.Phase:
    """Drop the drill's databases and stop its processes: always, after any outcome."""
    with drill.timed(phase):
        stopped = runbook.stop_remembered()
        if stopped:
            phase.findings.append(
                Finding("processes", True, "none left", f"stopped {len(stopped)} group(s)")
            )
        if admin is not None:
            problems = scratch.drop_all(admin, created)
            left = [n for n in scratch.drill_databases(admin) if n in created]
            for problem in problems:
                phase.fail(problem, "databases")
            if not problems:
                observed = f"dropped {', '.join(created) or 'nothing'}"
                phase.findings.append(Finding("databases", not left, "none left", observed))
    return _finish(phase)


# --- the flow -----------------------------------------------------------------------------------


def cleanup_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """On cancellation or crash: drop every drill database on the rehearsal server and stop
    the drill's processes (the run that made them is gone, and one drill runs at a time)."""
    try:
        config = load_config(flow_run.parameters.get("config_path"))
        runbook.stop_remembered()
        target = drill.rehearsal_url(config)
        if target:
            import psycopg

            with psycopg.connect(target, autocommit=True, connect_timeout=10) as admin:
                scratch.drop_all(admin, scratch.drill_databases(admin))
    except Exception as exc:  # a hook must not raise; the next drill cleans up anyway
        print(f"dr-drill cleanup after {state.name}: {exc!r}")


@flow(
    name=DUTY,
    flow_run_name=_run_name,
    log_prints=False,
    on_cancellation=[cleanup_hook],
    on_crashed=[cleanup_hook],
)
def dr_drill(config_path: str | None = None) -> Any:
    """Rehearse losing production: recover from the offsite copy against the clock."""
    declared = datetime.now(UTC)
    config = load_config(config_path)
    settings = config.drill
    target = drill.rehearsal_url(config)
    result = drill.DrillResult(
        declared,
        settings.rto,
        settings.rpo,
        describe_url(target) if target else None,
        config.backup.storage,
        recoveries=[drill.DatabaseRecovery(d.name) for d in config.databases_for(None, "drill")],
    )
    cwd = resolve_path(config_path).parent
    with open_store(config.store.url) as store:
        result.previous = drill.previous(store)
        with tempfile.TemporaryDirectory(prefix="vigil-drill-logs-") as logs:
            run_drill(config, store, result, target, cwd, Path(logs))
        result.finished_at = datetime.now(UTC)
        report = markdown(result)
        drill.record(store, result, report, flow_run_id())
    boundary.publish_markdown(ARTIFACT_KEY, report, result.headline())
    notify(as_is(config), alert_for(result))
    summary = {"headline": result.headline(), "report": report, **result.as_json()}
    problem = {drill.FAILED: "RecoveryFailed", drill.MISSED: "ObjectiveMissed"}.get(result.status)
    findings = result.status == drill.FINDINGS
    return outcome(problem, summary, result.headline(), degraded=findings)


def run_drill(
    config: Config,
    store: Store,
    result: drill.DrillResult,
    target: str | None,
    cwd: Path,
    logs: Path,
) -> None:
    """Phases 1 to 6; teardown runs whatever happened in the others."""
    _run(locate_backups, result.phase("locate offsite backups"), config, store, result)
    created: list[str] = []
    with ExitStack() as held:
        admin = None
        try:
            admin = _open(held, target, result)
            if admin is not None:
                _restore_all(config, admin, target or "", result, created)
            run_probes(config, result, cwd, logs)
        finally:
            _run(tear_down, result.phase("tear down", recovery=False), admin, created)


def _open(held: ExitStack, target: str | None, result: drill.DrillResult) -> Any:
    """Take the drill lock on the rehearsal server (held until after teardown) and drop
    what a crashed drill left; None when the server cannot be used."""
    phase = result.phase("prepare the rehearsal server")
    admin = None
    with drill.timed(phase):
        if target is None:
            raise drill.DrillError(
                "drill.target_url is not set: name a server to rehearse the recovery on"
            )
        admin = held.enter_context(scratch.rehearsal_session(target))
        leftovers = scratch.drill_databases(admin)
        for problem in scratch.drop_all(admin, leftovers):
            phase.fail(problem, "leftovers")
        stopped = runbook.stop_remembered()
        observed = ", ".join([*leftovers, *(f"process group {p}" for p in stopped)]) or "none"
        phase.findings.append(Finding("leftovers", True, "dropped", observed))
    if phase.error:
        get_run_logger().error("the drill cannot use the rehearsal server: %s", phase.error)
        return None
    return admin


def _restore_all(
    config: Config, admin: Any, target: str, result: drill.DrillResult, created: list[str]
) -> None:
    storage = open_storage(config.backup) if drill.offsite_problem(config) is None else None
    hard_limit = result.rto * drill.HARD_LIMIT_FACTOR
    for recovery in result.recoveries:
        phase = result.phase(f"restore {recovery.database}")
        if recovery.entry is None or storage is None:
            phase.skipped = "no offsite backup located"
            phase.fail(f"database {recovery.database} not recovered: no offsite backup located")
            phase.finished_at = datetime.now(UTC)
            continue
        left = (result.declared_at + hard_limit - datetime.now(UTC)).total_seconds()
        _run(restore_database, phase, admin, storage, config, target, recovery, left)
        if recovery.restored_as:
            created.append(recovery.restored_as)


def run_probes(config: Config, result: drill.DrillResult, cwd: Path, logs: Path) -> None:
    """Phases 3 to 5: fallbacks, the app on the restored data, the runbook's steps."""
    settings = config.drill
    if settings.fallbacks:
        _run(check_fallbacks, result.phase("check fallbacks"), config)
    env = database_env(config, result)
    if settings.app_check is not None:
        phase = result.phase("app check")
        if "VIGIL_DRILL_DATABASE_URL" not in env:
            phase.skipped = "no database was restored"
            phase.fail("app check not run: no database was restored to start it against")
            phase.finished_at = datetime.now(UTC)
        else:
            _run(check_app, phase, config, env, cwd, logs)
    for step in settings.steps:
        _run(run_step, result.phase(f"step {step.name}"), step, env, cwd, logs)


def database_env(config: Config, result: drill.DrillResult) -> dict[str, str]:
    """`VIGIL_DRILL_DATABASE_URL` (the first restored database) and one
    `VIGIL_DRILL_DATABASE_URL_<NAME>` per restored database, for the app and the steps."""
    target = drill.rehearsal_url(config)
    env: dict[str, str] = {}
    for recovery in result.recoveries:
        if target and recovery.restored_as:
            url = rt.database_url(target, recovery.restored_as)
            env.setdefault("VIGIL_DRILL_DATABASE_URL", url)
            key = "".join(c if c.isalnum() else "_" for c in recovery.database.upper())
            env[f"VIGIL_DRILL_DATABASE_URL_{key}"] = url
    return env
