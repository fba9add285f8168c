"""What names a backup and where its objects live; the statuses of a backup run; the error
every backup step raises."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg.conninfo

from vigil.findings import Finding
from vigil.redact import redact

ID_TIME = "%Y%m%dT%H%M%SZ"
_ID = re.compile(r"^(?P<database>[A-Za-z0-9_.\-]+)-(?P<stamp>\d{8}T\d{6}Z)$")
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
LOCKED = "locked"  # an outcome only: another run held the database's lock


class BackupError(Finding):
    """A backup step that failed; `retryable` is True when trying again may help (a network
    blip, a restarting server), False when only a person can fix it (a wrong password)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(redact(message))
        self.retryable = retryable


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """A Prefect `retry_condition_fn`: retry only failures that say trying again can help.

    Every error vocabulary of the backup path (BackupError, the storage's StorageError)
    carries `retryable`; any other exception is a bug, and a bug is not retried."""
    try:
        state.result()
    except Exception as exc:
        return bool(getattr(exc, "retryable", False))
    return False


def failure_text(exc: BaseException) -> str:
    """What a record, an alert or a log line says of a failed step: the message of an
    expected failure (one that knows whether retrying helps), the type too for a bug."""
    return redact(str(exc) if hasattr(exc, "retryable") else repr(exc))


def backup_id(database: str, at: datetime) -> str:
    """`<database>-<UTC timestamp>`: sorts by time and names its database."""
    return f"{database}-{at.astimezone(UTC).strftime(ID_TIME)}"


def parse_backup_id(value: str) -> tuple[str, datetime]:
    """(database, created_at) from an id; ValueError says what an id looks like."""
    match = _ID.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a backup id (they look like main-20240501T020000Z; "
            "`vigil backups` lists them)"
        )
    return match["database"], datetime.strptime(match["stamp"], ID_TIME).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Keys:
    """Where one backup's objects live, relative to the storage root. Retention deletes
    everything that starts with `prefix`, so they always go together."""

    dump: str
    manifest: str
    config_archive: str

    @property
    def prefix(self) -> str:
        return self.dump.removesuffix("dump")

    @classmethod
    def of(cls, backup: str) -> Keys:
        database, _ = parse_backup_id(backup)
        base = f"{database}/{backup}."
        return cls(base + "dump", base + "manifest.json", base + "config.tar.gz")


def describe_url(url: str) -> str:
    """`user@host:port/dbname` without the password, for messages about a database."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    user = f"{params['user']}@" if params.get("user") else ""
    return redact(f"{user}{host}:{port}/{params.get('dbname') or ''}")
