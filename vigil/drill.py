"""The monthly disaster-recovery drill as plain code: its phases and their findings, the
clock against the objectives, which offsite backup to recover, and the record.

The drill rehearses the day production is gone, so it trusts nothing that would be gone
with it: backups come from the offsite (S3) storage only, found by listing it; the records
store is asked only which of those were verified. Every phase ends as a `Phase` with
findings (observed values kept next to what was expected); a failed phase never stops
the phases that can still run, and teardown always runs.

The restore and its completeness checks are the recovery engine's (`tasks.recovery`,
judged by `vigil.recovery`); probes are the sweep's; the runbook's commands are
`tasks.runbook`. The after-action report and the alert are `vigil.drill_report`. Drill
databases are named `vigil_drill_<database>_<UTC stamp>`; a drill holds an advisory lock
on the rehearsal server for its whole run, so whoever holds it may drop any `vigil_drill_*`
database as left behind by a crashed drill.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from vigil import restore_test as rt
from vigil.backup.catalog import CatalogEntry, catalog
from vigil.backup.identity import SUCCEEDED, BackupError, failure_text, parse_backup_id
from vigil.config import Config, Monitor
from vigil.durations import format_duration
from vigil.recovery import Finding
from vigil.store import Drill, Store

PASSED, FINDINGS, MISSED, FAILED = "passed", "findings", "missed", "failed"
DRILL_PREFIX = "vigil_drill_"
DRILL_DATABASE = re.compile(r"^vigil_drill_.+_\d{8}_\d{6}$")
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
        phase.error = failure_text(exc)
    finally:
        phase.finished_at = datetime.now(UTC)


@dataclass
class DatabaseRecovery:
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
class DrillResult:
    """One drill: the clock, the phases, the databases, and the verdict on both objectives."""

    declared_at: datetime
    rto: timedelta
    rpo: timedelta
    target: str | None
    storage: str
    phases: list[Phase] = field(default_factory=list)
    recoveries: list[DatabaseRecovery] = field(default_factory=list)
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


def offsite_backups(keys: Sequence[str], database: str) -> list[str]:
    """Backup ids of `database` with a manifest among the listed storage keys, newest
    first (listing the storage itself, so a lost records store does not hide them)."""
    ids = []
    for key in keys:
        name = key.rpartition("/")[2]
        if name.endswith(MANIFEST_SUFFIX):
            backup = name.removesuffix(MANIFEST_SUFFIX)
            try:
                owner, _ = parse_backup_id(backup)
            except ValueError:
                continue
            if owner == database:
                ids.append(backup)
    return sorted(ids, key=lambda b: parse_backup_id(b)[1], reverse=True)


def unreachable(database: str, problem: str) -> Finding:
    return Finding(
        f"offsite {database}",
        False,
        "reachable",
        "unreachable",
        f"offsite storage unreachable: {problem}",
    )


def locate(
    store: Store,
    database: str,
    offsite: Sequence[str],
    where: str,
    declared_at: datetime,
    rpo: timedelta,
) -> tuple[CatalogEntry | None, list[Finding]]:
    """The newest verified backup of `database` among those really in offsite storage
    (`offsite`, listed at `where`), and whether it is young enough for the RPO."""
    known = catalog(store, database)
    usable = [e for e in known if e.status == SUCCEEDED and e.verified and e.id in set(offsite)]
    findings = []
    if usable:
        entry = usable[0]
        found = f"{entry.id} (verified)"
    elif offsite and not known:
        backup = offsite[0]
        entry = CatalogEntry(
            backup, database, parse_backup_id(backup)[1], None, None, None, SUCCEEDED, False, False
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
    findings.append(backup_age(entry, database, declared_at, rpo))
    return entry, findings


def backup_age(
    entry: CatalogEntry, database: str, declared_at: datetime, rpo: timedelta
) -> Finding:
    age = declared_at - entry.created_at
    expected = f"younger than the {format_duration(rpo)} RPO"
    observed = f"{format_duration(age)} old"
    if age <= rpo:
        return Finding(f"backup age {database}", True, expected, observed)
    problem = (
        f"the newest offsite backup of {database}, {entry.id}, is {format_duration(age)} "
        f"old: older than the {format_duration(rpo)} RPO"
    )
    return Finding(f"backup age {database}", False, expected, observed, problem)


# --- phase 2: restore and prove complete --------------------------------------------------------


def drill_name(database: str, at: datetime) -> str:
    """`vigil_drill_<database>_<UTC stamp>`, named as the restore test names its own."""
    return rt.scratch_name(database, at).replace(rt.SCRATCH_PREFIX, DRILL_PREFIX, 1)


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


def record(store: Store, result: DrillResult, report: str, flow_run_id: str | None) -> None:
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
