"""The records of every duty: checks, rollups, incidents, backups, restores, drills, deploys,
notifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Plain SQLAlchemy types on purpose: a migration must keep meaning the same DDL even when the
model code changes later. UTCDateTime/Redacted* in the models are bind-time behaviour
over exactly these column types (DateTime(timezone=True), Text, JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    # BIGINT ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _json(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=nullable)


def _str(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _int(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def _float(name: str, nullable: bool = True) -> sa.Column[float]:
    return sa.Column(name, sa.Double(), nullable=nullable)


def _bool(name: str, nullable: bool = False) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean(), nullable=nullable)


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*(columns or ("id",)), name=op.f(f"pk_{table}"))


def upgrade() -> None:
    op.create_table(
        "check_results",
        _id(),
        _str("monitor"),
        _time("checked_at"),
        _bool("ok"),
        _str("state"),
        _int("status_code", nullable=True),
        _float("latency_ms"),
        _float("tls_days_left"),
        _json("failed_conditions"),
        _text("error"),
        _bool("in_maintenance"),
        _str("flow_run_id", nullable=True),
        _pk("check_results"),
    )
    op.create_index(
        "ix_check_results_monitor_checked_at", "check_results", ["monitor", "checked_at"]
    )

    op.create_table(
        "hourly_rollups",
        _str("monitor"),
        _time("hour"),
        _int("count"),
        _int("successes"),
        _int("degraded"),
        _int("maintenance"),
        _float("total_latency_ms", nullable=False),
        _pk("hourly_rollups", "monitor", "hour"),
    )

    op.create_table(
        "monitor_states",
        _str("monitor"),
        _str("state"),
        _time("since", nullable=True),
        _int("consecutive_failures"),
        _int("consecutive_successes"),
        _time("last_checked_at", nullable=True),
        _time("last_alert_at", nullable=True),
        _text("last_error"),
        _json("failed_conditions"),
        _pk("monitor_states", "monitor"),
    )

    op.create_table(
        "incidents",
        _id(),
        _str("monitor"),
        _str("state"),
        _time("started_at"),
        _time("ended_at", nullable=True),
        _str("severity"),
        _text("cause"),
        _bool("notified"),
        _pk("incidents"),
    )
    op.create_index("ix_incidents_monitor_started_at", "incidents", ["monitor", "started_at"])

    op.create_table(
        "backups",
        _str("id"),
        _str("database"),
        _time("created_at"),
        _time("completed_at", nullable=True),
        _str("status"),
        _bool("verified"),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        _str("sha256", nullable=True),
        _text("location"),
        _text("manifest_location"),
        _text("error"),
        _json("manifest", nullable=True),
        _float("duration_s"),
        _str("flow_run_id", nullable=True),
        _pk("backups"),
    )
    op.create_index("ix_backups_database_created_at", "backups", ["database", "created_at"])

    op.create_table(
        "backup_verifications",
        _id(),
        _time("verified_at"),
        _str("backup_id", nullable=True),
        _float("backup_age_hours"),
        _float("backup_size_mb"),
        _str("status"),
        _int("checks_passed"),
        _int("checks_failed"),
        _text("error_details"),
        _json("verification_details", nullable=True),
        _pk("backup_verifications"),
    )
    op.create_index(
        "ix_backup_verifications_backup_id_verified_at",
        "backup_verifications",
        ["backup_id", "verified_at"],
    )

    op.create_table(
        "backup_deletions",
        _id(),
        _str("backup_id"),
        _str("database"),
        _time("deleted_at"),
        _text("reason"),
        _text("location"),
        _pk("backup_deletions"),
    )
    op.create_index(
        "ix_backup_deletions_database_deleted_at", "backup_deletions", ["database", "deleted_at"]
    )

    op.create_table(
        "restore_tests",
        _id(),
        _str("backup_id", nullable=True),
        _str("database"),
        _time("started_at"),
        _time("finished_at", nullable=True),
        _float("duration_s"),
        _str("status"),
        _bool("rto_met", nullable=True),
        _time("recovery_point", nullable=True),
        _json("checks"),
        _text("error"),
        _str("flow_run_id", nullable=True),
        _pk("restore_tests"),
    )
    op.create_index(
        "ix_restore_tests_database_started_at", "restore_tests", ["database", "started_at"]
    )

    op.create_table(
        "drills",
        _id(),
        _time("started_at"),
        _time("finished_at", nullable=True),
        _str("status"),
        _float("rto_s"),
        _float("rpo_s"),
        _bool("rto_met", nullable=True),
        _bool("rpo_met", nullable=True),
        _json("findings"),
        _text("report"),
        _str("flow_run_id", nullable=True),
        _pk("drills"),
    )
    op.create_index("ix_drills_started_at", "drills", ["started_at"])

    op.create_table(
        "deploy_verifications",
        _id(),
        _str("target"),
        _text("release"),
        _str("kind"),
        _time("started_at"),
        _time("finished_at", nullable=True),
        _str("verdict"),
        _text("previous_release"),
        _text("detail"),
        _str("flow_run_id", nullable=True),
        _pk("deploy_verifications"),
    )
    op.create_index(
        "ix_deploy_verifications_target_started_at",
        "deploy_verifications",
        ["target", "started_at"],
    )

    op.create_table(
        "deploy_measurements",
        _id(),
        sa.Column(
            "verification_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        _time("measured_at"),
        _str("verdict"),
        _json("checks"),
        sa.ForeignKeyConstraint(
            ["verification_id"],
            ["deploy_verifications.id"],
            name=op.f("fk_deploy_measurements_verification_id_deploy_verifications"),
            ondelete="CASCADE",
        ),
        _pk("deploy_measurements"),
    )
    op.create_index(
        "ix_deploy_measurements_verification_id_measured_at",
        "deploy_measurements",
        ["verification_id", "measured_at"],
    )

    op.create_table(
        "notifications",
        _id(),
        _time("sent_at"),
        _str("channel"),
        _str("channel_type"),
        _str("severity"),
        _text("title", nullable=False),
        _text("subject"),
        _str("status"),
        _int("attempts"),
        _text("error"),
        _pk("notifications"),
    )
    op.create_index("ix_notifications_sent_at", "notifications", ["sent_at"])


def downgrade() -> None:
    for table in (
        "notifications",
        "deploy_measurements",
        "deploy_verifications",
        "drills",
        "restore_tests",
        "backup_deletions",
        "backup_verifications",
        "backups",
        "incidents",
        "monitor_states",
        "hourly_rollups",
        "check_results",
    ):
        op.drop_table(table)  # drops the table's indexes with it
