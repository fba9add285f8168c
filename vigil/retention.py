"""What vigil's records store forgets, and when: the pure plan behind `vigil records prune`
and the daily housekeeping duty (the deletes themselves are `vigil.store.prune`).

Every table vigil writes has one rule here (`RULES`; tests/test_retention.py fails when a
table has none). A rule names the config horizon that applies (`retention.<horizon>`), the
column that dates a row, and what must survive whatever its age:

- each monitor's first check (reports start its clock there, to the second), an
  incident still open, a backup still in storage (no deletion recorded and not failed),
  the newest restore test per database, drill and deploy verification per target (what
  `vigil status` shows), and the state of a monitor that is still configured;
- a backup deletion while its backup's row is still there (the catalog would think the
  archive is back);
- a deploy measurement goes with its verification.

The plan is computed from the config and a clock only, so it is tested without a database
and `--dry-run` shows exactly what a real run deletes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from vigil.config import RecordsRetention

# What protects rows of a table from deletion, beyond their age (see the module docstring).
Guard = Literal[
    "none",
    "keep_first_per",
    "closed_incidents",
    "gone_backups",
    "deletion_without_backup",
    "keep_newest_per",
    "unconfigured_monitors",
    "with_verification",
]

# Handoffs are merged (and deleted) by the sweep that started the shard within one sweep;
# one left behind by a sweep that died is garbage after a day.
HANDOFF_HORIZON = timedelta(days=1)
# Tables vigil writes that hold no history: Alembic's one-row schema version.
NO_HISTORY = frozenset({"alembic_version"})


@dataclass(frozen=True)
class Rule:
    table: str
    horizon: str  # a field of RecordsRetention, or "handoffs"
    column: str  # the time that dates a row
    guard: Guard = "none"
    per: str | None = None  # keep_newest_per: the column naming the subject
    why: str = ""


RULES: dict[str, Rule] = {
    r.table: r
    for r in (
        Rule(
            "check_results",
            "checks",
            "checked_at",
            "keep_first_per",
            "monitor",
            why="raw checks",
        ),
        Rule("hourly_rollups", "rollups", "hour", why="hourly sums for SLOs and the 90-day bars"),
        Rule(
            "monitor_states",
            "checks",
            "last_checked_at",
            "unconfigured_monitors",
            why="states of monitors removed from the config",
        ),
        Rule("shard_handoffs", "handoffs", "handed_at", why="handoffs a dead sweep left"),
        Rule("incidents", "incidents", "ended_at", "closed_incidents", why="closed incidents"),
        Rule("backups", "backups", "created_at", "gone_backups", why="backups gone from storage"),
        Rule("backup_verifications", "backups", "verified_at", why="backup verifications"),
        Rule(
            "backup_deletions",
            "backups",
            "deleted_at",
            "deletion_without_backup",
            why="deletions whose backup row is gone",
        ),
        Rule(
            "restore_tests",
            "restore_tests",
            "started_at",
            "keep_newest_per",
            "database",
            why="restore tests",
        ),
        Rule("drills", "drills", "started_at", "keep_newest_per", why="DR drills"),
        Rule(
            "deploy_verifications",
            "deploys",
            "started_at",
            "keep_newest_per",
            "target",
            why="deploy verifications",
        ),
        Rule(
            "deploy_measurements",
            "deploys",
            "measured_at",
            "with_verification",
            why="measurements of deleted verifications",
        ),
        Rule("notifications", "notifications", "sent_at", why="alert deliveries"),
    )
}

# Parents before children: a backup's row goes before the deletion that vouches for it, a
# verification before its measurements.
ORDER = (
    "check_results",
    "hourly_rollups",
    "monitor_states",
    "shard_handoffs",
    "incidents",
    "backups",
    "backup_verifications",
    "backup_deletions",
    "restore_tests",
    "drills",
    "deploy_verifications",
    "deploy_measurements",
    "notifications",
)


@dataclass(frozen=True)
class Cut:
    """Delete the rows of `table` dated before `before` that its guard does not protect."""

    rule: Rule
    before: datetime
    keep: timedelta
    monitors: tuple[str, ...] = ()  # unconfigured_monitors: the configured ones, kept

    @property
    def table(self) -> str:
        return self.rule.table


def horizon(retention: RecordsRetention, name: str) -> timedelta:
    if name == "handoffs":
        return HANDOFF_HORIZON
    value = getattr(retention, name)
    if not isinstance(value, timedelta):
        raise ValueError(f"retention.{name} is not a duration")
    return value


def plan(
    retention: RecordsRetention, now: datetime, configured_monitors: tuple[str, ...] = ()
) -> list[Cut]:
    """One cut per table, in the order the deletes must run."""
    if now.tzinfo is None:
        raise ValueError("plan needs an aware `now` (UTC)")
    cuts = []
    for table in ORDER:
        rule = RULES[table]
        keep = horizon(retention, rule.horizon)
        monitors = configured_monitors if rule.guard == "unconfigured_monitors" else ()
        cuts.append(Cut(rule, now - keep, keep, monitors))
    return cuts


def batches(total: int, size: int) -> int:
    """How many delete transactions `total` rows take at `size` a batch."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    return -(-total // size)
