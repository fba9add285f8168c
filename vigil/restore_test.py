"""The weekly restore test as plain code: which backup to prove, where its scratch database
goes, the hard time limit, the result, and how it is told (record, markdown artifact,
alerts, run state). The duty's one home for presentation.

A backup that was never restored is a hope. The test restores the newest verified backup
into a throw-away scratch database with the recovery engine (`tasks.recovery`) and proves,
with the judgement every recovery shares (`vigil.recovery`), that it holds what the
manifest promised.

Scratch databases are named `vigil_restore_<database>_<UTC stamp>`. Runs for one database
are serialised by a PostgreSQL advisory lock held on the scratch server for the whole run
(`tasks.recovery.scratch`): it dies with the process holding it, so whoever holds it may
safely drop any scratch database (and temporary folder) of that database as left behind by
a crashed run.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.conninfo import make_conninfo

from vigil.alert import Alert, Severity
from vigil.backup.catalog import CatalogEntry, catalog
from vigil.backup.identity import SUCCEEDED, BackupError
from vigil.config import Config
from vigil.durations import format_duration
from vigil.recovery import Finding
from vigil.store import RestoreTest, Store

DUTY = "weekly-restore-test"
PASSED, FAILED = "passed", "failed"
SCRATCH_PREFIX = "vigil_restore_"
STAMP = "%Y%m%d_%H%M%S"
_SCRATCH = re.compile(r"^vigil_restore_(?P<database>.+)_(?P<stamp>\d{8}_\d{6})$")
# The scratch database name must fit PostgreSQL's 63-byte identifiers with the stamp.
_MAX_NAME_PART = 30
WORKDIR_PREFIX = "vigil-restore-test-"
# Without restore_test.hard_timeout, a run is stopped at this many times the RTO.
HARD_TIMEOUT_FACTOR = 3


class RestoreTestError(BackupError):
    """The restore test could not do its work; the message says what, where and why."""


# --- results ------------------------------------------------------------------------------


@dataclass
class RestoreTestResult:
    """One database's restore test, for the record, the artifact, the alert and the CLI."""

    database: str
    started_at: datetime
    max_duration: timedelta
    backup_id: str | None = None
    backup_created_at: datetime | None = None
    scratch: str | None = None
    fetch_s: float | None = None
    restore_s: float | None = None
    check_s: float | None = None
    amcheck_s: float | None = None
    finished_at: datetime | None = None
    recovery_point: datetime | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    dropped_leftovers: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        """The recovery time: fetching the archive plus pg_restore, what a real restore
        needs before the database is usable (the checks are the test's own cost)."""
        if self.fetch_s is None or self.restore_s is None:
            return None
        return self.fetch_s + self.restore_s

    @property
    def rto_met(self) -> bool | None:
        seconds = self.duration_s
        return None if seconds is None else seconds <= self.max_duration.total_seconds()

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures and self.duration_s is not None

    @property
    def status(self) -> str:
        return PASSED if self.ok else FAILED

    def stage(self) -> str:
        """The step the test had reached, for a run that stopped before its end."""
        if self.backup_id is None:
            return "the choice of a backup"
        if self.fetch_s is None:
            return f"the download of {self.backup_id}"
        if self.restore_s is None:
            return "pg_restore"
        return "the comparison with the manifest"

    def problems(self) -> list[str]:
        return ([self.error] if self.error else []) + [f.line() for f in self.failures]

    def timing(self) -> str:
        if self.duration_s is None:
            return ""
        limit = format_duration(self.max_duration)
        verdict = "within" if self.rto_met else "OVER"
        return f"restored in {format_duration(self.duration_s)} ({verdict} the {limit} RTO)"

    def line(self) -> str:
        what = self.backup_id or "no backup"
        if self.ok:
            return f"{self.database}: {what} passed, {len(self.findings)} checks; {self.timing()}"
        return f"{self.database}: {what} FAILED: " + "; ".join(self.problems())

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backup_id": self.backup_id,
            "status": self.status,
            "error": self.error,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": _round(self.duration_s),
            "fetch_s": _round(self.fetch_s),
            "restore_s": _round(self.restore_s),
            "check_s": _round(self.check_s),
            "amcheck_s": _round(self.amcheck_s),
            "max_duration_s": self.max_duration.total_seconds(),
            "rto_met": self.rto_met,
            "recovery_point": self.recovery_point.isoformat() if self.recovery_point else None,
            "scratch_database": self.scratch,
            "dropped_leftovers": self.dropped_leftovers,
            "checks": [f.as_json() for f in self.findings],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def interrupted(exc: BaseException, result: RestoreTestResult) -> str:
    """The reason recorded for a run stopped from outside: a Prefect cancellation or a
    shutdown arrives as SIGTERM (Prefect raises TerminationSignal), Ctrl-C as SIGINT."""
    number = getattr(exc, "signal", None)
    if number is None and isinstance(exc, KeyboardInterrupt):
        number = signal.SIGINT
    cause = signal.Signals(number).name if number else type(exc).__name__
    return (
        f"stopped by {cause} during {result.stage()} (cancelled or shut down) before the "
        "test could finish"
    )


def pick_backup(store: Store, database: str, backup: str | None = None) -> CatalogEntry:
    """The newest verified backup of `database` still in storage, or the one asked for.

    Finding none is an error with the reason: a restore test with nothing to restore must
    never pass quietly."""
    entries = catalog(store, database)
    if backup is not None:
        return _named(entries, database, backup)
    good = [e for e in entries if e.status == SUCCEEDED and e.verified and not e.deleted]
    if good:
        return good[0]
    if not entries:
        raise RestoreTestError(f"{database}: no backup on record to test (run `vigil backup`)")
    newest = entries[0]
    raise RestoreTestError(
        f"{database}: no verified backup to test; the newest, {newest.id}, is {newest.status}"
        f"{' and not verified' if not newest.verified else ''}"
        f"{' and deleted' if newest.deleted else ''}"
    )


def _named(entries: Sequence[CatalogEntry], database: str, backup: str) -> CatalogEntry:
    found = next((e for e in entries if e.id == backup), None)
    if found is None:
        raise RestoreTestError(f"{database}: no backup {backup!r} on record (`vigil backups`)")
    if found.deleted:
        raise RestoreTestError(f"{backup}: retention deleted it; pick another")
    if found.status != SUCCEEDED:
        raise RestoreTestError(f"{backup} {found.status}: {found.error or 'it never completed'}")
    return found


# --- the scratch database and the time limit ------------------------------------------


def scratch_name(database: str, at: datetime) -> str:
    """`vigil_restore_<database>_<UTC stamp>`, lower-case and short enough for PostgreSQL."""
    return f"{SCRATCH_PREFIX}{name_part(database)}_{at.astimezone(UTC).strftime(STAMP)}"


def is_scratch_of(name: str, database: str) -> bool:
    """Only names this code makes for `database`: a restore target someone made by hand
    (`vigil_restore_anything`) is never taken for a leftover."""
    match = _SCRATCH.match(name)
    return match is not None and match["database"] == name_part(database)


def name_part(database: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", database.lower())[:_MAX_NAME_PART]


def database_url(server_url: str, name: str) -> str:
    """`server_url` pointing at database `name` (a libpq connection string)."""
    return make_conninfo(server_url, dbname=name)


def workdir_prefix(database: str) -> str:
    """The prefix of this database's temporary folders: the lock holder may remove them."""
    return f"{WORKDIR_PREFIX}{re.sub(r'[^A-Za-z0-9_.-]', '_', database)}-"


def hard_limit(config: Config) -> timedelta:
    settings = config.restore_test
    return settings.hard_timeout or settings.max_duration * HARD_TIMEOUT_FACTOR


class Deadline:
    """The hard time limit of one database's test, handed out as time left per step."""

    def __init__(self, limit: timedelta) -> None:
        self.limit = limit
        self.ends = time.monotonic() + limit.total_seconds()

    def left(self, step: str) -> float:
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise RestoreTestError(
                f"the hard time limit of {format_duration(self.limit)} ran out before {step}"
            )
        return remaining


# --- the record and the telling ---------------------------------------------------------


def record(store: Store, result: RestoreTestResult, flow_run_id: str | None) -> None:
    recovery = result.recovery_point
    with store.session() as session:
        session.add(
            RestoreTest(
                backup_id=result.backup_id,
                database=result.database,
                started_at=result.started_at,
                finished_at=result.finished_at,
                duration_s=_round(result.duration_s),
                status=result.status,
                rto_met=result.rto_met,
                recovery_point=recovery,
                checks=[f.as_json() for f in result.findings],
                error="\n".join(result.problems()) or None,
                flow_run_id=flow_run_id,
            )
        )


def artifact_key(database: str) -> str:
    """`restore-test-<database>`: stable, so the Artifacts page keeps each one's history."""
    return "restore-test-" + (re.sub(r"[^a-z0-9]+", "-", database.lower()).strip("-") or "db")


def markdown(result: RestoreTestResult) -> str:
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


def alerts_for(results: list[RestoreTestResult]) -> list[Alert]:
    """`critical` for each failed test, `high` for a passing one slower than the RTO."""
    alerts = []
    for result in results:
        if not result.ok:
            alerts.append(_alert(result, "critical", f"Restore test of {result.database} failed"))
        elif result.rto_met is False:
            title = f"Restore of {result.database} took longer than the RTO"
            alerts.append(_alert(result, "high", title))
    return alerts


def _alert(result: RestoreTestResult, severity: Severity, title: str) -> Alert:
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


def run_state(results: list[RestoreTestResult]) -> tuple[str | None, str]:
    """(problem name or None, message): a failed test outranks a slow one."""
    message = "; ".join(r.line() for r in results)
    if any(not r.ok for r in results):
        return "RestoreTestFailed", message
    if any(r.rto_met is False for r in results):
        return "RestoreTooSlow", message
    return None, message
