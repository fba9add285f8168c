"""The records every duty keeps: one table per kind of event, typed and redacted on the way in.

Two column types carry the store's promises so no write path can forget them:
`UTCDateTime` stores UTC and always hands back tz-aware UTC (SQLite would drop tzinfo),
and the `Redacted*` types mask secrets when a value is bound, whether it arrives through an
ORM flush, a Core bulk insert or an upsert. Identifiers and enum-like columns (monitor,
database, state, status...) stay plain so lookups by name never change meaning.

Models are keyword-only dataclasses so constructors are typed and defaults exist before
a flush; JSON attributes are not mutation-tracked, so assign a new list/dict to change one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedAsDataclass, mapped_column, relationship

from vigil import clock
from vigil.redact import redact, redact_data

# The Alembic revision these models describe; open_store compares it with the database's
# recorded revision so an up-to-date store opens without loading Alembic at all.
SCHEMA_REVISION = "0003"

# Named constraints let future SQLite batch migrations drop or alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL (check results pile up); SQLite only autoincrements INTEGER.
BigID = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC out, on both backends.

    Naive values are refused rather than guessed at: a naive local time silently stored as
    UTC would shift every duty's history by the server's offset.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class RedactedText(TypeDecorator[str]):
    """Free text (errors, reports, titles): any of it may quote a URL, header or token."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else redact(value)


class RedactedJSON(TypeDecorator[Any]):
    """JSON blobs with every string inside masked; Python None is SQL NULL, not JSON null."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return redact_data(value)


def utcnow() -> datetime:
    return clock.now()


class Base(MappedAsDataclass, DeclarativeBase):
    """Models subclass with `kw_only=True` each: type checkers do not inherit it from here."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


class CheckResult(Base, kw_only=True):
    """One probe of one monitor in one sweep."""

    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_monitor_checked_at", "monitor", "checked_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    monitor: Mapped[str]
    checked_at: Mapped[datetime]
    ok: Mapped[bool]
    state: Mapped[str]
    status_code: Mapped[int | None] = mapped_column(default=None)
    latency_ms: Mapped[float | None] = mapped_column(default=None)
    tls_days_left: Mapped[float | None] = mapped_column(default=None)
    failed_conditions: Mapped[list[str]] = mapped_column(
        RedactedJSON, default_factory=list, insert_default=list
    )
    error: Mapped[str | None] = mapped_column(RedactedText, default=None)
    in_maintenance: Mapped[bool] = mapped_column(default=False)
    flow_run_id: Mapped[str | None] = mapped_column(default=None)
    # What each location saw, for a monitor probed from several (vigil.sweep.quorum).
    locations: Mapped[dict[str, Any] | None] = mapped_column(RedactedJSON, default=None)


class HourlyRollup(Base, kw_only=True):
    """Per monitor and UTC hour, the sums that uptime and latency reports divide."""

    __tablename__ = "hourly_rollups"

    monitor: Mapped[str] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    successes: Mapped[int] = mapped_column(default=0)
    degraded: Mapped[int] = mapped_column(default=0)
    maintenance: Mapped[int] = mapped_column(default=0)
    total_latency_ms: Mapped[float] = mapped_column(default=0.0)


class MonitorState(Base, kw_only=True):
    """What the sweep remembers between runs to debounce alerts."""

    __tablename__ = "monitor_states"

    monitor: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(default="UNKNOWN")
    since: Mapped[datetime | None] = mapped_column(default=None)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    consecutive_successes: Mapped[int] = mapped_column(default=0)
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_alert_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(RedactedText, default=None)
    failed_conditions: Mapped[list[str]] = mapped_column(
        RedactedJSON, default_factory=list, insert_default=list
    )
    locations: Mapped[dict[str, Any] | None] = mapped_column(RedactedJSON, default=None)


class ShardHandoff(Base, kw_only=True):
    """One shard's checks of a sharded sweep, waiting for the parent sweep to decide.

    `checks` maps monitor name to its result (names are keys, so redaction leaves them
    intact); the parent deletes the rows once merged."""

    __tablename__ = "shard_handoffs"
    __table_args__ = (Index("ix_shard_handoffs_sweep_id", "sweep_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    sweep_id: Mapped[str]
    shard: Mapped[int]
    shards: Mapped[int]
    handed_at: Mapped[datetime]
    flow_run_id: Mapped[str | None] = mapped_column(default=None)
    checks: Mapped[dict[str, Any]] = mapped_column(
        RedactedJSON, default_factory=dict, insert_default=dict
    )


class Incident(Base, kw_only=True):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_monitor_started_at", "monitor", "started_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    monitor: Mapped[str]
    state: Mapped[str]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    severity: Mapped[str]
    cause: Mapped[str | None] = mapped_column(RedactedText, default=None)
    notified: Mapped[bool] = mapped_column(default=False)


class Backup(Base, kw_only=True):
    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_database_created_at", "database", "created_at"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    database: Mapped[str]
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(default="running")
    verified: Mapped[bool] = mapped_column(default=False)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(default=None)
    location: Mapped[str | None] = mapped_column(RedactedText, default=None)
    manifest_location: Mapped[str | None] = mapped_column(RedactedText, default=None)
    error: Mapped[str | None] = mapped_column(RedactedText, default=None)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(RedactedJSON, default=None)
    duration_s: Mapped[float | None] = mapped_column(default=None)
    flow_run_id: Mapped[str | None] = mapped_column(default=None)


class BackupVerification(Base, kw_only=True):
    __tablename__ = "backup_verifications"
    __table_args__ = (
        Index("ix_backup_verifications_backup_id_verified_at", "backup_id", "verified_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    verified_at: Mapped[datetime]
    backup_id: Mapped[str | None] = mapped_column(default=None)
    backup_age_hours: Mapped[float | None] = mapped_column(default=None)
    backup_size_mb: Mapped[float | None] = mapped_column(default=None)
    status: Mapped[str]
    checks_passed: Mapped[int] = mapped_column(default=0)
    checks_failed: Mapped[int] = mapped_column(default=0)
    error_details: Mapped[str | None] = mapped_column(RedactedText, default=None)
    verification_details: Mapped[dict[str, Any] | None] = mapped_column(RedactedJSON, default=None)


class BackupDeletion(Base, kw_only=True):
    __tablename__ = "backup_deletions"
    __table_args__ = (Index("ix_backup_deletions_database_deleted_at", "database", "deleted_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    backup_id: Mapped[str]
    database: Mapped[str]
    deleted_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(RedactedText, default=None)
    location: Mapped[str | None] = mapped_column(RedactedText, default=None)


class RestoreTest(Base, kw_only=True):
    __tablename__ = "restore_tests"
    __table_args__ = (Index("ix_restore_tests_database_started_at", "database", "started_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    backup_id: Mapped[str | None] = mapped_column(default=None)
    database: Mapped[str]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_s: Mapped[float | None] = mapped_column(default=None)
    status: Mapped[str]
    rto_met: Mapped[bool | None] = mapped_column(default=None)
    recovery_point: Mapped[datetime | None] = mapped_column(default=None)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(
        RedactedJSON, default_factory=list, insert_default=list
    )
    error: Mapped[str | None] = mapped_column(RedactedText, default=None)
    flow_run_id: Mapped[str | None] = mapped_column(default=None)


class Drill(Base, kw_only=True):
    __tablename__ = "drills"
    __table_args__ = (Index("ix_drills_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str]
    rto_s: Mapped[float | None] = mapped_column(default=None)
    rpo_s: Mapped[float | None] = mapped_column(default=None)
    rto_met: Mapped[bool | None] = mapped_column(default=None)
    rpo_met: Mapped[bool | None] = mapped_column(default=None)
    findings: Mapped[list[Any]] = mapped_column(
        RedactedJSON, default_factory=list, insert_default=list
    )
    report: Mapped[str | None] = mapped_column(RedactedText, default=None)
    flow_run_id: Mapped[str | None] = mapped_column(default=None)


class DeployVerification(Base, kw_only=True):
    __tablename__ = "deploy_verifications"
    __table_args__ = (Index("ix_deploy_verifications_target_started_at", "target", "started_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    target: Mapped[str]
    release: Mapped[str | None] = mapped_column(RedactedText, default=None)
    kind: Mapped[str] = mapped_column(default="deploy")
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    verdict: Mapped[str] = mapped_column(default="running")
    previous_release: Mapped[str | None] = mapped_column(RedactedText, default=None)
    detail: Mapped[str | None] = mapped_column(RedactedText, default=None)
    flow_run_id: Mapped[str | None] = mapped_column(default=None)
    measurements: Mapped[list[DeployMeasurement]] = relationship(
        back_populates="verification",
        cascade="all, delete-orphan",
        order_by="DeployMeasurement.measured_at",
        default_factory=list,
        repr=False,  # a lazy load in repr fails on a detached row (in test and log output)
    )


class DeployMeasurement(Base, kw_only=True):
    __tablename__ = "deploy_measurements"
    __table_args__ = (
        Index(
            "ix_deploy_measurements_verification_id_measured_at", "verification_id", "measured_at"
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    # Pass the id, or set `verification` / append to its `measurements` and let flush fill it.
    verification_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("deploy_verifications.id", ondelete="CASCADE"), default=None
    )
    measured_at: Mapped[datetime]
    verdict: Mapped[str]
    checks: Mapped[list[dict[str, Any]]] = mapped_column(
        RedactedJSON, default_factory=list, insert_default=list
    )
    verification: Mapped[DeployVerification] = relationship(
        back_populates="measurements", default=None, repr=False
    )


class Notification(Base, kw_only=True):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_sent_at", "sent_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, init=False)
    sent_at: Mapped[datetime] = mapped_column(default_factory=utcnow, insert_default=utcnow)
    channel: Mapped[str]
    channel_type: Mapped[str]
    severity: Mapped[str]
    title: Mapped[str] = mapped_column(RedactedText)
    subject: Mapped[str | None] = mapped_column(RedactedText, default=None)
    status: Mapped[str]
    attempts: Mapped[int] = mapped_column(default=1)
    error: Mapped[str | None] = mapped_column(RedactedText, default=None)
