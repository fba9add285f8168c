"""Which backups to keep: grandfather-father-son over verified backups, as a pure plan that
`tasks.storage.retention` carries out (storage deletes) and records (the catalog)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vigil.backup.identity import FAILED, RUNNING, SUCCEEDED
from vigil.config import Retention
from vigil.durations import format_duration

# Unverified backups older than the newest verified one stay this long, for a look at why.
UNVERIFIED_GRACE = timedelta(days=7)


@dataclass(frozen=True)
class Candidate:
    """One catalogued backup, as retention sees it."""

    id: str
    created_at: datetime
    status: str
    verified: bool


@dataclass(frozen=True)
class RetentionDecision:
    backup_id: str
    created_at: datetime
    keep: bool
    reasons: tuple[str, ...]

    def line(self) -> str:
        verb = "keep  " if self.keep else "delete"
        return f"{verb} {self.backup_id}: {', '.join(self.reasons)}"


_PERIODS = (
    ("keep_daily", "daily", lambda at: at.strftime("%Y-%m-%d")),
    ("keep_weekly", "weekly", lambda at: "{}-W{:02d}".format(*at.isocalendar()[:2])),
    ("keep_monthly", "monthly", lambda at: at.strftime("%Y-%m")),
)


def plan_retention(
    backups: Sequence[Candidate], retention: Retention, now: datetime
) -> list[RetentionDecision]:
    """Grandfather-father-son over verified backups, newest first.

    Each rule keeps the newest verified backup of each of its N most recent periods (UTC
    days, ISO weeks, months) that have one, so a gap in the backups never shortens history.
    Unverified and failed backups fill no bucket; they stay while newer than the newest
    verified backup or younger than UNVERIFIED_GRACE, then go. A running backup is never
    touched, and the newest verified backup is kept whatever the rules say.
    """
    ordered = sorted(backups, key=lambda b: b.created_at, reverse=True)
    verified = [b for b in ordered if b.verified and b.status == SUCCEEDED]
    reasons: dict[str, list[str]] = {b.id: [] for b in ordered}
    if verified:
        reasons[verified[0].id].append("newest verified backup")
    for b in verified[: retention.keep_last]:
        reasons[b.id].append(f"keep_last {retention.keep_last}")
    for setting, label, period_of in _PERIODS:
        wanted = getattr(retention, setting)
        seen: set[str] = set()
        for b in verified:
            period = period_of(b.created_at.astimezone(UTC))
            if period not in seen and len(seen) < wanted:
                seen.add(period)
                reasons[b.id].append(f"{label} {period}")
    newest_verified = verified[0].created_at if verified else None
    for b in ordered:
        if b in verified:
            continue
        if b.status == RUNNING:
            reasons[b.id].append("still running")
        elif newest_verified is None or b.created_at > newest_verified:
            reasons[b.id].append("not verified, but newer than any verified backup")
        elif now - b.created_at < UNVERIFIED_GRACE:
            reasons[b.id].append(
                f"not verified; kept {format_duration(UNVERIFIED_GRACE)} to inspect"
            )
    rules = (
        f"keep_last={retention.keep_last}, keep_daily={retention.keep_daily}, "
        f"keep_weekly={retention.keep_weekly}, keep_monthly={retention.keep_monthly}"
    )
    return [
        RetentionDecision(b.id, b.created_at, True, tuple(reasons[b.id]))
        if reasons[b.id]
        else RetentionDecision(b.id, b.created_at, False, (_why_delete(b, rules),))
        for b in ordered
    ]


def _why_delete(backup: Candidate, rules: str) -> str:
    if backup.verified and backup.status == SUCCEEDED:
        return f"outside {rules}"
    what = "failed" if backup.status == FAILED else "not verified"
    return f"{what}, superseded by a newer verified backup"
