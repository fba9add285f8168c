"""The catalog in vigil's records store: every backup with its outcome, its verifications,
and the deletions retention made. A backup lives in storage; the catalog says what it is."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from vigil import clock
from vigil.backup.globals import globals_summary
from vigil.backup.identity import FAILED, RUNNING, SUCCEEDED
from vigil.backup.retention import Candidate
from vigil.backup.sealing import sealed_for
from vigil.backup.verification import Verification
from vigil.store import Backup, BackupDeletion, BackupVerification, Store


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    database: str
    created_at: datetime
    size_bytes: int | None
    sha256: str | None
    location: str | None
    status: str
    verified: bool
    deleted: bool
    duration_s: float | None = None
    error: str | None = None
    globals: str = ""  # what the backup saved of the server's roles (`globals_summary`)
    # The age recipients the backup was sealed for (from its manifest); empty: not sealed.
    sealed_for: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "created_at": self.created_at.isoformat(),
            "sealed_for": list(self.sealed_for),
        }


def catalog(store: Store, database: str | None = None) -> list[CatalogEntry]:
    """Every recorded backup, newest first, with whether retention has deleted it."""
    with store.session() as session:
        gone = set(session.scalars(select(BackupDeletion.backup_id)))
        query = select(Backup).order_by(Backup.created_at.desc())
        if database is not None:
            query = query.where(Backup.database == database)
        return [
            CatalogEntry(
                id=b.id,
                database=b.database,
                created_at=b.created_at,
                size_bytes=b.size_bytes,
                sha256=b.sha256,
                location=b.location,
                status=b.status,
                verified=b.verified,
                deleted=b.id in gone,
                duration_s=b.duration_s,
                error=b.error,
                globals=globals_summary(b.manifest) if b.status == "succeeded" else "",
                sealed_for=tuple(sealed_for((b.manifest or {}).get("dump"))),
            )
            for b in session.scalars(query)
        ]


def candidates(store: Store, database: str) -> list[Candidate]:
    """The backups of `database` still in storage, for retention."""
    return [
        Candidate(e.id, e.created_at, e.status, e.verified)
        for e in catalog(store, database)
        if not e.deleted
    ]


def find_backup(store: Store, backup: str) -> Backup | None:
    with store.session() as session:
        return session.get(Backup, backup)


def find_deletion(store: Store, backup: str) -> BackupDeletion | None:
    with store.session() as session:
        query = select(BackupDeletion).where(BackupDeletion.backup_id == backup)
        return session.scalars(query.limit(1)).first()


def start_record(
    store: Store, *, backup: str, database: str, created_at: datetime, flow_run_id: str | None
) -> None:
    with store.session() as session:
        session.add(
            Backup(id=backup, database=database, created_at=created_at, flow_run_id=flow_run_id)
        )


def finish_record(store: Store, backup: str, **values: Any) -> None:
    """Set the outcome columns of a backup (status, verified, size_bytes, sha256, ...)."""
    with store.session() as session:
        session.execute(update(Backup).where(Backup.id == backup).values(**values))


def mark_interrupted(store: Store, database: str) -> list[str]:
    """Runs of `database` still marked running when its lock is free died half-way: say so."""
    with store.session() as session:
        stale = list(
            session.scalars(
                select(Backup.id).where(Backup.database == database, Backup.status == RUNNING)
            )
        )
        if stale:
            session.execute(
                update(Backup)
                .where(Backup.id.in_(stale))
                .values(status=FAILED, error="interrupted: the run stopped before it finished")
            )
    return stale


def running_backup(store: Store, database: str) -> Backup | None:
    with store.session() as session:
        query = select(Backup).where(Backup.database == database, Backup.status == RUNNING)
        return session.scalars(query.order_by(Backup.created_at.desc()).limit(1)).first()


def previous_size(store: Store, database: str, before: datetime) -> int | None:
    """Size of the newest earlier backup of `database` that completed, for the shrink check."""
    with store.session() as session:
        query = (
            select(Backup.size_bytes)
            .where(
                Backup.database == database,
                Backup.status == SUCCEEDED,
                Backup.created_at < before,
                Backup.size_bytes.is_not(None),
            )
            .order_by(Backup.created_at.desc())
            .limit(1)
        )
        return session.scalars(query).first()


def record_verification(store: Store, verification: Verification) -> None:
    age = verification.verified_at - verification.created_at
    size = verification.size_bytes
    with store.session() as session:
        session.add(
            BackupVerification(
                verified_at=verification.verified_at,
                backup_id=verification.backup_id,
                backup_age_hours=round(age.total_seconds() / 3600, 3),
                backup_size_mb=round(size / 1_000_000, 3) if size is not None else None,
                status=verification.status,
                checks_passed=sum(c.passed for c in verification.checks),
                checks_failed=len(verification.failures),
                error_details="\n".join(c.line() for c in verification.failures) or None,
                verification_details={"checks": [asdict(c) for c in verification.checks]},
            )
        )


def record_deletion(
    store: Store, *, backup: str, database: str, reason: str, location: str | None
) -> None:
    with store.session() as session:
        session.add(
            BackupDeletion(
                backup_id=backup,
                database=database,
                deleted_at=clock.now(),
                reason=reason,
                location=location,
            )
        )
