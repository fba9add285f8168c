"""The monthly disaster-recovery drill as plain code: find the offsite copy, bring every
database back on the rehearsal server, prove the fallbacks and the app, run the runbook's
steps, tear it all down, and judge the clock against the objectives.

The drill rehearses the day production is gone, so it trusts nothing that would be gone
with it: backups come from the offsite (S3) storage only, found by listing it; the records
store is asked only which of those were verified. Every phase ends as a `Phase` with
findings (observed values kept next to what was expected); a failed phase never stops
the phases that can still run, and teardown always runs.

The restore and its completeness checks are the weekly restore test's (`vigil.restore_test`);
probes are the sweep's (`tasks.http`). Drill databases are named `vigil_drill_<database>_
<UTC stamp>`; a drill holds an advisory lock on the rehearsal server for its whole run, so
whoever holds it may drop any `vigil_drill_*` database as left behind by a crashed drill.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select

from tasks.storage import Storage, StorageError
from vigil import restore_test as rt
from vigil.backup import (
    CONNECT_TIMEOUT_S,
    SUCCEEDED,
    BackupError,
    CatalogEntry,
    catalog,
    describe_url,
    parse_backup_id,
)
from vigil.config import Config, Monitor
from vigil.durations import format_duration
from vigil.redact import redact
from vigil.restore_test import Finding
from vigil.store import Drill, Store

PASSED, FINDINGS, MISSED, FAILED = "passed", "findings", "missed", "failed"
DRILL_PREFIX = "vigil_drill_"
_DRILL_DB = re.compile(r"^vigil_drill_.+_\d{8}_\d{6}$")
MANIFEST_SUFFIX = ".manifest.json"
# Without a hard limit a hung restore would hold the drill forever: stop at 3x the RTO.
HARD_LIMIT_FACTOR = 3


class DrillError(BackupError):
    """A phase could not do its work; the message is the finding a person reads."""


# --- results -----------------------------------------------------------------------------------


@dataclass
class Phase:
    """One phase of the drill, timed, with what it found. `recovery` phases count towards
    the RTO; teardown does not."""

    name: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    recovery: bool = True

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.ok for f in self.findings)

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "skipped"
        return "ok" if self.ok else "FAILED"

    def problems(self) -> list[str]:
        return ([self.error] if self.error else []) + [f.line() for f in self.findings if not f.ok]

    def fail(self, finding: str, name: str = "error") -> None:
        self.findings.append(Finding(name, False, "", finding, finding))

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "verdict": self.verdict,
            "error": self.error,
            "skipped": self.skipped,
            "findings": [f.as_json() | {"problem": f.problem} for f in self.findings],
        }


@contextmanager
def timed(phase: Phase) -> Iterator[Phase]:
    """Time a phase; an exception becomes its error (the drill goes on)."""
    try:
        yield phase
    except Exception as exc:
        phase.error = redact(str(exc) if isinstance(exc, BackupError) else repr(exc))
    finally:
        phase.finished_at = datetime.now(UTC)


@dataclass
class Recovery:
    """One database on its way back: which backup, its snapshot, what the restore gave."""

    database: str
    entry: CatalogEntry | None = None
    snapshot_at: datetime | None = None
    recovery_point: datetime | None = None
    restored_as: str | None = None
    restored: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backup_id": self.entry.id if self.entry else None,
            "snapshot_at": _iso(self.snapshot_at),
            "recovery_point": _iso(self.recovery_point),
            "restored_as": self.restored_as,
            "restored": self.restored,
        }


@dataclass
class Result:
    """One drill: the clock, the phases, the databases, and the verdict on both objectives."""

    declared_at: datetime
    rto: timedelta
    rpo: timedelta
    target: str | None
    storage: str
    phases: list[Phase] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    previous: dict[str, Any] | None = None
    finished_at: datetime | None = None

    def phase(self, name: str, *, recovery: bool = True) -> Phase:
        made = Phase(name, recovery=recovery)
        self.phases.append(made)
        return made

    @property
    def recovered(self) -> bool:
        """Every database came back complete, and the app (when checked) served from it."""
        if not self.recoveries or not all(r.restored for r in self.recoveries):
            return False
        return all(p.ok for p in self.phases if p.name in ("app check",) and not p.skipped)

    @property
    def recovery_end(self) -> datetime | None:
        ends = [p.finished_at for p in self.phases if p.recovery and p.finished_at]
        return max(ends) if ends else None

    @property
    def rto_s(self) -> float | None:
        end = self.recovery_end
        return None if end is None else (end - self.declared_at).total_seconds()

    @property
    def rto_met(self) -> bool:
        seconds = self.rto_s
        return self.recovered and seconds is not None and seconds <= self.rto.total_seconds()

    @property
    def rpo_s(self) -> float | None:
        """The backup-based recovery point: declaration minus the oldest snapshot needed."""
        if not self.recoveries or any(r.snapshot_at is None for r in self.recoveries):
            return None
        return max((self.declared_at - r.snapshot_at).total_seconds() for r in self.recoveries)  # type: ignore[operator]

    @property
    def data_rpo_s(self) -> float | None:
        """The same, measured from the newest row in the restored data where there is one."""
        points = [r.recovery_point for r in self.recoveries if r.recovery_point]
        if not points:
            return None
        return max((self.declared_at - p).total_seconds() for p in points)

    @property
    def rpo_met(self) -> bool:
        seconds = self.rpo_s
        return seconds is not None and seconds <= self.rpo.total_seconds()

    @property
    def status(self) -> str:
        if not self.recovered:
            return FAILED
        if not (self.rto_met and self.rpo_met):
            return MISSED
        if any(not p.ok for p in self.phases):
            return FINDINGS
        return PASSED

    def action_items(self) -> list[str]:
        """One item per failure, in phase order, then the objectives missed."""
        items = [f"{p.name}: {problem}" for p in self.phases for problem in p.problems()]
        if self.rto_s is not None and not self.rto_met:
            items.append(
                f"RTO missed: recovery took {format_duration(self.rto_s)} against the "
                f"{format_duration(self.rto)} objective"
                + ("" if self.recovered else " (and did not complete)")
            )
        if not self.rpo_met:
            if self.rpo_s is None:
                items.append("RPO missed: no recovery point, since no backup could be located")
            else:
                items.append(
                    f"RPO missed: the newest offsite backup is {format_duration(self.rpo_s)} "
                    f"older than the declaration, against the {format_duration(self.rpo)} "
                    "objective"
                )
        return items

    def headline(self) -> str:
        if self.recovered and self.rto_s is not None:
            rto = f"RTO {_against(self.rto_s, self.rto_met, self.rto)}"
        else:
            rto = "RTO not achieved (recovery failed)"
        if self.rpo_s is None:
            rpo = "RPO n/a (no backup restored)"
        else:
            rpo = f"RPO {_against(self.rpo_s, self.rpo_met, self.rpo)}"
        return f"DR drill {self.status}: {rto}, {rpo}"

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "declared_at": self.declared_at.isoformat(),
            "finished_at": _iso(self.finished_at),
            "rto_s": _round(self.rto_s),
            "rto_target_s": self.rto.total_seconds(),
            "rto_met": self.rto_met,
            "rpo_s": _round(self.rpo_s),
            "data_rpo_s": _round(self.data_rpo_s),
            "rpo_target_s": self.rpo.total_seconds(),
            "rpo_met": self.rpo_met,
            "databases": [r.as_json() for r in self.recoveries],
            "phases": [p.as_json() for p in self.phases],
            "action_items": self.action_items(),
            "previous": self.previous,
        }


def _against(seconds: float, met: bool, target: timedelta) -> str:
    """`3.2s (within 1h)` / `30h (OVER 24h)`."""
    return f"{format_duration(seconds)} ({'within' if met else 'OVER'} {format_duration(target)})"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- phase 1: locate the offsite copy -----------------------------------------------------------


def rehearsal_url(config: Config) -> str | None:
    """The server the recovery is rehearsed on: `drill.target_url`, else the restore test's
    scratch server."""
    return config.drill.target_url or config.restore_test.scratch_url


def offsite_problem(config: Config) -> str | None:
    """Why this config has no offsite copy to recover from, or None."""
    storage = config.backup.storage
    if storage.startswith("s3://"):
        return None
    return (
        f"no offsite storage: backup.storage is {storage}, on this machine; a drill recovers "
        "from an offsite copy only (set backup.storage to s3://bucket/prefix)"
    )


def stored_backups(storage: Storage, database: str) -> list[str]:
    """Backup ids with a manifest in storage, newest first (listing the storage itself, so a
    lost records store does not hide them)."""
    ids = []
    for obj in storage.list_objects(f"{database}/"):
        name = obj.key.rpartition("/")[2]
        if name.endswith(MANIFEST_SUFFIX):
            backup = name.removesuffix(MANIFEST_SUFFIX)
            try:
                owner, _ = parse_backup_id(backup)
            except ValueError:
                continue
            if owner == database:
                ids.append(backup)
    return sorted(ids, key=lambda b: parse_backup_id(b)[1], reverse=True)


def locate(
    store: Store, storage: Storage, database: str, declared_at: datetime, rpo: timedelta
) -> tuple[CatalogEntry | None, list[Finding]]:
    """The newest verified backup of `database` that is really in offsite storage."""
    where = storage.location(f"{database}/")
    try:
        offsite = stored_backups(storage, database)
    except StorageError as exc:
        problem = f"offsite storage unreachable: {exc}"
        return None, [Finding(f"offsite {database}", False, "reachable", "unreachable", problem)]
    known = catalog(store, database)
    usable = [e for e in known if e.status == SUCCEEDED and e.verified and e.id in set(offsite)]
    findings = []
    if usable:
        entry = usable[0]
        found = f"{entry.id} (verified)"
    elif offsite and not known:
        backup = offsite[0]
        entry = CatalogEntry(
            backup,
            database,
            parse_backup_id(backup)[1],
            None,
            None,
            storage.location(backup),
            SUCCEEDED,
            False,
            False,
        )
        found = (
            f"{backup} (the records store knows no backup of {database}; checksum proven "
            "at download)"
        )
    else:
        status = f"{len(offsite)} backup(s) there, none verified" if offsite else "nothing there"
        problem = f"no verified backup of database {database} in offsite storage {where} ({status})"
        return None, [Finding(f"offsite {database}", False, "a verified backup", status, problem)]
    findings.append(Finding(f"offsite {database}", True, "a verified backup", found))
    age = declared_at - entry.created_at
    expected = f"younger than the {format_duration(rpo)} RPO"
    observed = f"{format_duration(age)} old"
    if age > rpo:
        problem = (
            f"the newest offsite backup of {database}, {entry.id}, is {format_duration(age)} "
            f"old: older than the {format_duration(rpo)} RPO"
        )
        findings.append(Finding(f"backup age {database}", False, expected, observed, problem))
    else:
        findings.append(Finding(f"backup age {database}", True, expected, observed))
    return entry, findings


# --- phase 2: restore and prove complete --------------------------------------------------------


def drill_name(database: str, at: datetime) -> str:
    return rt.scratch_name(database, at).replace(rt.SCRATCH_PREFIX, DRILL_PREFIX, 1)


@contextmanager
def rehearsal_session(target_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An admin connection to the rehearsal server holding the drill lock: one drill at a
    time, and the holder may drop what a crashed drill left."""
    where = describe_url(target_url)
    try:
        admin = psycopg.connect(target_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise DrillError(f"cannot connect to the rehearsal server {where}: {_first(exc)}") from None
    with admin:
        got = admin.execute("SELECT pg_try_advisory_lock(hashtextextended('vigil-drill', 0))")
        if not got.fetchone()[0]:  # type: ignore[index]
            raise DrillError(f"another drill is running on {where}; not starting a second one")
        yield admin


def drill_databases(admin: psycopg.Connection[Any]) -> list[str]:
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'vigil\\_drill\\_%' ORDER BY 1"
    )
    return [str(r[0]) for r in rows if _DRILL_DB.match(str(r[0]))]


def drop_all(admin: psycopg.Connection[Any], names: Sequence[str]) -> list[str]:
    """Drop each database; returns the problems (each one an action item)."""
    problems = []
    for name in names:
        try:
            rt.drop_database(admin, name)
        except psycopg.Error as exc:
            problems.append(f"could not drop {name}: {_first(exc)}")
    return problems


def restore(
    admin: psycopg.Connection[Any],
    storage: Storage,
    config: Config,
    target_url: str,
    recovery: Recovery,
    folder: Path,
    timeout: float,
) -> list[Finding]:
    """Download and prove the checksum, restore into a fresh database, and run the restore
    test's completeness checks on it. Raises DrillError/BackupError on a broken step."""
    assert recovery.entry is not None
    started = time.monotonic()
    fetched = rt.fetch(storage, recovery.entry, folder)
    recovery.snapshot_at = datetime.fromisoformat(fetched.manifest["snapshot"]["taken_at"])
    name = drill_name(recovery.database, datetime.now(UTC))
    rt.create_database(admin, name)
    recovery.restored_as = name
    url = rt.database_url(target_url, name)
    left = timeout - (time.monotonic() - started)
    rt.restore(fetched.archive, url, jobs=config.restore_test.jobs, timeout=left)
    left = timeout - (time.monotonic() - started)
    with rt.connect(url, max(left, 1.0)) as connection:
        compared = rt.compare(fetched.manifest, connection, amcheck=config.restore_test.amcheck)
        checks = rt.sql_checks(config.restore_test.checks, recovery.database, connection)
    recovery.recovery_point = compared.recovery_point
    findings = [*compared.findings, *checks]
    recovery.restored = all(f.ok for f in findings)
    return findings


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vigil-drill-") as folder:
        yield Path(folder)


# --- phase 3 and 4: probes ----------------------------------------------------------------------


def fallback_monitors(config: Config) -> list[Monitor]:
    """Each fallback as a monitor: a named monitor with its own conditions, or a URL with
    the default ones."""
    by_name = config.monitors_by_name
    return [
        by_name[name] if name in by_name else Monitor(name=name, url=name)
        for name in config.drill.fallbacks
    ]


# --- records and comparison --------------------------------------------------------------------


def previous(store: Store) -> dict[str, Any] | None:
    """The last drill's figures, for the report's comparison."""
    with store.session() as session:
        last = session.scalars(select(Drill).order_by(Drill.started_at.desc()).limit(1)).first()
        if last is None:
            return None
        return {
            "started_at": last.started_at.replace(tzinfo=last.started_at.tzinfo or UTC).isoformat(),
            "status": last.status,
            "rto_s": last.rto_s,
            "rpo_s": last.rpo_s,
            "rto_met": last.rto_met,
            "rpo_met": last.rpo_met,
        }


def record(store: Store, result: Result, report: str, flow_run_id: str | None) -> None:
    with store.session() as session:
        session.add(
            Drill(
                started_at=result.declared_at,
                finished_at=result.finished_at,
                status=result.status,
                rto_s=_round(result.rto_s),
                rpo_s=_round(result.rpo_s),
                rto_met=result.rto_met,
                rpo_met=result.rpo_met,
                findings=[p.as_json() for p in result.phases],
                report=report,
                flow_run_id=flow_run_id,
            )
        )


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)
