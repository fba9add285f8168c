"""One database's backup in one run, and how it is told: the artifact row, the CLI line, the
alerts and the run's state. The backup duty's one home for presentation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from vigil.alert import Alert
from vigil.backup.identity import FAILED, LOCKED, SUCCEEDED
from vigil.backup.verification import Verification
from vigil.durations import format_duration, format_size
from vigil.redact import redact


@dataclass
class BackupOutcome:
    """One database's backup in one run, for the artifact, the alert and the CLI."""

    database: str
    backup_id: str | None = None
    status: str = FAILED
    error: str | None = None
    size_bytes: int | None = None
    seconds: float | None = None
    rows: int | None = None
    location: str | None = None
    verification: Verification | None = None
    deleted: list[str] = field(default_factory=list)
    retention_error: str | None = None

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.passed

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED and self.verified

    def throughput(self) -> str:
        if not (self.size_bytes and self.seconds):
            return ""
        return f"{format_size(int(self.size_bytes / self.seconds))}/s"

    def verdict(self) -> str:
        if self.error:
            return f"FAILED: {self.error}"
        if self.verification is None:
            return "not verified"
        return (
            "verified" if self.verified else f"FAILED verification: {self.verification.summary()}"
        )

    def row(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backup": self.backup_id or "",
            "status": self.status,
            "size": format_size(self.size_bytes) if self.size_bytes is not None else "",
            "duration": format_duration(self.seconds) if self.seconds is not None else "",
            "throughput": self.throughput(),
            "rows": self.rows if self.rows is not None else "",
            "verification": self.verdict(),
            "deleted by retention": len(self.deleted),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backup_id": self.backup_id,
            "status": self.status,
            "verified": self.verified,
            "error": self.error,
            "size_bytes": self.size_bytes,
            "duration_s": self.seconds,
            "rows": self.rows,
            "location": self.location,
            "checks": [asdict(c) for c in self.verification.checks] if self.verification else [],
            "deleted": self.deleted,
            "retention_error": self.retention_error,
        }

    def line(self) -> str:
        what = self.backup_id or "no backup"
        facts = ", ".join(
            x
            for x in (
                format_size(self.size_bytes) if self.size_bytes is not None else "",
                format_duration(self.seconds) if self.seconds is not None else "",
                f"{self.rows} rows" if self.rows is not None else "",
            )
            if x
        )
        return (
            f"{self.database}: {what}" + (f" ({facts})" if facts else "") + f" — {self.verdict()}"
        )


# --- telling people ---------------------------------------------------------------------------

DUTY = "daily-backup"


def alerts_for(outcomes: Sequence[BackupOutcome], storage_url: str) -> list[Alert]:
    """`critical` for each backup that failed or failed verification, `high` for a retention
    that failed, and one `low` summary of the good backups."""
    alerts = [_problem(o, storage_url) for o in outcomes if not o.ok]
    alerts += [
        Alert(
            title=f"Retention of {o.database} backups failed",
            severity="high",
            duty=DUTY,
            subject=o.database,
            summary=o.retention_error,
            details=[
                "The new backup is verified; old backups were not pruned and will be next run."
            ],
            fields={"storage": redact(storage_url)},
        )
        for o in outcomes
        if o.retention_error
    ]
    good = [o for o in outcomes if o.ok]
    if good:
        alerts.append(
            Alert(
                title="Backups verified: " + ", ".join(o.database for o in good),
                severity="low",
                duty=DUTY,
                subject=", ".join(o.database for o in good),
                summary=f"{len(good)} backup(s) written, read back and verified.",
                details=[o.line() for o in good],
                kind="info",
                fields={"storage": redact(storage_url)},
            )
        )
    return alerts


def _problem(outcome: BackupOutcome, storage_url: str) -> Alert:
    if outcome.status == LOCKED:
        title = f"Backup of {outcome.database} did not run"
        summary = outcome.error or ""
        details = ["No backup was taken in this run."]
    elif outcome.error:
        title = f"Backup of {outcome.database} failed"
        summary = outcome.error
        details = ["Nothing was counted as a good backup; retention did not run."]
    else:
        failures = outcome.verification.failures if outcome.verification else []
        title = f"Backup of {outcome.database} failed verification"
        summary = (
            f"{len(failures)} check(s) failed; the backup is not counted as good and "
            "retention did not run."
        )
        details = [c.line() for c in failures]
    fields = {"storage": redact(outcome.location or storage_url)}
    if outcome.backup_id:
        fields["backup"] = outcome.backup_id
    return Alert(
        title=title,
        severity="critical",
        duty=DUTY,
        subject=outcome.database,
        summary=summary,
        details=details,
        fields=fields,
    )


def run_state(outcomes: Sequence[BackupOutcome]) -> tuple[str | None, str]:
    """(problem name or None, message) for the run, worst problem first."""
    lines = "; ".join(o.line() for o in outcomes)
    if any(o.error and o.status != LOCKED for o in outcomes):
        return "BackupFailed", lines
    if any(o.status == SUCCEEDED and not o.verified for o in outcomes):
        return "VerificationFailed", lines
    if any(o.status == LOCKED for o in outcomes):
        return "BackupLocked", lines
    if any(o.retention_error for o in outcomes):
        return "RetentionFailed", lines
    return None, lines
